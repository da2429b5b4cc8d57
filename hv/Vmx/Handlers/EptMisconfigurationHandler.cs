// VMX root, interrupts off. EPT misconfiguration (SDM Vol 3C 29.3.3.1): an entry Vigil wrote is
// invalid (reserved bits, bad memory type, write-without-read). A bug in the map: log and stop.
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class EptMisconfigurationHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            VmxFatal.Report(ref e, "EPT misconfiguration");
            return ExitAction.Resume;
        }
    }
}
