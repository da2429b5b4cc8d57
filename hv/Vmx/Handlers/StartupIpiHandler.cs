// VMX root, interrupts off. A SIPI exits only in the wait-for-SIPI activity state (SDM Vol 3C 26.2),
// which Vigil never enters (VmxApStartup): should one come anyway, the AP starts at its vector
// (the exit qualification's low byte), as the SIPI asks.
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class StartupIpiHandler
    {
        public static ExitAction Handle(ref VmxVcpu v)
        {
            StartupState.StartAt(ref v, (uint)(v.Exit->Qualification & 0xFF));
            return ExitAction.Resume;
        }
    }
}
