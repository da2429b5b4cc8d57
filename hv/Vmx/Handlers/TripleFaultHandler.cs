// VMX root, interrupts off. A triple fault in the guest (SDM Vol 3C 26.2) is a machine reset on bare
// metal: log the full state, then reset the platform (reset control register 0xCF9, then the 8042),
// and stop this CPU if neither works.
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static class TripleFaultHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            VmxLog.Shutdown(ref e);
            VmxFatal.DumpState(ref e, "guest triple fault");
            Hv.Log.Error("resetting the machine, as the guest's triple fault would on bare metal");
            Cpu.OutByte(0xCF9, 0x06);
            Cpu.OutByte(0x64, 0xFE);
            VmxFatal.Report(ref e, "reset did not happen");
            return ExitAction.Resume;
        }
    }
}
