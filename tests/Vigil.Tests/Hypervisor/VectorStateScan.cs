using System.Collections.Generic;
using System.Linq;
using Iced.Intel;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The rules that keep root mode off the guest's FPU/SSE/AVX state, checked on machine code. The
/// hypervisor runs on the guest's vector registers (neither VMX nor SVM switches them), so:
/// <list type="number">
/// <item>No VEX, EVEX or XOP encoding anywhere: a VEX instruction zeroes bits 255:128 (and up) of its
/// destination (SDM Vol 1 14.1.3, 15.5), which nothing saves. ILC's instruction set is pinned for this
/// (Directory.Build.targets).</item>
/// <item>Vector instructions are whole-register moves and bitwise logic only (what RyuJIT emits to
/// zero and copy structs): none of them reads MXCSR, raises a SIMD floating-point exception (their
/// SDM Vol 2 pages: "SIMD Floating-Point Exceptions: None") or touches x87/MMX state — the MXCSR and
/// x87 state in root mode are the guest's. No x87, MMX, FXSAVE/XSAVE/XRSTOR, LDMXCSR.</item>
/// <item>The entry points the hardware enters with the guest's (or an interrupted handler's) registers
/// live — the VM-exit stub, the SVM loop after VMRUN, the host IDT entries — store XMM0-5 before
/// any other vector instruction and before they call C#, and load them back before returning to
/// that context. XMM0-5 are the registers the Microsoft x64 ABI lets the C# code clobber.</item>
/// <item>Any function that writes one of XMM6-15 stored it first (the ABI's callee-saved registers,
/// which the entry stubs rely on RyuJIT to preserve).</item>
/// </list>
/// </summary>
public static class VectorStateScan
{
    /// <summary>The vector instructions root-mode code may execute (rule 2).</summary>
    public static readonly IReadOnlySet<Mnemonic> Allowed = new HashSet<Mnemonic>
    {
        Mnemonic.Movaps, Mnemonic.Movups, Mnemonic.Movdqa, Mnemonic.Movdqu, Mnemonic.Movq, Mnemonic.Movd,
        Mnemonic.Xorps, Mnemonic.Pxor,
    };

    /// <summary>An entry point: the stub, the instruction after which the context arrives (none: the stub's start), and the one that returns to it.</summary>
    public sealed record EntryStub(string Symbol, Mnemonic EnteredAfter, Mnemonic ReturnsWith);

    public static readonly IReadOnlyList<EntryStub> EntryStubs =
    [
        new("vigil_vmx_exit", Mnemonic.INVALID, Mnemonic.Vmresume),     // VMCS HOST_RIP
        new("vigil_svm_launch_cpu", Mnemonic.Vmrun, Mnemonic.Vmrun),     // #VMEXIT returns after VMRUN
        new("vigil_host_vectors", Mnemonic.INVALID, Mnemonic.Iretq),     // host IDT: NMI, #GP fix-up, faults
    ];

    /// <summary>Every rule broken in <paramref name="image"/>, one line each; empty when it is clean.</summary>
    public static List<string> Check(HypervisorImage image, out int vectorInstructions)
    {
        var problems = new List<string>();
        vectorInstructions = 0;
        foreach (ImageFunction function in image.Functions)
        {
            List<Instruction> code = Decode(function);
            var saved = new HashSet<Register>();
            foreach (Instruction i in code)
            {
                if (i.IsInvalid)
                {
                    problems.Add($"{function.Name}+{i.IP - function.Address:x}: bytes that do not decode");
                    continue;
                }
                if (i.Encoding != EncodingKind.Legacy)
                {
                    problems.Add($"{function.Name}+{i.IP - function.Address:x}: {i} is {i.Encoding}-encoded (clears the guest's upper vector bits)");
                    continue;
                }
                if (!TouchesVectorState(i)) continue;
                vectorInstructions++;
                if (!Allowed.Contains(i.Mnemonic))
                {
                    problems.Add($"{function.Name}+{i.IP - function.Address:x}: {i} touches x87/MXCSR/vector state beyond moves and bitwise logic");
                }
                if (IsStore(i, out Register stored)) saved.Add(stored);
                foreach (Register written in WrittenXmm(i))
                {
                    if (written >= Register.XMM6 && written <= Register.XMM15 && !saved.Contains(written))
                    {
                        problems.Add($"{function.Name}+{i.IP - function.Address:x}: {i} writes the callee-saved {written} before saving it");
                    }
                }
            }
        }
        foreach (EntryStub entry in EntryStubs) CheckEntry(image, entry, problems);
        return problems;
    }

