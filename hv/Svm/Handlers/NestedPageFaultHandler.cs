// SVM host, GIF=0: nested page fault (#VMEXIT 0x400, APM Vol 2 15.25.6): EXITINFO1 = the fault's
// error code (bit 0 present, bit 1 write, bit 2 user, bit 4 fetch), EXITINFO2 = the guest-physical
// address.
//   - the xAPIC page: emulated (ApicTrap), to catch INIT/start-up IPIs to virtualized APs;
//   - the hypervisor's reservation: a read gets a blank page there instead (read-only, zeros: nothing
//     of the hypervisor shows), a write or fetch gets #GP, which the kernel's fault-tolerant copies survive;
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
            if (ApicTrap.Contains(gpa))
            {
                if (ApicTrap.Emulate(cpu, ref regs, gpa, out int length))
                {
                    cpu->EmulatedLength = length;
                    return ExitAction.Skip;
                }
                return UnexpectedExitHandler.Handle(cpu, ref regs);
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
            return UnexpectedExitHandler.Handle(cpu, ref regs);
        }
    }
}
