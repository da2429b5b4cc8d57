// SVM host: INIT (intercept vector 3 bit 3). AMD has no wait-for-SIPI state (APM Vol 2 15.13):
// the AP is parked in the host until a start-up IPI for it is caught (hv/Core/Apic/ApStartup), then resumes in real
// mode at the vector. On QEMU an INIT never gets here for a virtualized CPU: the ICR trap swallows it at
// the sender (QEMU would reset the host after the exit). No logging: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class InitHandler
    {
        public static ExitAction Handle(ref SvmVcpu v)
        {
            ApStartup.OnInit(v.Index);
            return SvmApStartup.WaitForStartup(ref v);
        }
    }
}
