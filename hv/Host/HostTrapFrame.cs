// What the generated host IDT entry stubs (tools/Vigil.Tool/Stubs/StubCatalog.Host.cs) leave on the
// stack for the C# exception handler: the general registers and XMM0-5 (stored at these offsets,
// which the tool takes from this struct), then the vector and error code the entry pushed, then the
// CPU's interrupt frame (SDM Vol 3A 6.14.2, APM Vol 2 8.9.3). The tool compiles this file in.
// XMM0-5 are saved because an NMI can arrive anywhere in the host, also between a VM exit and the
// exit stub's own save of the guest's XMM0-5, and the C# handler may use those (volatile in the
// Microsoft x64 ABI; it preserves XMM6-15 itself, and ILC emits no VEX code: Directory.Build.targets).
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Host
{
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct HostTrapFrame
    {
        public ulong Rax;
        public ulong Rcx;
        public ulong Rdx;
        public ulong Rbx;
        public ulong Rbp;
        public ulong Rsi;
        public ulong Rdi;
        public ulong R8;
        public ulong R9;
        public ulong R10;
        public ulong R11;
        public ulong R12;
        public ulong R13;
        public ulong R14;
        public ulong R15;

        /// <summary>Keeps the frame 16 bytes long per pair; the entry stub leaves it zero.</summary>
        public ulong Padding;

        /// <summary>XMM0-XMM5 of the interrupted context, 16 bytes each (restored on return).</summary>
        public fixed ulong Xmm[12];

        // Pushed by the entry stub.
        public ulong Vector;
        public ulong ErrorCode;

        // Pushed by the CPU.
        public ulong Rip;
        public ulong Cs;
        public ulong Rflags;
        public ulong Rsp;
        public ulong Ss;

        /// <summary>Bytes the stub reserves below the vector for the register block (general and XMM registers).</summary>
        public const int RegisterBytes = (16 * 8) + (6 * 16);
    }

    /// <summary>The 64-bit task-state segment (SDM Vol 3A 8.7, APM Vol 2 12.2.5): 104 bytes, packed.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public unsafe struct HostTss
    {
        public uint Reserved0;
        public ulong Rsp0;
        public ulong Rsp1;
        public ulong Rsp2;
        public ulong Reserved1;

        /// <summary>IST1-IST7: stacks the IDT entries may select (index 0 = IST1).</summary>
        public fixed ulong Ist[7];

        public ulong Reserved2;
        public ushort Reserved3;

        /// <summary>Offset of the I/O permission bitmap; = the TSS size: none.</summary>
        public ushort IoMapBase;
    }
}
