using System;
using System.IO;
using System.Linq;
using System.Text;
using Iced.Intel;
using Vigil.Tool;
using Vigil.Tool.Stubs;
using Xunit;

namespace Vigil.Tests.Stubs;

public class StubTests
{
    private static readonly StubImage Image = StubImage.Build(StubCatalog.Stubs, StubCatalog.Data);

    [Fact]
    public void Committed_generated_files_match_the_catalog()
    {
        // The same check CI makes with `make generate && git diff --exit-code`.
        string root = Repository.Root();
        foreach (var (path, content) in StubSources.Generate(Image))
        {
            string full = Path.Combine(root, path);
            Assert.True(File.Exists(full), $"{path} is missing: run `make generate`");
            Assert.True(File.ReadAllText(full) == content, $"{path} is stale: run `make generate`");
        }
    }

    [Fact]
    public void Every_stub_decodes_completely_and_ends_in_a_return_or_jump()
    {
        foreach (var (stub, offset, code) in Image.Placed)
        {
            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
            Instruction last = default;
            while (decoder.IP < (ulong)code.Length)
            {
                last = decoder.Decode();
                Assert.False(last.IsInvalid, $"{stub.Symbol}: invalid instruction at +{last.IP:x}");
            }
            Assert.True(last.FlowControl is FlowControl.Return or FlowControl.UnconditionalBranch or FlowControl.IndirectBranch,
                $"{stub.Symbol} falls through at its end ({last})");
            Assert.Equal(0, offset % 16);
        }
    }

    [Fact]
    public void Cpuid_preserves_the_non_volatile_rbx()
    {
        byte[] code = Image.Placed.Single(p => p.Stub.Symbol == "vigil_cpuid").Code;
        Assert.Equal(0x53, code[0]);           // push rbx
        Assert.Equal(new byte[] { 0x5B, 0xC3 }, code[^2..]); // pop rbx; ret
    }

    [Fact]
    public void Spin_lock_takes_the_word_from_0_to_1_with_one_locked_cmpxchg_and_releases_with_a_store()
    {
        var acquire = Decode("vigil_spin_try_acquire");
        Instruction cmpxchg = Assert.Single(acquire, i => i.Mnemonic == Mnemonic.Cmpxchg);
        Assert.True(cmpxchg.HasLockPrefix, "cmpxchg without LOCK is not atomic across CPUs");
        Assert.Equal(OpKind.Memory, cmpxchg.Op0Kind);
        Assert.Equal(Register.RCX, cmpxchg.MemoryBase);
        Assert.Equal(MemorySize.UInt32, cmpxchg.MemorySize);
        Assert.Equal(Register.EDX, cmpxchg.Op1Register);
        int at = acquire.IndexOf(cmpxchg);
        // Before it: EAX = 0 (the expected free value), EDX = 1 (the taken value); after it: the result from ZF.
        Assert.Contains(acquire.Take(at), i => i.Mnemonic == Mnemonic.Xor && i.Op0Register == Register.EAX && i.Op1Register == Register.EAX);
        Assert.Contains(acquire.Take(at), i => i.Mnemonic == Mnemonic.Mov && i.Op0Register == Register.EDX && i.Immediate32 == 1);
        Assert.Equal(Mnemonic.Sete, acquire[at + 1].Mnemonic);
        Assert.Equal(Mnemonic.Movzx, acquire[at + 2].Mnemonic);
        Assert.Equal(Register.EAX, acquire[at + 2].Op0Register);
        Assert.Equal(Mnemonic.Ret, acquire[^1].Mnemonic);

        var release = Decode("vigil_spin_release");
        Assert.Equal(2, release.Count);
        Assert.Equal(Mnemonic.Mov, release[0].Mnemonic);
        Assert.Equal(Register.RCX, release[0].MemoryBase);
        Assert.Equal(MemorySize.UInt32, release[0].MemorySize);
        Assert.Equal(0u, release[0].Immediate32);
    }

    [Fact]
    public void The_fenced_msr_write_makes_earlier_stores_visible_before_the_wrmsr()
    {
        // SDM Vol 3A 11.12.3: x2APIC MSR writes are not serializing; MFENCE then LFENCE before the WRMSR.
        var code = Decode("vigil_wrmsr_fenced").Select(i => i.Mnemonic).ToList();
        int wrmsr = code.IndexOf(Mnemonic.Wrmsr);
        Assert.True(wrmsr > 0, "no WRMSR");
        Assert.Equal(new[] { Mnemonic.Mfence, Mnemonic.Lfence }, code.Take(2));
        Assert.DoesNotContain(Mnemonic.Wrmsr, code.Take(wrmsr));
        Assert.Equal(Mnemonic.Ret, code[^1]);
    }

