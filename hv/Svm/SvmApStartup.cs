// SVM host: the SVM half of the AP start-up protocol (hv/Core/Apic/ApStartup): an AP in the INIT state (its
// INIT was caught at the sender, which then raised an NMI to get it out of the guest: hv/Host/ApKick;
// or a real INIT exit) waits in the host for its start-up IPI, then resumes in real mode at the vector in
// the state hv/Core/Vcpu/StartupState writes for both back ends. The wait has no bound (a CPU the OS took
// offline waits until the OS brings it back), so it runs with GIF set (NMIs, SMIs and machine checks are
// taken meanwhile, APM Vol 2 15.17; the host's RFLAGS.IF stays clear) and keeps acknowledging nested-map
// changes. The sender's side (the ICR write caught through the MSR permission map or the xAPIC page) is
// vendor-neutral. No logging on this path: it is timing-sensitive.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmApStartup
    {
        /// <summary>Parks this CPU in the host until a start-up IPI for it arrives, then starts the guest there.</summary>
        public static ExitAction WaitForStartup(ref SvmVcpu v)
        {
            uint index = v.Index;
            uint vector;
            var trap = default(SvmApicTrapPlatform);
            ApicTrap.EnsureArmed(ref trap, index);   // its start-up IPI must be caught at the sender
            Native.HvStubs.Stgi();
            while (!ApStartup.TryStart(index, out vector))
            {
                SvmNestedMapChanges.Acknowledge(index);
                Vigil.Platform.Cpu.Pause();
            }
            Native.HvStubs.Clgi();
            StartupState.StartAt(ref v, vector);
            LogRings.Write(index, LogEvent.ApStarted, vector, (ulong)vector << 12);
            return ExitAction.Resume;
        }
    }
}
