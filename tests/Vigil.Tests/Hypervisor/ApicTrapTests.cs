// When the xAPIC page is write-trapped (hv/Core/Apic/ApicTrap): armed while the OS may start a virtualized CPU
// (APs parked since launch, an INIT in progress, a CPU that executed WBINVD on its way offline), lifted
// otherwise, with a platform that records the nested-map changes it was asked for.
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

// ApicTrap and ApStartup keep their state in statics: these tests run in ApStartupTests' collection (not in parallel).
[Collection(nameof(ApStartupTests))]
public sealed unsafe class ApicTrapTests : System.IDisposable
{
    private const uint InitAssert = 0x0000_C500;
    private const uint InitDeassert = 0x0000_8500;
    private const uint Startup = 0x0000_0600;

    private readonly StartupSignal* _table;
    private readonly uint* _marks;

    private struct FakePlatform : IApicTrapPlatform
    {
        public static int ArmCalls, DisarmCalls, Acknowledges;
        public static bool Fail;

        public bool Arm(uint self)
        {
            ArmCalls++;
            return !Fail;
        }

        public bool Disarm(uint self)
        {
            DisarmCalls++;
            return !Fail;
        }

        public void Acknowledge(uint self) => Acknowledges++;

        public bool TryLock(uint* word)
        {
            if (*word != 0) return false;
            *word = 1;
            return true;
        }

        public void Unlock(uint* word) => *word = 0;

        public void Pause()
        {
        }
    }

    public ApicTrapTests()
    {
        _table = (StartupSignal*)NativeMemory.AllocZeroed((nuint)ApStartup.BytesFor(4));
        for (uint i = 0; i < 4; i++)
        {
            _table[i].ApicId = i * 2;
            _table[i].Virtualized = 1;
        }
        ApStartup.Initialize(_table, 4);
        _marks = (uint*)NativeMemory.AllocZeroed(4 * sizeof(uint));
        ApicTrap.Initialize(_marks, 4, bsp: 0);
        ApicTrap.Enable(true);
        FakePlatform.ArmCalls = FakePlatform.DisarmCalls = FakePlatform.Acknowledges = 0;
        FakePlatform.Fail = false;
    }

    public void Dispose()
    {
        ApicTrap.Initialize(null, 0, 0);
        ApicTrap.Enable(false);
        ApStartup.SetAfterCaught(null);
        ApStartup.Initialize(null, 0);
        NativeMemory.Free(_marks);
        NativeMemory.Free(_table);
    }

    private const uint TimerInitialCount = 0x380;
    private const uint SpuriousVector = 0x0F0;
    private const uint LvtLint0 = 0x350;
    private const uint AllExcludingSelf = 3u << 18;

    /// <summary>A trapped write by <paramref name="cpu"/> to its xAPIC page; an EOI unless <paramref name="offset"/> says otherwise.</summary>
    private static void ApicWrite(uint cpu, uint offset = ApicPage.Eoi)
    {
        var p = default(FakePlatform);
        ApicTrap.OnApicWrite(ref p, cpu, offset);
    }

    /// <summary>
    /// The firmware (OVMF's MpInitLib at ExitBootServices) wakes every AP with INIT-SIPI-SIPI to all but itself; each
    /// AP programs its APIC (no EOI: it takes no interrupts) and parks again in a guest HLT loop.
    /// </summary>
    private static void FirmwareWakesAllAps()
    {
        Assert.True(ApStartup.OnIcrWrite(0, AllExcludingSelf | InitAssert, 0));
        var p = default(FakePlatform);
        for (uint i = 1; i < 4; i++) ApicTrap.EnsureArmed(ref p, i);
        Assert.True(ApStartup.OnIcrWrite(0, AllExcludingSelf | InitDeassert, 0));
        Assert.True(ApStartup.OnIcrWrite(0, AllExcludingSelf | Startup | 0x87, 0));
        for (uint i = 1; i < 4; i++)
        {
            Assert.True(ApStartup.TryStart(i, out uint vector));
            Assert.Equal(0x87u, vector);
        }
        Assert.True(ApStartup.OnIcrWrite(0, AllExcludingSelf | Startup | 0x87, 0));
        for (uint i = 1; i < 4; i++)
        {
            ApicWrite(i, SpuriousVector);
            ApicWrite(i, LvtLint0);
        }
        ApicWrite(0);
        ApicWrite(0, TimerInitialCount);
    }

    private static void Wbinvd(uint cpu)
    {
        var p = default(FakePlatform);
        ApicTrap.OnWbinvd(ref p, cpu);
    }

