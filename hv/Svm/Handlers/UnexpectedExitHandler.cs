// SVM host, GIF=0: an exit no handler expects (or one a handler cannot complete). Defined outcome:
// the full guest state goes to the log and the guest stops on this CPU (the host halts it); Vigil
// never guesses at an emulation.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class UnexpectedExitHandler
    {
        public static ExitAction Handle(SvmCpu* cpu, ref GuestRegisters regs)
        {
            SvmLog.Fatal(cpu);
            Hv.Log.Error("CPU " + cpu->Index.ToString() + ": unexpected exit " + SvmExitCodes.Name((SvmExitCode)cpu->Vmcb->ExitCode)
                + " (0x" + HvMain.Hex(cpu->Vmcb->ExitCode) + "); the guest stops on this CPU");
            SvmStateLog.Write(cpu, ref regs);
            Host.HostExceptions.Stop();
            return ExitAction.Resume;
        }
    }
}
