using System;
using System.Runtime.InteropServices;

namespace Vigil.Agent;

/// <summary>
/// Makes hypercalls: the machine code (generated with Iced: HypercallStub.g.cs) is copied into an
/// executable page and called through a function pointer. Only after CPUID says Vigil is present:
/// without a hypervisor VMCALL/VMMCALL raise #UD (SIGILL).
/// </summary>
internal static unsafe partial class HypercallStub
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;

    private static delegate* unmanaged<ulong*, void> s_call;

    /// <summary>Prepares the stub for the CPU vendor: VMCALL on Intel, VMMCALL on AMD.</summary>
    public static bool Initialize(bool amd)
    {
        ReadOnlySpan<byte> code = amd ? VmmcallCode : VmcallCode;
        void* page = Mmap(null, 4096, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (page == (void*)-1) return false;
        code.CopyTo(new Span<byte>(page, 4096));
        if (Mprotect(page, 4096, ProtRead | ProtExec) != 0) return false;
        s_call = (delegate* unmanaged<ulong*, void>)page;
        return true;
    }

    /// <summary>regs = {RAX, RBX, RCX, RDX, RSI} in and out.</summary>
    public static void Call(Span<ulong> regs)
    {
        if (regs.Length < 5) throw new ArgumentException("five registers", nameof(regs));
        fixed (ulong* r = regs) s_call(r);
    }

    [DllImport("libc", EntryPoint = "mmap")]
    private static extern void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "mprotect")]
    private static extern int Mprotect(void* address, nuint length, int protection);
}
