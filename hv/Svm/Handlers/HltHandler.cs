// SVM host, GIF=0: HLT (intercept vector 3 bit 24) and MONITOR/MWAIT (vector 4 bits 10-11), intercepted
// only on APs until the OS runs them. The firmware parks its APs with CLI;HLT (or CLI;MONITOR;MWAIT)
// and wakes them with INIT-SIPI-SIPI, which hv/Core/ApStartup catches at the sender: a halt with IF clear is
// that parking, so the AP waits in the host for its start-up IPI (a MONITOR is skipped). The first
// halt with IF set is the OS's idle loop: the intercepts are dropped for good and the guest
// re-executes the instruction natively (RIP unchanged), sleeping until its next interrupt.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class HltHandler
    {
        private const ulong InterruptFlag = 1UL << 9;

        public static ExitAction Handle(ref SvmVcpu v)
        {
            SvmCpu* cpu = v.Cpu;
            Vmcb* vmcb = cpu->Vmcb;
            if ((SvmExitCode)vmcb->ExitCode == SvmExitCode.Monitor && cpu->ParkOnHalt != 0) return ExitAction.Skip;
            if ((vmcb->Rflags & InterruptFlag) == 0 && cpu->ParkOnHalt != 0)
            {
                ApStartup.OnPark(cpu->Index);
                return SvmApStartup.WaitForStartup(ref v);
            }
            cpu->ParkOnHalt = 0;
            vmcb->InterceptMisc1 &= ~(uint)SvmIntercept1.Hlt;
            vmcb->InterceptMisc2 &= ~(uint)(SvmIntercept2.Monitor | SvmIntercept2.Mwait);
            return ExitAction.Resume;
        }
    }
}
