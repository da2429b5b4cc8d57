using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using Iced.Intel;
using Vigil.Hypervisor.Host;
using static Iced.Intel.AssemblerRegisters;

namespace Vigil.Tool.Stubs;

/// <summary>Host-environment stubs (IDT entry points, descriptor-table and CR3 switching) for the hypervisor.</summary>
internal static partial class StubCatalog
{
    /// <summary>Exceptions that push an error code (SDM Vol 3A Table 6-1): #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.</summary>
    private static readonly HashSet<int> s_errorCodeVectors = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

    private static int TrapOffset(string field) => (int)Marshal.OffsetOf<HostTrapFrame>(field);

    private static IEnumerable<Stub> HostStubs()
    {
        // 32 entries of 16 bytes, then the common path. Each entry pushes a zero error code where the CPU
        // pushes none, then its vector, and jumps (rel32, computed here: fixed layout) to the common path,
        // which stores the registers into a HostTrapFrame, calls vigil_host_exception(frame) with an
        // aligned stack, restores them and returns with IRETQ (an NMI and a fixed-up #GP come back).
        yield return new("vigil_host_vectors", StubBinding.Hypervisor, "ulong HostVectorTable()",
            "Returns the address of the 32 host IDT entry points (16 bytes each).", e =>
        {
            var a = e.Asm;
            Label table = a.CreateLabel();
            a.lea(rax, __[table]);
            a.ret();
            a.int3();
            a.int3();
            a.int3();
            a.int3();
            a.int3();
            a.int3();
            a.int3();
            a.int3();
            a.Label(ref table);
            const int EntryBytes = 16;
            const int Entries = 32;
            for (int v = 0; v < Entries; v++)
            {
                int rel = (Entries * EntryBytes) - ((v * EntryBytes) + 9);
                byte first = s_errorCodeVectors.Contains(v) ? (byte)0x66 : (byte)0x6A;   // 66 90 = 2-byte NOP; 6A 00 = push 0
                byte second = s_errorCodeVectors.Contains(v) ? (byte)0x90 : (byte)0x00;
                a.db(first, second, 0x6A, (byte)v, 0xE9, (byte)rel, (byte)(rel >> 8), (byte)(rel >> 16), (byte)(rel >> 24),
                    0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC);
            }
            // Common path: [rsp] = vector, [rsp+8] = error code, then the CPU's frame.
            // XMM0-5 before any C# runs: the interrupted context may be the guest's (an NMI between a VM
            // exit and the exit stub's save) or a host handler's; the C# code preserves XMM6-15 (ABI).
            // MOVDQU: the CPU aligns RSP to 16 before pushing its frame, which leaves this block at 8 mod 16.
            a.sub(rsp, HostTrapFrame.RegisterBytes);
            foreach (var (field, register) in HostRegisters()) a.mov(__qword_ptr[rsp + TrapOffset(field)], register);
            for (int i = 0; i < s_volatileXmm.Length; i++) a.movdqu(__xmmword_ptr[rsp + TrapOffset("Xmm") + (16 * i)], s_volatileXmm[i]);
            a.mov(__qword_ptr[rsp + TrapOffset("Padding")], 0);
            a.mov(rcx, rsp);
            a.mov(rbx, rsp);
            a.and(rsp, -16);
            a.sub(rsp, 32);
            e.CallExternal("vigil_host_exception");
            a.mov(rsp, rbx);
            for (int i = 0; i < s_volatileXmm.Length; i++) a.movdqu(s_volatileXmm[i], __xmmword_ptr[rsp + TrapOffset("Xmm") + (16 * i)]);
            foreach (var (field, register) in HostRegisters()) a.mov(register, __qword_ptr[rsp + TrapOffset(field)]);
            a.add(rsp, HostTrapFrame.RegisterBytes + 16);   // registers, vector, error code
            a.iretq();
        });

        // Far return to reload CS (SDM Vol 3A 3.4.3: CS cannot be moved into), then the data segments.
        yield return new("vigil_host_load_segments", StubBinding.Hypervisor, "void HostLoadSegments(ushort code, ushort data)",
            "Loads CS with a far return and DS, ES, SS with the data selector.", e =>
        {
            var a = e.Asm;
            a.mov(ds, dx);
            a.mov(es, dx);
            a.mov(ss, dx);
            a.pop(rax);
            a.movzx(rcx, cx);
            a.push(rcx);
            a.push(rax);
            a.db(0x48, 0xCB);   // retfq: pops RIP, then CS
        });

        // After a VM exit caused by an NMI, NMIs stay blocked until the host executes IRET (SDM Vol 3C 28.1:
        // "an NMI causes subsequent NMIs to be blocked, but only after the VM exit completes"; with virtual
        // NMIs, VM entry does not lift it). An IRETQ to the next instruction, on the same stack, lifts it.
        yield return new("vigil_host_unblock_nmi", StubBinding.Hypervisor, "void HostUnblockNmi()",
            "Executes an IRETQ to the next instruction: lifts the NMI blocking a VM exit caused by an NMI leaves.", e =>
        {
            var a = e.Asm;
            Label next = a.CreateLabel();
            a.mov(rax, rsp);
            a.mov(ecx, ss);
            a.push(rcx);
            a.push(rax);
            a.pushfq();
            a.mov(ecx, cs);
            a.push(rcx);
            a.lea(rcx, __[next]);
            a.push(rcx);
            a.iretq();
            a.Label(ref next);
            a.ret();
        });
    }

