// SVM host, GIF=0: the length of the instruction an exit emulates, to advance RIP over it. NRIP save
// (VMCB.NextRip) is absent under QEMU and decode assists too (APM Vol 2 15.7.1, 15.33), so the length
// comes from hv/Core/InstructionLength decoding up to 15 guest bytes at CS:RIP (hv/Core/GuestCode:
// through the guest's page walk, page crossings included; linear = physical with paging off), in the
// mode EFER.LMA, CS.L and CS.D give (real and virtual-8086 mode: 16-bit).
// A nested page fault's length comes from the emulation that decoded it (hv/Core/ApicPage, MmioInstruction).
// 0 means the instruction cannot be sized (bytes unreadable, or an encoding the decoder refuses): the
// exit handler then stops the guest on this CPU with its state logged (fail safe: RIP left in place
// would replay the emulated instruction forever, and a #UD would fault an instruction that is valid).
using Vigil.Abi;
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

        public static int Of(SvmCpu* cpu, SvmExitCode code)
            => code == SvmExitCode.NestedPageFault ? cpu->EmulatedLength : Decode(cpu);

        /// <summary>The decoder's answer for the instruction at the guest's CS:RIP; 0 when it cannot be sized.</summary>
        private static int Decode(SvmCpu* cpu)
        {
            Vmcb* vmcb = cpu->Vmcb;
            CpuMode mode = ModeOf(vmcb);
            var paging = new GuestPaging(vmcb->Cr0, vmcb->Cr3, vmcb->Cr4, vmcb->Efer, vmcb->Cpl);
            var memory = new HostPhysicalMemory();
            byte* code = stackalloc byte[InstructionLength.MaxLength];
            var bytes = new System.Span<byte>(code, InstructionLength.MaxLength);
            bool is64 = mode == CpuMode.Bits64;
            ulong linear = is64 ? vmcb->Rip : vmcb->Cs.Base + vmcb->Rip;   // 64-bit mode: CS.base is 0
            int read = GuestCode.Fetch(ref memory, paging, linear, is64, bytes, SvmBackEnd.ReservedBase, SvmBackEnd.ReservedSize);
            if (read == 0) return 0;
            return InstructionLength.Decode(bytes.Slice(0, read), mode, Vendor.AmdSvm);
        }

        public static CpuMode ModeOf(Vmcb* vmcb)
        {
            if ((vmcb->Cr0 & Cr0Pe) == 0 || (vmcb->Rflags & RflagsVm) != 0) return CpuMode.Bits16;
            ushort cs = vmcb->Cs.Attributes;
            return InstructionLength.ModeOf((vmcb->Efer & EferLma) != 0, (cs & AttributeLong) != 0, (cs & AttributeDefaultBig) != 0);
        }
    }
}
