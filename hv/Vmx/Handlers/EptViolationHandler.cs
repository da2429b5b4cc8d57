// VMX root, interrupts off. EPT violation (SDM Vol 3C 29.3.3.2); the guest-physical address is in the
// VMCS, the qualification says the access (bit 0 read, bit 1 write, bit 2 fetch).
//   - the xAPIC page (read-only in the EPT): the write is emulated (hv/Core/Vcpu/ApicAccessExit), to catch
//     INIT and start-up IPIs to virtualized APs; the VM-exit instruction length is not valid for EPT
//     violations (SDM Vol 3C 28.2.5), so the emulation's length is skipped. An instruction the decoder
//     does not know stops the guest on this CPU (never a wrong emulation).
//   - a write to a page the kernel guard protects (GuardState.ObjectAt, hv/Core/Guard/GuardWrite), or to the
//     hypervisor's reservation (its read-only decoy page: object HypervisorMemory, as on SVM): decoded,
//     judged, recorded, performed by the hypervisor or refused, then stepped over by the decoded length (not
//     when the qualification says the access was the guest's own paging-structure walk: bit 7 set, bit 8
//     clear, SDM Vol 3C Table 28-7 — the walker's A/D update is judged as such, GuardWrite.PageWalk);
//   - a violation that a change of the map in flight explains (a large page being split, or access given
//     since: hv/Core/Paging/NestedMapService) is resumed: the access is retried;
//   - anything else: the identity map grants every other access up to MAXPHYADDR (PoolSize.NestedTop, device
//     BARs included; the hypervisor's pages point at a read-only decoy page), so the map is wrong: full state to the
//     log, then stop.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class EptViolationHandler
    {
        public static ExitAction Handle(ref VmxVcpu v)
        {
            ref VmxExit e = ref *v.Exit;
            ulong gpa = v.ExitGuestPhysical;
            if (ApicPage.Contains(gpa))
            {
                var memory = new HostPhysicalMemory();
                int length = ApicAccessExit.Emulate(ref v, ref memory, (byte*)ApicPage.Base, gpa);
                if (length != 0)
                {
                    InstructionSkip.Skip(ref v, ref memory, length);
                    var trap = default(VmxApicTrapPlatform);
                    ApicTrap.OnApicWrite(ref trap, v.Index, (uint)(gpa & 0xFFF));   // lifts the trap when no CPU may be started
                    return ExitAction.Resume;
                }
                VmxFatal.Report(ref e, "xAPIC access by an instruction the MMIO decoder does not know");
            }
            ulong q = e.Qualification;   // one VMREAD
            bool pagingStructure = (q & (1UL << 7)) != 0 && (q & (1UL << 8)) == 0;
            if ((q & 2) != 0 && pagingStructure)
            {
                // The guest's page walker setting an A/D bit in an entry on a guarded page (hv/Core/Guard/GuardWrite.PageWalk).
                var walkMemory = new HostPhysicalMemory();
                var walkCpus = default(VmxNestedMapCpus);
                if (GuardWrite.PageWalk(ref v, ref walkMemory, ref walkCpus, gpa)) return ExitAction.Resume;
            }
            if ((q & 2) != 0 && !pagingStructure)
            {
                var guestMemory = new HostPhysicalMemory();
                var cpus = default(VmxNestedMapCpus);
                if (GuardWrite.Handle(ref v, ref guestMemory, ref cpus, gpa, out VcpuAction guarded, out int guardedLength))
                {
                    if (guarded == VcpuAction.Skip && !InstructionSkip.Skip(ref v, ref guestMemory, guardedLength)) VmxFatal.Report(ref e, "cannot step over a guarded write");
                    return ExitAction.Resume;
                }
            }
            // Qualification bits 0-2: the access was a read, a write, an instruction fetch (SDM Vol 3C Table 28-7).
            PageAccess needed = (q & 2) != 0 ? PageAccess.Write : (q & 4) != 0 ? PageAccess.Execute : PageAccess.Read;
            if (VmxNestedMapChanges.IsSpurious(gpa, needed)) return ExitAction.Resume;
            VmxLog.NestedFault(ref e);
            VmxFatal.Report(ref e, "EPT violation");
            return ExitAction.Resume;
        }
    }
}
