// VMX root, interrupts off. GETSEC always exits (SDM Vol 3C 26.1.2). Vigil offers no SMX to the
// guest: #UD, what GETSEC raises with CR4.SMXE = 0 (SDM Vol 2C GETSEC).
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class GetsecHandler
    {
        public static ExitAction Handle(ref VmxExit e) => VmxInject.UndefinedOpcode(ref e);
    }
}
