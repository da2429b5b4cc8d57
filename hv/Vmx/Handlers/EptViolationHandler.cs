// VMX root, interrupts off. EPT violation (SDM Vol 3C 29.3.3.2). The identity map grants every
// access everywhere (the hypervisor's pages point at a decoy page), so a violation means the map is
// wrong: full state to the log, then stop (the VM-exit instruction length is not valid here, so
// skipping the access would need the instruction length decoder).
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class EptViolationHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            VmxLog.NestedFault(ref e);
            VmxFatal.Report(ref e, "EPT violation");
            return ExitAction.Resume;
        }
    }
}