    private static System.Collections.Generic.List<Instruction> Decode(string symbol)
    {
        byte[] code = Image.Placed.Single(p => p.Stub.Symbol == symbol).Code;
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
        var instructions = new System.Collections.Generic.List<Instruction>();
        while (decoder.IP < (ulong)code.Length)
        {
            Instruction i = decoder.Decode();
            if (i.Mnemonic == Mnemonic.Int3) break;   // alignment padding
            instructions.Add(i);
        }
        return instructions;
    }

    [Fact]
    public void Symbols_are_unique_and_bindings_have_signatures()
    {
        var symbols = Image.Placed.Select(p => p.Stub.Symbol).Concat(Image.PlacedData.Select(d => d.Symbol.Symbol)).ToList();
        Assert.Equal(symbols.Count, symbols.Distinct(StringComparer.Ordinal).Count());
        foreach (var (stub, _, _) in Image.Placed)
        {
            Assert.Equal(stub.Binding == StubBinding.None, stub.Signature.Length == 0);
        }
    }

    [Fact]
    public void Coff_object_has_the_sections_symbols_and_relocations_the_linker_needs()
    {
        byte[] coff = Image.ToCoff();
        Assert.Equal(0x8664, BitConverter.ToUInt16(coff, 0));         // IMAGE_FILE_MACHINE_AMD64
        Assert.Equal(2, BitConverter.ToUInt16(coff, 2));              // .text, .data
        Assert.Equal(0u, BitConverter.ToUInt32(coff, 4));             // no timestamp: reproducible
        int symbolTable = BitConverter.ToInt32(coff, 8);
        int symbolCount = BitConverter.ToInt32(coff, 12);
        int strings = symbolTable + (18 * symbolCount);

        string Section(int i) => Encoding.ASCII.GetString(coff, 20 + (40 * i), 8).TrimEnd('\0');
        Assert.Equal(".text", Section(0));
        Assert.Equal(".data", Section(1));
        Assert.Equal(Image.Text.Length, BitConverter.ToInt32(coff, 20 + 16));
        Assert.Equal(Image.Relocations.Count, BitConverter.ToUInt16(coff, 20 + 32));

        var table = Enumerable.Range(0, symbolCount).Select(i =>
        {
            int at = symbolTable + (18 * i);
            string name = BitConverter.ToInt32(coff, at) == 0
                ? ReadCString(coff, strings + BitConverter.ToInt32(coff, at + 4))
                : Encoding.ASCII.GetString(coff, at, 8).TrimEnd('\0');
            return (Name: name, Value: BitConverter.ToInt32(coff, at + 8), Section: BitConverter.ToInt16(coff, at + 12), Class: coff[at + 16]);
        }).ToList();

        foreach (var (stub, offset, _) in Image.Placed)
        {
            Assert.Contains((stub.Symbol, offset, (short)1, (byte)2), table);
        }
        Assert.Contains(("__security_cookie", 0, (short)2, (byte)2), table);
        // Symbols the stubs use but do not define stay undefined (section 0) for lld-link.
        Assert.Contains(table, s => s.Name == "__ReadyToRunHeader" && s.Section == 0);
        Assert.Contains(table, s => s.Name == "vigil_resolve_interface" && s.Section == 0);

        int relocations = BitConverter.ToInt32(coff, 20 + 24);
        for (int i = 0; i < Image.Relocations.Count; i++)
        {
            int at = relocations + (10 * i);
            Assert.Equal(Image.Relocations[i].Offset, BitConverter.ToInt32(coff, at));
            Assert.Equal(Image.Relocations[i].Symbol, table[BitConverter.ToInt32(coff, at + 4)].Name);
            Assert.Equal((ushort)CoffRelocationType.Rel32, BitConverter.ToUInt16(coff, at + 8));
        }
    }

    [Fact]
    public void Rel32_fields_point_at_the_displacement_of_the_instruction()
    {
        foreach (StubRelocation r in Image.Relocations)
        {
            var (stub, offset, code) = Image.Placed.Single(p => r.Offset >= p.Offset && r.Offset < p.Offset + p.Code.Length);
            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
            while (decoder.IP < (ulong)code.Length)
            {
                Instruction instruction = decoder.Decode();
                ulong end = instruction.NextIP;
                if (r.Offset - offset >= (int)instruction.IP && r.Offset - offset < (int)end)
                {
                    Assert.Equal((int)end - 4, r.Offset - offset);   // the last four bytes: addend 0 is right
                    Assert.Equal(0, BitConverter.ToInt32(code, r.Offset - offset));
                }
            }
            Assert.NotNull(stub);
        }
    }