    /// <summary>The OS starts AP <paramref name="index"/> (APIC ID 2 × index) from the BSP, as Linux does: INIT, de-assert, two SIPIs; the AP polls.</summary>
    private static void StartAp(uint index)
    {
        Assert.True(ApStartup.OnIcrWrite(0, InitAssert, index * 2));
        var p = default(FakePlatform);
        ApicTrap.EnsureArmed(ref p, index);   // the target, kicked out of its guest, waits for its start-up IPI
        Assert.True(ApStartup.OnIcrWrite(0, InitDeassert, index * 2));
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x9A, index * 2));
        Assert.True(ApStartup.TryStart(index, out uint vector));
        Assert.Equal(0x9Au, vector);
        Assert.True(ApicTrap.Armed);          // the second start-up IPI must still be caught
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x9A, index * 2));
    }

    [Fact]
    public void At_launch_the_trap_is_armed_and_stays_so_until_every_ap_was_started()
    {
        Assert.True(ApicTrap.Armed);
        Assert.Equal(0u, ApicTrap.MarkOf(0));
        Assert.Equal(ApicTrap.Parked, ApicTrap.MarkOf(1));
        ApicWrite(0);                        // the BSP's EOIs and timer writes while the APs are still parked
        StartAp(1);
        StartAp(2);
        ApicWrite(1);
        ApicWrite(0);
        Assert.True(ApicTrap.Armed);         // AP 3 not started yet: an INIT to it must still be caught
        Assert.Equal(0, FakePlatform.DisarmCalls);
        StartAp(3);
        ApicWrite(2);
        Assert.True(ApicTrap.Armed);         // AP 3 has not written its APIC yet: its sender may still be sending
        ApicWrite(3);                        // the started CPU's own first write lifts it
        Assert.False(ApicTrap.Armed);
        Assert.Equal(1, FakePlatform.DisarmCalls);
        ApicWrite(3);                        // a stale translation: one more exit, nothing to change
        ApicWrite(1);
        Assert.Equal(1, FakePlatform.DisarmCalls);
        Assert.Equal(0, FakePlatform.ArmCalls);
    }

    [Fact]
    public void An_offline_online_cycle_arms_at_the_wbinvd_and_lifts_after_the_start()
    {
        StartAp(1);
        StartAp(2);
        StartAp(3);
        ApicWrite(1);
        ApicWrite(2);
        ApicWrite(3);
        Assert.False(ApicTrap.Armed);
        Wbinvd(2);                            // play_dead: caches written back, then a halt with interrupts off
        Assert.True(ApicTrap.Armed);
        Assert.Equal(1, FakePlatform.ArmCalls);
        Assert.Equal(ApicTrap.Suspect, ApicTrap.MarkOf(2));
        ApicWrite(0);                         // other CPUs keep running: the trap stays while CPU 2 may be started
        ApicWrite(3);
        Assert.True(ApicTrap.Armed);
        StartAp(2);                           // online: INIT-SIPI-SIPI caught at the sender
        Assert.Equal(ApicTrap.Suspect, ApicTrap.MarkOf(2));
        ApicWrite(0);
        Assert.True(ApicTrap.Armed);
        ApicWrite(2);
        Assert.False(ApicTrap.Armed);
        Assert.Equal(2, FakePlatform.DisarmCalls);
    }

    [Fact]
    public void A_wbinvd_of_a_cpu_that_keeps_running_arms_until_its_next_apic_write()
    {
        StartAp(1);
        StartAp(2);
        StartAp(3);
        ApicWrite(1);
        ApicWrite(2);
        ApicWrite(3);
        Wbinvd(1);                            // an MTRR or cache-attribute change, not an offline
        Assert.True(ApicTrap.Armed);
        ApicWrite(0);
        Assert.True(ApicTrap.Armed);          // CPU 1 has not shown it runs yet
        ApicWrite(1);
        Assert.False(ApicTrap.Armed);
        Assert.Equal(0u, ApicTrap.MarkOf(1));
    }

    [Fact]
    public void An_init_that_reached_a_cpu_keeps_the_trap_armed_until_it_starts()
    {
        StartAp(1);
        StartAp(2);
        StartAp(3);
        ApicWrite(1);
        ApicWrite(2);
        ApicWrite(3);
        Assert.False(ApicTrap.Armed);
        ApStartup.OnInit(3);                  // an INIT exit: the CPU waits for its start-up IPI in the host
        var p = default(FakePlatform);
        ApicTrap.EnsureArmed(ref p, 3);
        Assert.True(ApicTrap.Armed);
        ApicWrite(0);
        Assert.True(ApicTrap.Armed);
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x20, 6));
        Assert.True(ApStartup.TryStart(3, out _));
        ApicWrite(0);
        Assert.True(ApicTrap.Armed);
        ApicWrite(3);
        Assert.False(ApicTrap.Armed);
    }

    [Fact]
    public void Without_wbinvd_interception_the_trap_is_never_lifted()
    {
        ApicTrap.Enable(false);
        StartAp(1);
        StartAp(2);
        StartAp(3);
        ApicWrite(1);
        ApicWrite(2);
        ApicWrite(3);
        ApicWrite(1);
        Assert.True(ApicTrap.Armed);
        Assert.Equal(0, FakePlatform.DisarmCalls);
    }

    [Fact]
    public void A_failed_change_leaves_the_state_as_it_was_and_is_tried_again()
    {
        StartAp(1);
        StartAp(2);
        StartAp(3);
        ApicWrite(1);
        ApicWrite(2);
        FakePlatform.Fail = true;
        ApicWrite(3);
        Assert.True(ApicTrap.Armed);          // the lift failed: still trapped (the safe side)
        FakePlatform.Fail = false;
        ApicWrite(0);
        Assert.False(ApicTrap.Armed);
        FakePlatform.Fail = true;
        Wbinvd(1);
        Assert.False(ApicTrap.Armed);         // the arm failed: tried again at the next mark
        FakePlatform.Fail = false;
        Wbinvd(1);
        Assert.True(ApicTrap.Armed);
    }

    [Fact]
    public void Aps_the_firmware_started_and_parked_again_keep_the_trap_armed_until_the_os_started_each()
    {
        FirmwareWakesAllAps();
        Assert.True(ApicTrap.Armed);          // their APIC writes are no EOIs: they may still wait for the OS's INIT
        Assert.Equal(0, FakePlatform.DisarmCalls);
        for (uint i = 1; i < 4; i++) Assert.Equal(ApicTrap.Suspect, ApicTrap.MarkOf(i));
        StartAp(1);                           // Linux: INIT, de-assert, SIPI, SIPI, then the AP runs
        ApicWrite(1, SpuriousVector);         // setup_local_APIC
        ApicWrite(1);                         // its first interrupt
        Assert.Equal(0u, ApicTrap.MarkOf(1));
        Assert.True(ApicTrap.Armed);          // APs 2 and 3 still wait in the firmware's loop: the next INIT is caught
        StartAp(2);
        ApicWrite(2);
        Assert.True(ApicTrap.Armed);
        StartAp(3);
        ApicWrite(0);
        Assert.True(ApicTrap.Armed);
        ApicWrite(3);
        Assert.False(ApicTrap.Armed);
        Assert.Equal(1, FakePlatform.DisarmCalls);
    }

    [Fact]
    public void Only_an_eoi_clears_a_started_cpu()
    {
        StartAp(1);
        StartAp(2);
        StartAp(3);
        ApicWrite(1);
        ApicWrite(2);
        ApicWrite(3, TimerInitialCount);
        ApicWrite(3, SpuriousVector);
        Assert.True(ApicTrap.Armed);
        Assert.Equal(ApicTrap.Suspect, ApicTrap.MarkOf(3));
        ApicWrite(3, ApicPage.Eoi + 2);       // an unaligned offset within the EOI register still is the EOI
        Assert.False(ApicTrap.Armed);
    }

    [Fact]
    public void A_cpu_offlined_after_the_lift_arms_again_and_keeps_it_armed_until_its_eoi_after_the_online()
    {
        StartAp(1);
        StartAp(2);
        StartAp(3);
        for (uint i = 1; i < 4; i++) ApicWrite(i);
        Assert.False(ApicTrap.Armed);
        Wbinvd(1);                            // play_dead
        Assert.True(ApicTrap.Armed);
        ApicWrite(1, TimerInitialCount);      // no EOI: the mark stays (hlt_play_dead takes no interrupts)
        ApicWrite(0, TimerInitialCount);
        Assert.True(ApicTrap.Armed);
        StartAp(1);
        ApicWrite(1, SpuriousVector);
        Assert.True(ApicTrap.Armed);
        ApicWrite(1);
        Assert.False(ApicTrap.Armed);
        Assert.Equal(2, FakePlatform.DisarmCalls);
        Assert.Equal(1, FakePlatform.ArmCalls);
    }
}
