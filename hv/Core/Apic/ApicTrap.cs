// When the xAPIC page is write-trapped (issue 12). The trap exists for one thing: INIT and start-up IPIs that
// the OS sends to a virtualized AP must be caught at the sender (hv/Core/Apic/ApStartup: an INIT that reaches a
// virtualized CPU is trouble on every back end). Trapping the page always costs an exit for every EOI and
// every timer write of every CPU (an idle QEMU guest: 30-70 exits per second per CPU). So the page is trapped
// only while the OS may start a virtualized CPU, i.e. while some CPU "may start":
//   - Parked: the APs from launch (the firmware parks them; the OS starts them with INIT-SIPI-SIPI), and a CPU
//     that an INIT reached or that waits for its start-up IPI. When the CPU is started (ApStartup.TryStart) it
//     becomes Suspect: the sender's second start-up IPI follows the first within microseconds and must be
//     caught too (a real one would restart the CPU outside the hypervisor: QEMU keeps the AP's APIC waiting
//     for a start-up IPI, as after reset, because no INIT ever reached it).
//   - Suspect: a CPU just started, or one that executed WBINVD. Linux takes a CPU offline by running it into
//     play_dead, which writes back its caches (WBINVD, in hlt_play_dead and mwait_play_dead) and then halts with
//     interrupts off until the OS onlines it again with INIT-SIPI-SIPI. WBINVD is rare otherwise (MTRR and
//     cache-attribute changes), so every WBINVD arms the trap.
//   A Suspect mark goes at the CPU's own next EOI (a write to offset 0xB0; the trap is armed, so it exits): the CPU
//   took an interrupt, so an OS runs it with interrupts on and is done starting it. Not at any write: the firmware
//   starts APs too (OVMF's MpInitLib at ExitBootServices, with INIT-SIPI-SIPI to all but itself, to move them into
//   its final AP loop); such an AP programs its APIC (LVT, SVR) and then parks again in a guest HLT or MWAIT loop
//   that never exits, to wait for the OS's INIT-SIPI-SIPI. Clearing the mark at that write (as first built) lifted
//   the trap before the OS's INIT, which then reached the AP for real (QEMU: the AP ran on outside the hypervisor;
//   Bochs: an INIT exit, then Linux's start-up IPIs to the AP's host wait). Firmware APs take no interrupts and
//   write no EOI; Linux's AP writes its first EOI after start_secondary enabled interrupts, long after the
//   sender's last start-up IPI (the AP waits for the sender in wait_for_master_cpu, Linux 6.1 smpboot.c).
// When no CPU may start, the next trapped write of any CPU disarms the trap (full access again); the first
// mark arms it again, on every CPU before the marking exit resumes (the nested-map change waits until every
// CPU has invalidated: hv/Core/Paging/NestedMapService), so the OS's later INIT to the offline CPU is seen.
// With several APs, the marks of those not started yet keep the trap armed while the first ones run (Parked from
// launch, or Suspect from the firmware's start), so each INIT the OS sends is caught.
// A back end that cannot intercept WBINVD never disarms (Enable(false)): the trap stays as it always was.
// The x2APIC ICR is a WRMSR, intercepted through the MSR bitmap/permission map whatever this says.
// An OS that offlines a CPU without WBINVD would get an INIT through: on VMX an INIT exit (the CPU waits in the
// host; a start-up IPI sent for real is then lost and the OS reports the CPU did not come up), on SVM an
// intercepted INIT. Linux's CPU hotplug (tests: SvmBootTests, BochsVmxSmpTests) goes through WBINVD.
// Root mode, any CPU, interrupts off. Decisions are serialized by one lock word; a CPU waiting for it keeps
// acknowledging nested-map changes (the holder may be waiting for it). Compiled twice: into the hypervisor
// (no runtime) and into the tests.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core
{
    /// <summary>What ApicTrap needs from the back end: the nested-map change of the xAPIC page, and acknowledging changes while it waits.</summary>
    public interface IApicTrapPlatform
    {
        /// <summary>The xAPIC page read-only (its writes exit) on every CPU before it returns; false when the change failed.</summary>
        bool Arm(uint self);

        /// <summary>The xAPIC page with full access again; false when the change failed.</summary>
        bool Disarm(uint self);

        /// <summary>Acknowledges nested-map changes while this CPU waits (NestedMapService.Acknowledge).</summary>
        void Acknowledge(uint self);

        /// <summary>LOCK CMPXCHG 0 → 1: true when this call took the word.</summary>
        unsafe bool TryLock(uint* word);

        unsafe void Unlock(uint* word);

        void Pause();
    }

    public static unsafe class ApicTrap
    {
        /// <summary>Whether the back ends intercept WBINVD and lift the trap (false: the page stays trapped, as before issue 12).</summary>
        public const bool Lifting = true;

        /// <summary>The CPU may be started by the OS (launch, INIT): only its start clears it.</summary>
        public const uint Parked = 1;

        /// <summary>The CPU was just started, or executed WBINVD (maybe on its way offline): its next EOI clears it.</summary>
        public const uint Suspect = 2;

        private static uint* s_marks;
        private static uint s_count;
        private static uint s_lock;
        private static volatile uint s_armed;
        private static volatile uint s_enabled;
        private static ulong s_arms, s_disarms;

        /// <summary>
        /// At launch (BSP), with the page trapped: every CPU but <paramref name="bsp"/> is Parked. <paramref name="marks"/>
        /// holds <paramref name="count"/> zeroed words.
        /// </summary>
        public static void Initialize(uint* marks, uint count, uint bsp)
        {
            s_marks = marks;
            s_count = count;
            for (uint i = 0; i < count; i++) marks[i] = i == bsp ? 0 : Parked;
            s_armed = 1;
            s_enabled = 0;
            s_lock = 0;
            s_arms = s_disarms = 0;
        }

        /// <summary>Whether the trap may be lifted at all (the back end intercepts WBINVD on every CPU).</summary>
        public static void Enable(bool enabled) => s_enabled = enabled ? 1u : 0u;

        public static bool Enabled => s_enabled != 0;

        public static bool Armed => s_armed != 0;

        /// <summary>How often the trap was armed and lifted after launch (the status report and the tests).</summary>
        public static ulong Arms => s_arms;

        public static ulong Disarms => s_disarms;

        public static uint MarkOf(uint index) => index < s_count && s_marks != null ? s_marks[index] : 0;

        /// <summary>CPU <paramref name="self"/> executed WBINVD: Suspect (unless Parked), and the trap armed before it resumes.</summary>
        public static void OnWbinvd<TPlatform>(ref TPlatform platform, uint self) where TPlatform : struct, IApicTrapPlatform
        {
            if (self >= s_count || s_marks == null) return;
            if (s_marks[self] == 0) s_marks[self] = Suspect;
            Update(ref platform, self);   // always under the lock: a disarm deciding right now must see the mark or be undone
        }

        /// <summary>An INIT reached CPU <paramref name="index"/> or it waits for a start-up IPI: Parked (the caller arms at its next exit or wait).</summary>
        public static void OnParked(uint index)
        {
            if (index < s_count && s_marks != null) s_marks[index] = Parked;
        }

        /// <summary>CPU <paramref name="index"/> was started (ApStartup.TryStart): Suspect until its own first EOI (see the top).</summary>
        public static void OnStarted(uint index)
        {
            if (index < s_count && s_marks != null) s_marks[index] = Suspect;
        }

        /// <summary>
        /// CPU <paramref name="self"/> wrote its xAPIC page at <paramref name="offset"/> (the trap was armed). An EOI
        /// (ApicPage.Eoi) shows an OS runs it with interrupts on, so a Suspect mark goes (see the top); when no CPU may
        /// start any more, the trap is lifted.
        /// </summary>
        public static void OnApicWrite<TPlatform>(ref TPlatform platform, uint self, uint offset) where TPlatform : struct, IApicTrapPlatform
        {
            if (s_enabled == 0 || self >= s_count || s_marks == null) return;
            if (s_marks[self] == Suspect && (offset & 0xFF0) == ApicPage.Eoi) s_marks[self] = 0;
            if (s_armed != 0 && !AnyMayStart()) Update(ref platform, self);
        }

        /// <summary>Before CPU <paramref name="self"/> waits for its start-up IPI (it is Parked): the trap armed, under the lock.</summary>
        public static void EnsureArmed<TPlatform>(ref TPlatform platform, uint self) where TPlatform : struct, IApicTrapPlatform
        {
            if (s_marks != null && s_enabled != 0) Update(ref platform, self);
        }

        /// <summary>True when some CPU may be started by the OS (a mark, or a start-up in progress).</summary>
        public static bool AnyMayStart()
        {
            for (uint i = 0; i < s_count; i++)
            {
                if (s_marks[i] != 0) return true;
                StartupSignal* s = ApStartup.Of(i);
                if (s != null && s->State != (uint)ApState.Running) return true;
            }
            return false;
        }

        /// <summary>The marks of the first 16 CPUs, 4 bits each (CPU 0 lowest), for the log.</summary>
        private static ulong Marks()
        {
            ulong m = 0;
            for (uint i = 0; i < s_count && i < 16; i++) m |= (ulong)(s_marks[i] & 0xF) << (int)(4 * i);
            return m;
        }

        /// <summary>Brings the trap to what the marks want, under the lock (re-decided there: another CPU may have changed it).</summary>
        private static void Update<TPlatform>(ref TPlatform platform, uint self) where TPlatform : struct, IApicTrapPlatform
        {
            uint* word = (uint*)Unsafe.AsPointer(ref s_lock);
            {
                while (!platform.TryLock(word))
                {
                    platform.Acknowledge(self);
                    platform.Pause();
                }
                bool want = s_enabled == 0 || AnyMayStart();
                if (want && s_armed == 0)
                {
                    if (platform.Arm(self))
                    {
                        s_armed = 1;
                        s_arms++;
                        LogRings.Write(self, LogEvent.ApicTrapArmed, Marks(), s_arms);
                    }
                }
                else if (!want && s_armed != 0)
                {
                    if (platform.Disarm(self))
                    {
                        s_armed = 0;
                        s_disarms++;
                        LogRings.Write(self, LogEvent.ApicTrapLifted, s_disarms);
                    }
                }
                platform.Unlock(word);
            }
        }
    }
}
