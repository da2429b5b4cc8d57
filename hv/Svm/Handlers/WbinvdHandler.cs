// SVM host, GIF=0: WBINVD (#VMEXIT 0x89, intercepted for hv/Core/Apic/ApicTrap). The host writes the caches
// back for the guest, then the CPU is marked as maybe on its way offline (Linux's play_dead) and the xAPIC
// trap is armed on every CPU before it resumes. The step over the instruction is the exit handler's.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class WbinvdHandler
    {
        public static ExitAction Handle(SvmCpu* cpu)
        {
            Native.HvStubs.Wbinvd();
            var trap = default(SvmApicTrapPlatform);
            ApicTrap.OnWbinvd(ref trap, cpu->Index);
            return ExitAction.Skip;
        }
    }
}
