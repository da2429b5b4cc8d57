// SVM host, GIF=0: nested page fault (#VMEXIT 0x400, APM Vol 2 15.25.6): EXITINFO1 = the fault's
// error code (bit 0 present, bit 1 write, bit 2 user, bit 4 fetch), EXITINFO2 = the guest-physical
// address.
//   - the xAPIC page (read-only in the map): the write is emulated (hv/Core/Vcpu/ApicAccessExit), to catch
//     INIT and start-up IPIs to virtualized APs; an instruction the decoder does not know stops the guest here;
//   - a write to a page the kernel guard protects (GuardState.ObjectAt, hv/Core/Guard/GuardWrite), or to the
//     hypervisor's reservation (object HypervisorMemory, refused and recorded the same way as on VMX): decoded,
//     judged, recorded, performed by the hypervisor or refused; when EXITINFO1 bit 33 says the fault hit the
//     guest's own page-table walk (APM Vol 2 15.25.6), the walker's A/D update is judged as such (GuardWrite.PageWalk);
//   - the hypervisor's reservation: a read gets a blank page there instead (read-only, zeros: nothing
//     of the hypervisor shows; a later write faults again and goes to the guard), a fetch gets #GP;
//   - a fault that a change of the map in flight explains (a large page being split, or access given
//     since: hv/Core/Paging/NestedMapService) is resumed: the access is retried;
//   - anything else: the nested map covers all the CPU can address (PoolSize.NestedTop: MAXPHYADDR, device
//     BARs included) with full access, so the map is wrong: the full state goes to the log, the guest stops
//     on this CPU.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class NestedPageFaultHandler
    {
        private const ulong Write = 1UL << 1;
        private const ulong Fetch = 1UL << 4;
        private const ulong PageTableWalk = 1UL << 33;

        public static ExitAction Handle(ref SvmVcpu v, ref GuestRegisters regs)
        {
            SvmCpu* cpu = v.Cpu;
            Vmcb* vmcb = cpu->Vmcb;
            ulong gpa = vmcb->ExitInfo2;
            ulong error = vmcb->ExitInfo1;
            if (ApicPage.Contains(gpa))
            {
                var memory = new HostPhysicalMemory();
                int length = ApicAccessExit.Emulate(ref v, ref memory, (byte*)ApicPage.Base, gpa);
                if (length == 0) return UnexpectedExitHandler.Handle(cpu, ref regs);
                cpu->EmulatedLength = length;
                var trap = default(SvmApicTrapPlatform);
                ApicTrap.OnApicWrite(ref trap, cpu->Index, (uint)(gpa & 0xFFF));   // lifts the trap when no CPU may be started
                return ExitAction.Skip;
            }
            if ((error & Write) != 0 && (error & PageTableWalk) != 0)
            {
                // The guest's page walker setting an A/D bit in an entry on a guarded page (hv/Core/Guard/GuardWrite.PageWalk).
                var walkMemory = new HostPhysicalMemory();
                var walkCpus = default(SvmNestedMapCpus);
                if (GuardWrite.PageWalk(ref v, ref walkMemory, ref walkCpus, gpa)) return ExitAction.Resume;
            }
            if ((error & Write) != 0 && (error & PageTableWalk) == 0)
            {
                var guestMemory = new HostPhysicalMemory();
                var cpus = default(SvmNestedMapCpus);
                if (GuardWrite.Handle(ref v, ref guestMemory, ref cpus, gpa, out VcpuAction guarded, out int guardedLength))
                {
                    cpu->EmulatedLength = guardedLength;
                    return guarded == VcpuAction.Skip ? ExitAction.Skip : ExitAction.Resume;
                }
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
    }
}
