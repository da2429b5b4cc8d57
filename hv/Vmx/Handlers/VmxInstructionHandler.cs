// VMX root, interrupts off. VMXON, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMLAUNCH, VMRESUME,
// VMXOFF, INVEPT, INVVPID and VMFUNC from the guest always exit (SDM Vol 3C 26.1.2). Vigil offers no
// nested virtualization and CPUID hides VMX: #UD, as on a CPU without VMX.
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class VmxInstructionHandler
    {
        public static ExitAction Handle(ref VmxExit e) => VmxInject.UndefinedOpcode(ref e);
    }
}
