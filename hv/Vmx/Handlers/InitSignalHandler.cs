// VMX root, interrupts off. INIT always exits in VMX non-root (SDM Vol 3C 26.2). INIT and start-up
// IPIs to virtualized CPUs are caught at the sender (hv/Core/Apic/ApStartup), so an INIT exit means a sender
// the hypervisor does not see: the CPU is put in the INIT state of the protocol, and the dispatcher
// has it wait in the host for its start-up IPI (VmxApStartup), exactly as when the INIT is caught.
// No logging here: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class InitSignalHandler
    {
        public static unsafe ExitAction Handle(ref VmxExit e)
        {
            ApStartup.OnInit(e.Cpu->Index);
            return ExitAction.Resume;
        }
    }
}