    // RDMSR/WRMSR whose #GP the host survives (an MSR the CPU lacks, a value it refuses): the #GP handler
    // (hv/Host/HostExceptions.cs) asks vigil_safe_msr_resume whether the faulting RIP is one of these two
    // instructions and, if so, resumes at the stub's failure path, which returns 1. The guest then gets
    // the #GP the hardware raised (hv/Core/Msr/GuestMsrAccess.cs). SDM Vol 2B RDMSR/WRMSR: #GP(0) for a
    // reserved or unimplemented MSR, or a value with reserved bits set.
    private static void EmitSafeReadMsr(StubEmitter e)
    {
        var a = e.Asm;
        a.mov(r8, rdx);
        a.rdmsr();                  // the one instruction that may fault
        a.shl(rdx, 32);
        a.or(rax, rdx);
        a.mov(__qword_ptr[r8], rax);
        a.xor(eax, eax);
        a.ret();
        a.mov(__qword_ptr[r8], 0);  // the fix-up resumes here: value 0, result 1
        a.mov(eax, 1);
        a.ret();
    }

    private static void EmitSafeWriteMsr(StubEmitter e)
    {
        var a = e.Asm;
        a.mov(rax, rdx);
        a.shr(rdx, 32);
        a.wrmsr();                  // the one instruction that may fault
        a.xor(eax, eax);
        a.ret();
        a.mov(eax, 1);              // the fix-up resumes here: result 1
        a.ret();
    }

    /// <summary>Offsets in a safe-MSR stub of its RDMSR/WRMSR and of its failure path (the instruction after the first RET), found by decoding it.</summary>
    private static (int Fault, int Resume) SafeMsrSites(Action<StubEmitter> emit)
    {
        var e = new StubEmitter();
        emit(e);
        byte[] code = e.Assemble().Code;
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
        int fault = -1;
        while (decoder.IP < (ulong)code.Length)
        {
            Instruction i = decoder.Decode();
            if (i.Mnemonic is Mnemonic.Rdmsr or Mnemonic.Wrmsr) fault = (int)i.IP;
            if (i.Mnemonic == Mnemonic.Ret && fault >= 0) return (fault, (int)i.NextIP);
        }
        throw new InvalidOperationException("a safe-MSR stub needs RDMSR/WRMSR before its first RET");
    }

    private static IEnumerable<Stub> SafeMsrStubs()
    {
        yield return new("vigil_safe_rdmsr", StubBinding.Hypervisor, "ulong SafeReadMsr(uint msr, ulong* value)",
            "rdmsr into *value: 0, or 1 when the CPU raised #GP (caught by the host #GP fix-up; *value = 0).", EmitSafeReadMsr);
        yield return new("vigil_safe_wrmsr", StubBinding.Hypervisor, "ulong SafeWriteMsr(uint msr, ulong value)",
            "wrmsr: 0, or 1 when the CPU raised #GP (caught by the host #GP fix-up).", EmitSafeWriteMsr);
        yield return new("vigil_safe_msr_resume", StubBinding.Hypervisor, "ulong SafeMsrResume(ulong rip)",
            "The failure path to resume at when a #GP hit the RDMSR/WRMSR of vigil_safe_rdmsr/wrmsr at rip; 0 for any other rip.", e =>
        {
            var a = e.Asm;
            var (readFault, readResume) = SafeMsrSites(EmitSafeReadMsr);
            var (writeFault, writeResume) = SafeMsrSites(EmitSafeWriteMsr);
            Label notRead = a.CreateLabel();
            Label notWrite = a.CreateLabel();
            e.LeaRaxExternal("vigil_safe_wrmsr");
            a.mov(r8, rax);
            e.LeaRaxExternal("vigil_safe_rdmsr");
            a.lea(rdx, __[rax + readFault]);
            a.cmp(rcx, rdx);
            a.jne(notRead);
            a.add(rax, readResume);
            a.ret();
            a.Label(ref notRead);
            a.lea(rdx, __[r8 + writeFault]);
            a.cmp(rcx, rdx);
            a.jne(notWrite);
            a.lea(rax, __[r8 + writeResume]);
            a.ret();
            a.Label(ref notWrite);
            a.xor(eax, eax);
            a.ret();
        });
    }

    private static IEnumerable<(string Field, AssemblerRegister64 Register)> HostRegisters() =>
    [
        ("Rax", rax), ("Rcx", rcx), ("Rdx", rdx), ("Rbx", rbx), ("Rbp", rbp), ("Rsi", rsi), ("Rdi", rdi),
        ("R8", r8), ("R9", r9), ("R10", r10), ("R11", r11), ("R12", r12), ("R13", r13), ("R14", r14), ("R15", r15),
    ];
}
