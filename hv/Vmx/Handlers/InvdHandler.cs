// VMX root, interrupts off. INVD always exits (SDM Vol 3C 26.1.2). Dropping dirty cache lines would
// also drop the hypervisor's own writes, so the host writes them back instead (WBINVD), as other
// hypervisors do.
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class InvdHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            HvStubs.Wbinvd();
            return ExitAction.AdvanceRip;
        }
    }
}
