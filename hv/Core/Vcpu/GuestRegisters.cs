// The guest's general-purpose registers as the exit stubs save them on the host stack: the
// generated stubs take every offset from this struct (tools/Vigil.Tool/Stubs), never typed by hand.
// RSP and RIP are not here: they live in the VMCS/VMCB. XMM0-5 (volatile in the Microsoft x64 ABI
// the C# handlers use) are saved by the stub after these fields.
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Core
{
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct GuestRegisters
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

        /// <summary>Keeps the XMM save area that follows 16-byte aligned.</summary>
        public ulong Alignment;

        public fixed ulong Xmm[12];   // xmm0-xmm5, 16 bytes each

        /// <summary>Register by its x86 encoding number (0 = RAX ... 15 = R15; 4 = RSP is not here).</summary>
        public ulong Get(int number) => number switch
        {
            0 => Rax, 1 => Rcx, 2 => Rdx, 3 => Rbx, 5 => Rbp, 6 => Rsi, 7 => Rdi,
            8 => R8, 9 => R9, 10 => R10, 11 => R11, 12 => R12, 13 => R13, 14 => R14, 15 => R15,
            _ => 0,
        };

        public void Set(int number, ulong value)
        {
            switch (number)
            {
                case 0: Rax = value; break;
                case 1: Rcx = value; break;
                case 2: Rdx = value; break;
                case 3: Rbx = value; break;
                case 5: Rbp = value; break;
                case 6: Rsi = value; break;
                case 7: Rdi = value; break;
                case 8: R8 = value; break;
                case 9: R9 = value; break;
                case 10: R10 = value; break;
                case 11: R11 = value; break;
                case 12: R12 = value; break;
                case 13: R13 = value; break;
                case 14: R14 = value; break;
                case 15: R15 = value; break;
            }
        }
    }
}
