// SVM host, GIF=0: the SVM half of the AP start-up protocol (hv/Core/ApStartup): a parked AP waits in
// the host for its start-up IPI, then resumes in real mode at the vector in the state
// hv/Core/Vcpu/StartupState writes for both back ends. The sender's side (the ICR write caught through the
// MSR permission map or the xAPIC page) is vendor-neutral. No logging on this path: it is timing-sensitive.
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
            while (!ApStartup.TryStart(index, out vector)) Vigil.Platform.Cpu.Pause();
            StartupState.StartAt(ref v, vector);
            LogRings.Write(index, LogEvent.ApStarted, vector, (ulong)vector << 12);
            return ExitAction.Resume;
        }
    }
}