    private static void CheckEntry(HypervisorImage image, EntryStub entry, List<string> problems)
    {
        ImageFunction? function = image.Functions.SingleOrDefault(f => f.Name == entry.Symbol);
        if (function == null)
        {
            problems.Add($"{entry.Symbol}: not in the image");
            return;
        }
        List<Instruction> code = Decode(function);
        int start = entry.EnteredAfter == Mnemonic.INVALID ? 0 : code.FindIndex(i => i.Mnemonic == entry.EnteredAfter) + 1;
        int call = code.FindIndex(start, i => i.Mnemonic == Mnemonic.Call);   // Iced counts VMRUN/VMRESUME as calls too
        if (start <= 0 && entry.EnteredAfter != Mnemonic.INVALID || call < 0)
        {
            problems.Add($"{entry.Symbol}: no entry or no call to C#");
            return;
        }
        var stored = new HashSet<Register>();
        for (int k = start; k < call; k++)
        {
            Instruction i = code[k];
            if (!TouchesVectorState(i)) continue;
            if (IsStore(i, out Register r) && r >= Register.XMM0 && r <= Register.XMM5) stored.Add(r);
            else problems.Add($"{entry.Symbol}+{i.IP - function.Address:x}: {i} runs before the context's XMM0-5 are saved");
        }
        for (Register r = Register.XMM0; r <= Register.XMM5; r++)
        {
            if (!stored.Contains(r)) problems.Add($"{entry.Symbol}: {r} is not saved before the call to C# at +{code[call].IP - function.Address:x}");
        }

        int back = code.FindIndex(start > 0 ? 0 : call, i => i.Mnemonic == entry.ReturnsWith);
        if (back < 0)
        {
            problems.Add($"{entry.Symbol}: no {entry.ReturnsWith}");
            return;
        }
        int lastCall = code.FindLastIndex(back, i => i.Mnemonic == Mnemonic.Call);
        var loaded = new HashSet<Register>();
        for (int k = lastCall + 1; k < back; k++)
        {
            Instruction i = code[k];
            if (!TouchesVectorState(i)) continue;
            foreach (Register r in WrittenXmm(i)) loaded.Add(r);
        }
        for (Register r = Register.XMM0; r <= Register.XMM5; r++)
        {
            if (!loaded.Contains(r)) problems.Add($"{entry.Symbol}: {r} is not restored before {entry.ReturnsWith}");
        }
    }

    public static List<Instruction> Decode(ImageFunction function)
    {
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(function.Code), function.Address);
        var code = new List<Instruction>();
        ulong end = function.Address + (ulong)function.Code.Length;
        while (decoder.IP < end)
        {
            Instruction i = decoder.Decode();
            // Alignment padding after the last instruction (int3 or zeros) is not code; int3 between code is.
            if (function.Code.Skip((int)(i.IP - function.Address)).All(b => b is 0 or 0xCC)) break;
            code.Add(i);
        }
        return code;
    }

    private static readonly InstructionInfoFactory Info = new();

    /// <summary>An instruction that reads or writes vector, x87 or MMX registers, MXCSR, or the whole extended state.</summary>
    public static bool TouchesVectorState(in Instruction i)
    {
        // The fences carry the SSE/SSE2 CPUID bits but order memory only: no register, no MXCSR (SDM Vol 2 MFENCE, LFENCE, SFENCE).
        if (i.Mnemonic is Mnemonic.Mfence or Mnemonic.Lfence or Mnemonic.Sfence) return false;
        foreach (UsedRegister used in Info.GetInfo(i).GetUsedRegisters())
        {
            Register r = used.Register;
            if (r.IsVectorRegister() || r.IsST() || r.IsMM() || r.IsK() || r.IsTMM()) return true;
        }
        foreach (CpuidFeature feature in i.Code.CpuidFeatures())
        {
            if (feature is CpuidFeature.FPU or CpuidFeature.FPU287 or CpuidFeature.FPU387 or CpuidFeature.MMX or CpuidFeature.FXSR) return true;
            if (feature.ToString().StartsWith("SSE", System.StringComparison.Ordinal) || feature.ToString().StartsWith("AVX", System.StringComparison.Ordinal)) return true;
        }
        return i.Mnemonic is Mnemonic.Xsave or Mnemonic.Xsave64 or Mnemonic.Xsaveopt or Mnemonic.Xsaveopt64 or Mnemonic.Xsavec or Mnemonic.Xsavec64
            or Mnemonic.Xsaves or Mnemonic.Xsaves64 or Mnemonic.Xrstor or Mnemonic.Xrstor64 or Mnemonic.Xrstors or Mnemonic.Xrstors64;
    }

    private static bool IsStore(in Instruction i, out Register source)
    {
        source = Register.None;
        if (i.OpCount == 2 && i.Op0Kind == OpKind.Memory && i.Op1Kind == OpKind.Register && i.Op1Register.IsXMM()
            && i.Mnemonic is Mnemonic.Movaps or Mnemonic.Movups or Mnemonic.Movdqa or Mnemonic.Movdqu)
        {
            source = i.Op1Register;
            return true;
        }
        return false;
    }

    private static IEnumerable<Register> WrittenXmm(Instruction i)
    {
        foreach (UsedRegister used in Info.GetInfo(i).GetUsedRegisters())
        {
            Register r = used.Register;
            if (r.IsYMM()) r = Register.XMM0 + (r - Register.YMM0);
            else if (r.IsZMM()) r = Register.XMM0 + (r - Register.ZMM0);
            if (!r.IsXMM()) continue;
            if (used.Access is OpAccess.Write or OpAccess.ReadWrite or OpAccess.CondWrite or OpAccess.ReadCondWrite) yield return r;
        }
    }
}
