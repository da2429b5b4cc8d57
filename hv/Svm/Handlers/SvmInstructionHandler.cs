// SVM host, GIF=0: VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT executed by the guest. Vigil offers no
// nested virtualization and CPUID hides SVM, so the guest gets #UD, as without SVM (APM Vol 2 15.4).
namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class SvmInstructionHandler
    {
        public static ExitAction Handle(SvmCpu* cpu) => SvmEvents.InjectUndefined(cpu);
    }
}
