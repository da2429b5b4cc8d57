// VMX root, interrupts off: WBINVD (exit reason 54, with "WBINVD exiting", SDM Vol 3C 26.1.3; for
// hv/Core/Apic/ApicTrap). The host writes the caches back for the guest, then the CPU is marked as maybe on
// its way offline (Linux's play_dead) and the xAPIC trap is armed on every CPU before it resumes.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class WbinvdHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            HvStubs.Wbinvd();
            var trap = default(VmxApicTrapPlatform);
            ApicTrap.OnWbinvd(ref trap, e.Cpu->Index);
            return ExitAction.AdvanceRip;
        }
    }
}
