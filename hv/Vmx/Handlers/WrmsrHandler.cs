// VMX root, interrupts off. WRMSR of an MSR the bitmap intercepts, or outside its ranges (SDM Vol 3C
// 26.1.3). IA32_FEATURE_CONTROL is locked (a write faults on hardware too), the VMX capability MSRs
// are read-only, unknown MSRs fault: all #GP.
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class WrmsrHandler
    {
        public static ExitAction Handle(ref VmxExit e) => VmxInject.GeneralProtectionFault(ref e);
    }
}
