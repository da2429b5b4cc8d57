using System;
using System.Linq;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>
/// The GDT's fixed descriptors (GuardDescriptors): a snapshot at the first check, fixed entries compared, the LDT and TLS
/// slots judged by shape, the TSS busy bit ignored, changes judged by the rules and put back when blocked.
/// </summary>
[Collection(GuardStateCollection.Name)]
public sealed unsafe class GuardDescriptorsTests : IDisposable
{
    private const ulong GdtVa = 0xffff_fe00_0000_1000, GdtGpa = 0x400_0000;

    // Linux 6.1's GDT as a CPU has it after start-up (arch/x86/kernel/cpu/common.c gdt_page, a TSS and CPUNODE).
    private static readonly ulong[] Linux =
    [
        0,
        0x00cf9b000000ffff,   // KERNEL32_CS
        0x00af9b000000ffff,   // KERNEL_CS
        0x00cf93000000ffff,   // KERNEL_DS
        0x00cffb000000ffff,   // USER32_CS
        0x00cff3000000ffff,   // USER_DS
        0x00affb000000ffff,   // USER_CS
        0,
        0xfe008b0030004087,   // TSS (busy), base 0xfffffe0000003000
        0x00000000ffffffff,
        0, 0,                 // LDT
        0, 0, 0,              // TLS
        0x0040f50000000000,   // CPUNODE
    ];

    private static GuardLockCpus s_cpus;
    private readonly GuardTestGuest _g = new();

    public GuardDescriptorsTests()
    {
        GuardArming.Reset();
        _g.Guest.Map(GdtVa, GdtGpa, FakeGuest.Present);
        for (int i = 0; i < Linux.Length; i++) _g.Guest.Write64(GdtGpa + (ulong)(i * 8), Linux[i]);
        GuardState.Pins = new GuardPins { GdtLimit = 127 };
        GuardState.GdtBase(0) = GdtVa;
        _g.State.GdtBase = GdtVa;
        _g.State.GdtLimit = 127;
        _g.State.Efer = 0xD01;
    }

    public void Dispose()
    {
        GuardArming.Reset();
        _g.Dispose();
    }

    private int Check(ulong now = 1, bool force = true)
    {
        var v = _g.Vcpu;
        var memory = _g.Guest.View;
        return GuardDescriptors.BeforeEntry(ref v, ref memory, ref s_cpus, now, force);
    }

    private ulong Entry(int i) => _g.Guest.Read64(GdtGpa + (ulong)(i * 8));

    private void Write(int i, ulong value) => _g.Guest.Write64(GdtGpa + (ulong)(i * 8), value);

    [Fact]
    public void The_first_check_takes_the_snapshot_and_an_unchanged_gdt_is_quiet()
    {
        Assert.False(GuardDescriptors.Watched(0));
        Assert.Equal(0, Check());
        Assert.True(GuardDescriptors.Watched(0));
        Assert.Equal(GdtGpa, GuardDescriptors.GpaOf(0));
        Assert.Equal(0, Check());
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void A_descriptor_in_the_free_slot_is_blocked_put_back_and_recorded()
    {
        Check();
        const ulong callGate = 0x0000ec0000101000;   // a DPL-3 call gate's lower half
        Write(7, callGate);
        Assert.Equal(1, Check());
        Assert.Equal(0UL, Entry(7));
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardObject.GlobalTableDescriptor, e.Object);
        Assert.Equal(GuardAccess.Write, e.Access);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(7UL, e.Detail);
        Assert.Equal(GdtGpa + 56, e.Gpa);
        Assert.Equal(GdtVa + 56, e.Linear);
        Assert.Equal(ActorRegion.Unknown, e.Region);
        Assert.Equal(0UL, e.Rip);
        Assert.Equal(0UL, BitConverter.ToUInt64(GuardTestGuest.Old(e)));
        Assert.Equal(callGate, BitConverter.ToUInt64(GuardTestGuest.New(e)));
        Assert.Equal(0, Check());   // put back: quiet again
    }

    [Fact]
    public void A_kernel_code_segment_made_dpl_3_is_put_back()
    {
        Check();
        Write(2, Linux[2] | (3UL << 45));
        Assert.Equal(1, Check());
        Assert.Equal(Linux[2], Entry(2));
    }

    [Fact]
    public void The_tss_busy_bit_is_not_a_change_but_its_base_is()
    {
        Check();
        Write(8, Linux[8] & ~(1UL << 41));   // a CPU coming back online: set_tss_desc writes it available, LTR makes it busy
        Assert.Equal(0, Check());
        Write(8, Linux[8] | (1UL << 41));
        Assert.Equal(0, Check());
        Write(8, (Linux[8] & ~0xFFFF_0000UL) | 0x6666_0000UL);   // another base: a fake TSS (IST stacks, RSP0)
        Assert.Equal(1, Check());
        Assert.Equal(Linux[8], Entry(8));
    }

