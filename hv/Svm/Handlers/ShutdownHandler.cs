// SVM host, GIF=0: shutdown (intercept vector 3 bit 31): the guest triple-faulted. On bare metal the
// platform would reset; the defined outcome here is the same, after the full state went to the log:
// a reset through the PCI reset control register 0xCF9 (hard reset), then the keyboard controller.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class ShutdownHandler
    {
        public static ExitAction Handle(SvmCpu* cpu, ref GuestRegisters regs)
        {
            SvmLog.Shutdown(cpu);
            Hv.Log.Error("CPU " + cpu->Index.ToString() + ": the guest triple-faulted (shutdown); resetting the machine");
            SvmStateLog.Write(cpu, ref regs);
            Vigil.Platform.Cpu.OutByte(0xCF9, 0x06);
            Vigil.Platform.Cpu.OutByte(0x64, 0xFE);
            Host.HostExceptions.Stop();
            return ExitAction.Resume;
        }
    }
}
