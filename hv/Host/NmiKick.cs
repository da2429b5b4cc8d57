// Root mode (VMX root or SVM host), interrupts off, any CPU: gets another CPU out of the guest with an
// NMI, for both back ends. With VMX NMI exiting, or the SVM NMI intercept, an NMI makes the guest exit
// wherever it is, halted (HLT, MWAIT) included (SDM Vol 3C 25.2, APM Vol 2 15.13.2); a CPU already in
// the host holds it (SVM: GIF clear) or counts it (VMX: hv/Host/HostExceptions) and exits right after
// its next entry. The target is marked first (StartupSignal.Kick), so it drops that NMI instead of
// handing it to its guest (VmxNmi, SvmNmi). The mark is taken with LOCK CMPXCHG: while one kick is on
// its way no second NMI is sent (it would merge with the first, or reach the guest as a stray NMI);
// the one on its way brings the CPU out all the same, and what the second sender wants is read by the
// target at that exit. Used by the AP start-up (hv/Core/Apic/ApStartup: the INIT state) and the nested-map
// service (hv/Core/Paging/NestedMapService: acknowledgements). No logging: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Host
{
    internal static unsafe class NmiKick
    {
        /// <summary>Sends CPU <paramref name="index"/> an NMI, unless one is on its way to it already.</summary>
        public static void Send(uint index)
        {
            StartupSignal* target = ApStartup.Of(index);
            if (target == null) return;
#pragma warning disable CS0420   // the word is only ever accessed atomically through it: LOCK CMPXCHG is a full barrier
            if (Vigil.Platform.Cpu.SpinTryAcquire((uint*)&target->Kick) == 0) return;
#pragma warning restore CS0420
            uint icr = ApicPage.IcrDeliveryNmi | ApicPage.IcrLevelAssert;
            ulong apicBase = Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr);
            if ((apicBase & ApicPage.X2ApicEnable) != 0)
            {
                Vigil.Platform.Cpu.WriteMsrFenced(ApicPage.X2ApicIcrMsr, ((ulong)target->ApicId << 32) | icr);
                return;
            }
            // xAPIC: wait for the ICR to be idle (each read is a real MMIO read: PAUSE is an external call in between).
            // The guest of this CPU may have written ICR high and not yet ICR low (its writes are emulated one by one,
            // ApicPage): its destination is put back after the kick.
            var apic = (byte*)ApicPage.Base;
            for (int spin = 0; spin < 100_000 && (*(uint*)(apic + ApicPage.IcrLow) & ApicPage.IcrDeliveryPending) != 0; spin++) Vigil.Platform.Cpu.Pause();
            uint high = *(uint*)(apic + ApicPage.IcrHigh);
            *(uint*)(apic + ApicPage.IcrHigh) = target->ApicId << 24;
            *(uint*)(apic + ApicPage.IcrLow) = icr;
            *(uint*)(apic + ApicPage.IcrHigh) = high;
        }
    }
}
