// VMX root, interrupts off. A SIPI exits only in the wait-for-SIPI activity state (SDM Vol 3C 26.2),
// which Vigil never enters (VmxApStartup): should one come anyway, the AP starts at its vector
// (the exit qualification's low byte), as the SIPI asks.
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class StartupIpiHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            VmxApStartup.StartAt(ref e, (uint)(e.Qualification & 0xFF));
            return ExitAction.Resume;
        }
    }
}
