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

    private static IEnumerable<(string Field, AssemblerRegister64 Register)> HostRegisters() =>
    [
        ("Rax", rax), ("Rcx", rcx), ("Rdx", rdx), ("Rbx", rbx), ("Rbp", rbp), ("Rsi", rsi), ("Rdi", rdi),
        ("R8", r8), ("R9", r9), ("R10", r10), ("R11", r11), ("R12", r12), ("R13", r13), ("R14", r14), ("R15", r15),
    ];
}
