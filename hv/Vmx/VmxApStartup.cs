// VMX root, interrupts off: the VMX half of the AP start-up protocol (hv/Core/Apic/ApStartup). An AP in the
// INIT state (its INIT was caught at the sender, which then raised an NMI to get it out of the guest:
// hv/Host/ApKick; or a real INIT exit) waits in the host for its start-up IPI, caught at the sender too,
// then resumes in real mode at the vector in the state hv/Core/Vcpu/StartupState writes for both back
// ends, in the active state.
// The wait-for-SIPI activity state is never used: QEMU/KVM's nested VMX lacks it, and Bochs 2.7 keeps
// a delivered INIT pending after the INIT exit (fixed in Bochs after 2.7, commit 88f881c6d), so the
// AP would take the INIT again on every entry. No logging here: timing-sensitive.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxApStartup
    {
        /// <summary>Parks this CPU in the host until a start-up IPI for it arrives, then starts the guest there.</summary>
        public static void WaitForStartup(ref VmxVcpu v)
        {
            uint index = v.Index;
            uint vector;
            var trap = default(VmxApicTrapPlatform);
            ApicTrap.EnsureArmed(ref trap, index);   // its start-up IPI must be caught at the sender
            while (!ApStartup.TryStart(index, out vector))
            {
                VmxNestedMapChanges.Acknowledge(index);   // a CPU offline waits here for long: EPT changes must not wait for it
                Vigil.Platform.Cpu.Pause();
            }
            StartupState.StartAt(ref v, vector);
            LogRings.Write(index, LogEvent.ApStarted, vector, (ulong)vector << 12);
        }
    }
}