    private static string ReadCString(byte[] data, int offset)
    {
        int end = Array.IndexOf(data, (byte)0, offset);
        return Encoding.ASCII.GetString(data, offset, end - offset);
    }
}

/// <summary>The safe RDMSR/WRMSR stubs and the #GP fix-up's lookup (hv/Host/HostSafeMsr.cs, HostExceptions).</summary>
public class SafeMsrStubTests
{
    private static readonly StubImage Image = StubImage.Build(StubCatalog.Stubs, StubCatalog.Data);

    private static (int Offset, System.Collections.Generic.List<Instruction> Code) Decode(string symbol)
    {
        var (_, offset, code) = Image.Placed.Single(p => p.Stub.Symbol == symbol);
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
        var list = new System.Collections.Generic.List<Instruction>();
        while (decoder.IP < (ulong)code.Length) list.Add(decoder.Decode());
        return (offset, list);
    }

    /// <summary>What the stub returns in EAX when run from <paramref name="start"/> to its RET (straight-line code only).</summary>
    private static uint ReturnValue(System.Collections.Generic.List<Instruction> code, int start)
    {
        uint eax = 0xFFFF_FFFF;
        foreach (Instruction i in code.SkipWhile(i => (int)i.IP < start))
        {
            if (i.Mnemonic == Mnemonic.Ret) return eax;
            if (i.Mnemonic == Mnemonic.Xor && i.Op0Register == Register.EAX && i.Op1Register == Register.EAX) eax = 0;
            if (i.Mnemonic == Mnemonic.Mov && i.Op0Register == Register.EAX && i.Op1Kind == OpKind.Immediate32) eax = i.Immediate32;
            Assert.NotEqual(FlowControl.ConditionalBranch, i.FlowControl);
        }
        throw new InvalidOperationException("no ret");
    }

    [Theory]
    [InlineData("vigil_safe_rdmsr", Mnemonic.Rdmsr, 0)]
    [InlineData("vigil_safe_wrmsr", Mnemonic.Wrmsr, 1)]
    public void The_fix_up_resumes_a_faulting_msr_instruction_at_a_path_returning_1(string symbol, Mnemonic instruction, int which)
    {
        var (_, code) = Decode(symbol);
        Instruction msr = Assert.Single(code, i => i.Mnemonic is Mnemonic.Rdmsr or Mnemonic.Wrmsr);
        Assert.Equal(instruction, msr.Mnemonic);
        Assert.Equal(0u, ReturnValue(code, (int)msr.NextIP));   // no fault: 0

        // vigil_safe_msr_resume: rax/r8 = the stub; lea rdx, [base + fault]; cmp rcx, rdx; then the resume address.
        var (_, resume) = Decode("vigil_safe_msr_resume");
        var compares = resume.Where(i => i.Mnemonic == Mnemonic.Lea && i.Op0Register == Register.RDX).ToList();
        Assert.Equal(2, compares.Count);
        Assert.Equal(msr.IP, compares[which].MemoryDisplacement64);
        Instruction target = resume[resume.IndexOf(compares[which]) + 3];   // cmp, jne, then add rax / lea rax
        ulong resumeAt = target.Mnemonic == Mnemonic.Add ? target.Immediate32 : target.MemoryDisplacement64;
        Assert.Equal(1u, ReturnValue(code, (int)resumeAt));       // #GP: 1
        Assert.True(resumeAt > msr.IP);
        if (instruction == Mnemonic.Rdmsr)
        {
            // *value = 0 on the failure path too.
            Assert.Contains(code.SkipWhile(i => i.IP < resumeAt), i => i.Mnemonic == Mnemonic.Mov && i.Op0Kind == OpKind.Memory && i.MemoryBase == Register.R8 && i.Immediate32 == 0);
        }
        // The base register of each comparison is the stub the relocation names.
        var relocations = Image.Relocations.Where(r => r.Offset >= Decode("vigil_safe_msr_resume").Offset && r.Offset < Decode("vigil_safe_msr_resume").Offset + 64).Select(r => r.Symbol).ToList();
        Assert.Equal(["vigil_safe_wrmsr", "vigil_safe_rdmsr"], relocations);
        Assert.Equal(which == 0 ? Register.RAX : Register.R8, compares[which].MemoryBase);
    }
}
