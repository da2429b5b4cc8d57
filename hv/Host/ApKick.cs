// Root mode (VMX root or SVM host), interrupts off, on the CPU that sent an INIT the hypervisor caught
// (hv/Core/Apic/ApStartup). The target may be anywhere in the guest: running, or halted by the firmware or
// by the OS (CLI;HLT, MONITOR/MWAIT: a CPU taken offline) where no exit would ever come. So the sender
// raises an NMI at it (hv/Host/NmiKick): with NMI exiting on (VMX) or the NMI intercept (SVM), the NMI
// takes the target out of the guest (out of HLT and MWAIT too), the target sees its INIT state and
// waits in the host for the start-up IPI (VmxExitDispatcher, SvmExitHandler). Nothing else of the
// guest is intercepted for this: its halts and MWAITs run natively. No logging: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Host
{
    internal static unsafe class ApKick
    {
        /// <summary>After ApStartup caught the ICR write (<paramref name="low"/>, <paramref name="destination"/>) of CPU <paramref name="sender"/>.</summary>
        public static void AfterCaught(uint sender, uint low, uint destination)
        {
            if ((low & ApicPage.IcrDeliveryModeMask) != ApicPage.IcrDeliveryInit) return;   // a start-up IPI finds the target waiting already
            if (ApStartup.IsInitDeassert(low)) return;
            bool broadcast = (low & ApicPage.IcrShorthandMask) == ApicPage.IcrShorthandAllExcludingSelf;
            for (uint i = 0; i < ApStartup.Count; i++)
            {
                StartupSignal* s = ApStartup.Of(i);
                if (i != sender && (broadcast || s->ApicId == destination)) NmiKick.Send(i);
            }
        }
    }
}
