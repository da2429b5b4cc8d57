// SVM host, GIF=0: the guest's code mode from the VMCB, for sizing the instruction an exit emulates
// (hv/Core/Vcpu/InstructionSkip: NRIP where the CPU saves it, APM Vol 2 15.7.1, else hv/Core/Decoding/InstructionLength
// over up to 15 guest bytes at CS:RIP; QEMU TCG has neither NRIP save nor decode assists). The mode is the
// one EFER.LMA, CS.L and CS.D give (real and virtual-8086 mode: 16-bit).
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmInstructionLength
    {
        private const ulong EferLma = 1UL << 10;
        private const ulong Cr0Pe = 1UL << 0;
        private const ulong RflagsVm = 1UL << 17;
        private const ushort AttributeLong = 1 << 9;         // descriptor bit 53 (CS.L) in the VMCB's packed form
        private const ushort AttributeDefaultBig = 1 << 10;  // descriptor bit 54 (CS.D)

        /// <summary>
        /// The length NRIP save gives (APM Vol 2 15.7.1: next RIP minus RIP, in the guest's address width); 0 when the
        /// difference is no instruction length (1-15 bytes): the decoder sizes the instruction then.
        /// </summary>
        public static int FromNextRip(ulong rip, ulong nextRip, CpuMode mode)
        {
            ulong length = nextRip - rip;
            if (mode != CpuMode.Bits64) length &= 0xFFFF_FFFF;
            return length is >= 1 and <= (ulong)InstructionLength.MaxLength ? (int)length : 0;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static CpuMode ModeOf(Vmcb* vmcb)
        {
            ushort cs = vmcb->Cs.Attributes;
            if ((vmcb->Efer & EferLma) != 0 && (cs & AttributeLong) != 0) return CpuMode.Bits64;   // the common case first (LMA implies PE, excludes VM)
            if ((vmcb->Cr0 & Cr0Pe) == 0 || (vmcb->Rflags & RflagsVm) != 0) return CpuMode.Bits16;
            return InstructionLength.ModeOf((vmcb->Efer & EferLma) != 0, (cs & AttributeLong) != 0, (cs & AttributeDefaultBig) != 0);
        }
    }
}
