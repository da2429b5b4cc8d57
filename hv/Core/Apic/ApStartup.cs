// How the OS (or the firmware) starts an AP that already runs as a guest, for both back ends. An
// INIT that reaches a virtualized CPU is trouble everywhere: AMD has no wait-for-SIPI state (APM Vol 2
// 15.13) and QEMU resets the host after an intercepted INIT; QEMU/KVM's nested VMX lacks the
// wait-for-SIPI activity state (DESIGN.md pitfalls); Bochs 2.7 keeps the INIT pending after the INIT
// VM exit, so it fires again on every VM entry and the AP never starts. So the sender's ICR write is
// caught (x2APIC MSR 0x830 through the MSR bitmap/permission map, the xAPIC ICR through ApicPage) and
// INIT and start-up IPIs addressed to virtualized CPUs are not sent at all: the target is marked here,
// and the target, parked in the host (its halt handler for the firmware's CLI;HLT or MWAIT parking, its
// INIT handler for an INIT that got through), polls TryStart and resumes in real mode at the start-up
// vector, as a start-up IPI would start it (SDM Vol 3A 10.4.4.1 / 9.4.4). An IPI to a CPU that is not
// virtualized is sent for real (the caller writes the ICR).
// Root mode, any CPU, interrupts off; the target's state is written by the sender's CPU and read by
// the target's: the fields are volatile. No logging on this path: it is timing-sensitive.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Core
{
    /// <summary>Where an AP stands in an INIT-SIPI-SIPI sequence.</summary>
    public enum ApState : uint
    {
        Running = 0,

        /// <summary>INIT received (intercepted, or an INIT IPI to it was caught): waits in the host.</summary>
        WaitForSipi = 1,

        /// <summary>A start-up IPI was caught for it; <see cref="StartupSignal.Vector"/> holds its vector.</summary>
        SipiPending = 2,
    }

    /// <summary>One CPU's part in the start-up protocol.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StartupSignal
    {
        public uint ApicId;

        /// <summary>1 while the CPU runs as a guest: IPIs to it are caught; 0: they are sent for real.</summary>
        public volatile uint Virtualized;

        public volatile uint State;    // ApState
        public volatile uint Vector;

        /// <summary>
        /// 1 while an NMI the sender raised to get this CPU out of the guest is on its way (VMX): the next NMI it
        /// takes is that one, not the guest's.
        /// </summary>
        public volatile uint Kick;
    }

    public static unsafe class ApStartup
    {
        private static StartupSignal* s_cpus;
        private static uint s_count;
        private static delegate*<uint, uint, uint, void> s_afterCaught;

        /// <summary>Bytes of the table for <paramref name="count"/> CPUs.</summary>
        public static ulong BytesFor(uint count) => (ulong)count * (ulong)sizeof(StartupSignal);

        /// <summary>Takes a zeroed table of <paramref name="count"/> entries (boot time, BSP); CPU i's APIC ID goes into entry i.</summary>
        public static void Initialize(StartupSignal* table, uint count)
        {
            s_cpus = table;
            s_count = count;
        }

        public static uint Count => s_count;

        /// <summary>
        /// Called on the sender after OnIcrWrite caught an IPI (sender, ICR low, destination), for a back end that must
        /// get the target out of the guest (hv/Host/ApKick, both back ends); null: the targets find their state at their next exit.
        /// </summary>
        public static void SetAfterCaught(delegate*<uint, uint, uint, void> callback) => s_afterCaught = callback;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static StartupSignal* Of(uint index) => index < s_count ? s_cpus + index : null;

        /// <summary>
        /// An ICR write by CPU <paramref name="sender"/>: the low dword and the destination APIC ID (xAPIC: ICR
        /// bits 63:56; x2APIC: bits 63:32). True when it was an INIT or start-up IPI for virtualized CPUs only,
        /// handled here: the caller must not send it. False: the caller writes the ICR for real.
        /// </summary>
        public static bool OnIcrWrite(uint sender, uint low, uint destination)
        {
            if (!Catch(sender, low, destination)) return false;
            if (s_afterCaught != null) s_afterCaught(sender, low, destination);
            return true;
        }

        private static bool Catch(uint sender, uint low, uint destination)
        {
            uint mode = low & ApicPage.IcrDeliveryModeMask;
            if (mode != ApicPage.IcrDeliveryInit && mode != ApicPage.IcrDeliveryStartup) return false;
            uint shorthand = low & ApicPage.IcrShorthandMask;
            if (shorthand == ApicPage.IcrShorthandAllExcludingSelf)
            {
                // Every other CPU must be virtualized, or the real IPI goes out (it reaches the others too).
                for (uint i = 0; i < s_count; i++)
                {
                    if (i != sender && s_cpus[i].Virtualized == 0) return false;
                }
                for (uint i = 0; i < s_count; i++)
                {
                    if (i != sender) Deliver(s_cpus + i, mode, low);
                }
                return s_count > 1;
            }
            if (shorthand != 0 || (low & ApicPage.IcrLogicalDestination) != 0) return false;
            for (uint i = 0; i < s_count; i++)
            {
                StartupSignal* target = s_cpus + i;
                if (target->ApicId != destination) continue;
                if (target->Virtualized == 0 || i == sender) return false;
                Deliver(target, mode, low);
                return true;
            }
            return false;
        }

        private static void Deliver(StartupSignal* target, uint mode, uint low)
        {
            if (mode == ApicPage.IcrDeliveryInit)
            {
                if (IsInitDeassert(low)) return;
                target->State = (uint)ApState.WaitForSipi;
                return;
            }
            if (target->State == (uint)ApState.WaitForSipi)
            {
                target->Vector = low & 0xFF;
                target->State = (uint)ApState.SipiPending;   // the second SIPI of the pair finds it pending and is dropped
            }
        }

        /// <summary>An INIT level de-assert (level-triggered, level 0): it changes nothing (SDM Vol 3A 10.6.1).</summary>
        public static bool IsInitDeassert(uint low)
            => (low & ApicPage.IcrLevelAssert) == 0 && (low & ApicPage.IcrLevelTriggered) != 0;

        /// <summary>An INIT reached this CPU itself (an INIT exit): it waits for a start-up IPI, unless one is already pending.</summary>
        public static void OnInit(uint index)
        {
            StartupSignal* s = Of(index);
            if (s != null && s->State != (uint)ApState.SipiPending) s->State = (uint)ApState.WaitForSipi;
            ApicTrap.OnParked(index);
        }

        /// <summary>The firmware parks this AP (a halt with interrupts off): it waits for a start-up IPI unless one is on its way.</summary>
        public static void OnPark(uint index)
        {
            StartupSignal* s = Of(index);
            if (s != null && s->State == (uint)ApState.Running) s->State = (uint)ApState.WaitForSipi;
            ApicTrap.OnParked(index);
        }

        /// <summary>True when this CPU must leave the guest and wait in the host (an INIT for it was caught, or it got one).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool MustWait(uint index)
        {
            return index < s_count && s_cpus[index].State != (uint)ApState.Running;
        }

        /// <summary>The sender is about to raise an NMI at CPU <paramref name="index"/> to get it out of the guest.</summary>
        public static void MarkKick(uint index)
        {
            StartupSignal* s = Of(index);
            if (s != null) s->Kick = 1;
        }

        /// <summary>An NMI reached this CPU: true (and forgotten) when it was the sender's kick, false when it is the guest's.</summary>
        public static bool ConsumeKick(uint index)
        {
            StartupSignal* s = Of(index);
            if (s == null || s->Kick == 0) return false;
            s->Kick = 0;
            return true;
        }

        /// <summary>Polled by a parked CPU: true once a start-up IPI arrived, with its vector; the CPU is then Running.</summary>
        public static bool TryStart(uint index, out uint vector)
        {
            StartupSignal* s = Of(index);
            vector = 0;
            if (s == null || s->State != (uint)ApState.SipiPending) return false;
            vector = s->Vector;
            s->State = (uint)ApState.Running;
            ApicTrap.OnStarted(index);
            return true;
        }
    }
}
