// SVM host, GIF=0: nested page fault (#VMEXIT 0x400, APM Vol 2 15.25.6): EXITINFO1 = the fault's
// error code (bit 0 present, bit 1 write, bit 2 user, bit 4 fetch), EXITINFO2 = the guest-physical
// address.
//   - the xAPIC page (read-only in the map): the write is emulated (hv/Core/ApicPage), to catch INIT and
//     start-up IPIs to virtualized APs; an instruction the decoder does not know stops the guest here;
//   - the hypervisor's reservation: a read gets a blank page there instead (read-only, zeros: nothing
//     of the hypervisor shows), a write or fetch gets #GP, which the kernel's fault-tolerant copies survive;
//   - a fault that a change of the map in flight explains (a large page being split, or access given
//     since: hv/Core/NestedMapService) is resumed: the access is retried;
//   - anything else is not mapped by design: the full state goes to the log, the guest stops on this CPU.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class NestedPageFaultHandler
    {
        private const ulong Write = 1UL << 1;
        private const ulong Fetch = 1UL << 4;

        public static ExitAction Handle(SvmCpu* cpu, ref GuestRegisters regs)
        {
            Vmcb* vmcb = cpu->Vmcb;
            ulong gpa = vmcb->ExitInfo2;
            ulong error = vmcb->ExitInfo1;
            if (ApicPage.Contains(gpa))
            {
                int length = EmulateApicAccess(cpu, ref regs, gpa);
                if (length == 0) return UnexpectedExitHandler.Handle(cpu, ref regs);
                cpu->EmulatedLength = length;
                return ExitAction.Skip;
            }
            if (gpa >= SvmBackEnd.ReservedBase && gpa < SvmBackEnd.ReservedBase + SvmBackEnd.ReservedSize)
            {
                SvmLog.HiddenMemory(cpu, gpa, error);
                if ((error & (Write | Fetch)) != 0) return SvmEvents.InjectGeneralProtection(cpu);
                // The reservation was split to 4 KiB pages at Prepare: Redirect takes no table from the pool and
                // cannot fail; if it did, the guest stops here rather than fault on the same read forever.
                var pages = Hv.Pages;
                if (!SvmBackEnd.NestedTables.Redirect(ref pages, gpa & ~0xFFFUL, SvmBackEnd.BlankPage, SvmBackEnd.BlankAccess))
                    return UnexpectedExitHandler.Handle(cpu, ref regs);
                vmcb->TlbControl = 1;
                return ExitAction.Resume;
            }
            PageAccess needed = (error & Write) != 0 ? PageAccess.Write : (error & Fetch) != 0 ? PageAccess.Execute : PageAccess.Read;
            if (SvmNestedMapChanges.IsSpurious(gpa, needed)) return ExitAction.Resume;
            return UnexpectedExitHandler.Handle(cpu, ref regs);
        }

        /// <summary>The instruction at the guest's CS:RIP (GuestCode: page walk, page crossings) applied to the APIC; its length, 0 if unknown.</summary>
        private static int EmulateApicAccess(SvmCpu* cpu, ref GuestRegisters regs, ulong gpa)
        {
            Vmcb* vmcb = cpu->Vmcb;
            byte* code = stackalloc byte[15];
            var paging = new GuestPaging(vmcb->Cr0, vmcb->Cr3, vmcb->Cr4, vmcb->Efer, vmcb->Cpl);
            var memory = new HostPhysicalMemory();
            bool is64 = SvmInstructionLength.ModeOf(vmcb) == CpuMode.Bits64;
            ulong linear = is64 ? vmcb->Rip : vmcb->Cs.Base + vmcb->Rip;
            int read = GuestCode.Fetch(ref memory, paging, linear, is64, new System.Span<byte>(code, 15), SvmBackEnd.ReservedBase, SvmBackEnd.ReservedSize);
            if (read == 0) return 0;
            for (int i = read; i < 15; i++) code[i] = 0;
            // RAX lives in the VMCB: the exit handler copied it into regs and writes it back after the handler.
            ulong rsp = vmcb->Rsp;
            int length = ApicPage.Emulate((byte*)ApicPage.Base, (uint)(gpa & 0xFFF), new System.ReadOnlySpan<byte>(code, 15), ref regs, ref rsp, cpu->Index);
            vmcb->Rsp = rsp;
            return length;
        }
    }
}
