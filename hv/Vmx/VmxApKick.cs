// VMX root, interrupts off, on the CPU that sent an INIT the hypervisor caught (hv/Core/ApStartup). The
// target may be anywhere in the guest: running, or halted by the firmware (CLI;HLT, MONITOR/MWAIT)
// where no exit would ever come. So the sender raises an NMI at it: with NMI exiting on, the NMI
// takes the target out of the guest (out of HLT and MWAIT too), the target sees its INIT state and
// waits in the host for the start-up IPI (VmxExitDispatcher). The target is marked first, so it knows
// that NMI is not the guest's (ApStartup.ConsumeKick, VmxNmi). Nothing else of the guest is
// intercepted for this: its halts and MWAITs run natively. No logging: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxApKick
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
                if (i != sender && (broadcast || s->ApicId == destination)) ApStartup.MarkKick(i);
            }
            uint icr = ApicPage.IcrDeliveryNmi | ApicPage.IcrLevelAssert | (broadcast ? ApicPage.IcrShorthandAllExcludingSelf : 0);
            ulong apicBase = Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr);
            if ((apicBase & ApicPage.X2ApicEnable) != 0)
            {
                Vigil.Platform.Cpu.WriteMsr(ApicPage.X2ApicIcrMsr, ((ulong)destination << 32) | icr);
                return;
            }
            // xAPIC: wait for the ICR to be idle (each read is a real MMIO read: PAUSE is an external call in between).
            var apic = (byte*)ApicPage.Base;
            for (int spin = 0; spin < 100_000 && (*(uint*)(apic + ApicPage.IcrLow) & ApicPage.IcrDeliveryPending) != 0; spin++) Vigil.Platform.Cpu.Pause();
            *(uint*)(apic + ApicPage.IcrHigh) = destination << 24;
            *(uint*)(apic + ApicPage.IcrLow) = icr;
        }
    }
}