    [Fact]
    public void Tls_and_ldt_slots_take_what_linux_puts_there_and_refuse_gates_and_ring_0_segments()
    {
        Check();
        Write(12, 0x00cff3000000ffff);      // set_thread_area: a DPL-3 data segment
        Write(13, 0x00cf73000000ffff);      // not present (seg_not_present), still DPL 3
        Write(10, 0x0000820000001000);      // an LDT descriptor (type 2, DPL 0), present
        Write(11, 0x00000000ffff8800);
        Assert.Equal(0, Check());
        Assert.Empty(_g.Events());

        Write(14, 0x00cf93000000ffff);      // a DPL-0 data segment in a TLS slot
        Write(10, 0x0000ec0000101000);      // a call gate where the LDT descriptor goes
        Assert.Equal(2, Check());
        Assert.Equal(0UL, Entry(14));
        Assert.Equal(0UL, Entry(10));
        Assert.Equal(0x00cff3000000ffffUL, Entry(12));   // the good ones stay
        Assert.Equal([10UL, 14UL], _g.Events().Select(e => e.Detail).Order().ToArray());
    }

    [Fact]
    public void An_audited_change_is_recorded_once_and_accepted()
    {
        var rules = new GuardRule[] { new() { Objects = 1u << (int)GuardObject.GlobalTableDescriptor, Verdict = GuardVerdict.Audit } };
        GuardState.SetRules(new GuardRuleSetHeader { Signature = GuardRuleSetHeader.ExpectedSignature, Version = 1, Count = 1, Default = GuardVerdict.Block }, rules);
        Check();
        Write(7, 0x00cffb000000ffff);
        Assert.Equal(1, Check());
        Assert.Equal(0x00cffb000000ffffUL, Entry(7));
        Assert.Equal(0, Check());
        Assert.Equal(GuardVerdict.Audit, Assert.Single(_g.Events()).Verdict);
    }

    [Fact]
    public void Checks_wait_for_the_interval_and_skip_another_gdt_the_bring_up_and_an_unprotected_guard()
    {
        Check(now: 1000, force: false);
        Write(7, 0x00cffb000000ffff);
        Assert.Equal(0, Check(now: 1000 + GuardDescriptors.CheckInterval - 1, force: false));
        Assert.Equal(0x00cffb000000ffffUL, Entry(7));

        _g.State.GdtBase = GdtVa + 0x1000;   // another GDT loaded (LGDT was judged on its own)
        Assert.Equal(0, Check());
        _g.State.GdtBase = GdtVa;

        _g.State.Efer = 0x1;                 // outside long mode: a CPU starting up
        Assert.Equal(0, Check());
        _g.State.Efer = 0xD01;

        GuardState.Protected = false;
        Assert.Equal(0, Check());
        GuardState.Protected = true;

        Assert.Equal(1, Check(now: 1000 + GuardDescriptors.CheckInterval, force: false));
        Assert.Equal(0UL, Entry(7));
    }

    [Fact]
    public void An_exit_from_user_code_checks_the_supervisor_only_gdt_and_a_check_that_cannot_run_waits_the_interval()
    {
        // The GDT page is supervisor-only (FakeGuest.Present, no User bit): the CPU reads it as a supervisor access
        // whatever the CPL, and so does the check, or a guest that exits mostly from user code would never be checked.
        _g.State.Cpl = 3;
        Check(now: 1000, force: false);                      // the snapshot, taken from a user-mode exit
        Assert.True(GuardDescriptors.Watched(0));
        Write(7, 0x00cffb000000ffff);
        Assert.Equal(1, Check(now: 1000 + GuardDescriptors.CheckInterval, force: false));
        Assert.Equal(0UL, Entry(7));

        // A check that finds the CPU outside long mode counts as one: the next waits the interval, not the next exit.
        ulong t = 1000 + (4 * GuardDescriptors.CheckInterval);
        _g.State.Efer = 0x1;
        Assert.True(GuardDescriptors.Due(0, t));
        Assert.Equal(0, Check(now: t, force: false));
        Assert.False(GuardDescriptors.Due(0, t + 1));
        Assert.True(GuardDescriptors.Due(0, t + GuardDescriptors.CheckInterval));
    }

    [Fact]
    public void Check_all_finds_a_change_on_any_watched_cpu()
    {
        Check();
        Write(3, Linux[3] ^ (1UL << 45));
        var memory = _g.Guest.View;
        Assert.Equal(1, GuardDescriptors.CheckAll(ref memory));
        Assert.Equal(Linux[3], Entry(3));
        Assert.Equal(0, GuardDescriptors.CheckAll(ref memory));
    }
}
