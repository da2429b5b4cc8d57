using System;
using System.Linq;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>The guarded-page write handler over a fake protected guest: decode, judge, perform or refuse, record.</summary>
[Collection(GuardStateCollection.Name)]
public sealed unsafe class GuardWriteTests : IDisposable
{
    private static readonly byte[] Nop5 = [0x0F, 0x1F, 0x44, 0x00, 0x00];

    private readonly GuardTestGuest _g = new();

    public void Dispose() => _g.Dispose();

    private (bool Handled, VcpuAction Action, int Length) Store(ulong gpa, byte[] code, ulong rdi = 0, ulong rax = 0, ulong rcx = 0, ulong rsi = 0)
    {
        _g.Code(code);
        _g.State.Regs.Rdi = rdi;
        _g.State.Regs.Rax = rax;
        _g.State.Regs.Rcx = rcx;
        _g.State.Regs.Rsi = rsi;
        var vcpu = _g.Vcpu;
        var memory = _g.Guest.View;
        var cpus = default(GuardLockCpus);
        bool handled = GuardWrite.Handle(ref vcpu, ref memory, ref cpus, gpa, out VcpuAction action, out int length);
        return (handled, action, length);
    }

    private bool Walk(ulong gpa)
    {
        var vcpu = _g.Vcpu;
        var memory = _g.Guest.View;
        var cpus = default(GuardLockCpus);
        return GuardWrite.PageWalk(ref vcpu, ref memory, ref cpus, gpa);
    }

    [Fact]
    public void The_page_walker_setting_accessed_then_dirty_on_a_guarded_page_is_audited_and_performed()
    {
        const ulong entry = 0x0000_0000_0500_0063 & ~0x60UL;   // present, writable, A and D clear
        _g.Guest.Write64(GuardTestGuest.TableGpa + 0x40, entry);
        Assert.True(Walk(GuardTestGuest.TableGpa + 0x40));
        Assert.Equal(entry | 0x20, _g.Guest.Read64(GuardTestGuest.TableGpa + 0x40));
        Assert.True(Walk(GuardTestGuest.TableGpa + 0x44));   // the same entry again (any byte of it): now D
        Assert.Equal(entry | 0x60, _g.Guest.Read64(GuardTestGuest.TableGpa + 0x40));
        Assert.False(_g.State.Injected.Valid);
        GuardEvent[] events = _g.Events();
        Assert.Equal(2, events.Length);
        Assert.All(events, e =>
        {
            Assert.Equal(GuardObject.SysCallTable, e.Object);
            Assert.Equal(GuardVerdict.Audit, e.Verdict);
            Assert.Equal(GuardContent.PageWalkUpdate, e.Content);
            Assert.Equal(GuardTestGuest.TableGpa + 0x40, e.Gpa);
        });
        Assert.Equal(entry | 0x20, BitConverter.ToUInt64(GuardTestGuest.New(events[0])));
        Assert.Equal(entry | 0x60, BitConverter.ToUInt64(GuardTestGuest.New(events[1])));
        Assert.False(Walk(0x500_0000));   // not guarded: the back end's own handling
    }

    [Fact]
    public void A_blocked_page_walk_update_leaves_the_entry_and_faults()
    {
        var rules = new[] { new GuardRule { ContentAll = GuardContent.PageWalkUpdate, Verdict = GuardVerdict.Block } };
        GuardState.SetRules(new GuardRuleSetHeader { Signature = GuardRuleSetHeader.ExpectedSignature, Version = 1, Count = 1, Default = GuardVerdict.Allow }, rules);
        _g.Guest.Write64(GuardTestGuest.TextGpa + 0x808, 0x0500_0003);
        Assert.True(Walk(GuardTestGuest.TextGpa + 0x808));
        Assert.Equal(0x0500_0003UL, _g.Guest.Read64(GuardTestGuest.TextGpa + 0x808));
        Assert.True(_g.State.Injected.Valid);
        Assert.Equal(VcpuEvent.PageFault, _g.State.Injected.Vector);
        Assert.Equal(GuardVerdict.Block, Assert.Single(_g.Events()).Verdict);
    }

    [Fact]
    public void A_write_to_an_unguarded_page_is_not_the_guards()
    {
        var r = Store(0x500_0000, [0x48, 0x89, 0x07], rdi: 0x1234, rax: 1);
        Assert.False(r.Handled);
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void An_allowed_write_is_performed_by_the_hypervisor_and_stepped_over()
    {
        // A kprobe: INT3 over an instruction's first byte, through text_poke's writable alias.
        _g.Put(GuardTestGuest.TextGpa + 0x300, 0x55, 0x48, 0x89, 0xE5);
        var r = Store(GuardTestGuest.TextGpa + 0x300, [0xC6, 0x07, 0xCC], rdi: GuardTestGuest.PokeVa + 0x300);
        Assert.True(r.Handled);
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(3, r.Length);
        Assert.Equal(new byte[] { 0xCC, 0x48 }, _g.Bytes(GuardTestGuest.TextGpa + 0x300, 2));
        Assert.Empty(_g.Events());   // allowed: counted, not recorded
        Assert.Equal(1UL, GuardState.Events->Counted(GuardObject.KernelText, GuardVerdict.Allow));
    }

    [Fact]
    public void A_blocked_write_leaves_memory_as_it_was_and_is_recorded_with_its_bytes()
    {
        _g.Put(GuardTestGuest.TableGpa + 0x18, 0x10, 0x20, 0x30, 0x40, 0x81, 0xFF, 0xFF, 0xFF);
        var r = Store(GuardTestGuest.TableGpa + 0x18, [0x48, 0x89, 0x07], rdi: GuardTestGuest.TableVa + 0x18, rax: 0xffff_ffff_c012_3456);
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(3, r.Length);
        Assert.Equal(new byte[] { 0x10, 0x20, 0x30, 0x40, 0x81, 0xFF, 0xFF, 0xFF }, _g.Bytes(GuardTestGuest.TableGpa + 0x18, 8));
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardObject.SysCallTable, e.Object);
        Assert.Equal(GuardAccess.Write, e.Access);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(ActorRegion.KernelText, e.Region);
        Assert.Equal(GuardTestGuest.TableGpa + 0x18, e.Gpa);
        Assert.Equal(GuardTestGuest.TableVa + 0x18, e.Linear);
        Assert.Equal(GuardTestGuest.CodeVa, e.Rip);
        Assert.Equal(_g.Guest.Cr3, e.Cr3);
        Assert.Equal(new byte[] { 0x10, 0x20, 0x30, 0x40, 0x81, 0xFF, 0xFF, 0xFF }, GuardTestGuest.Old(e));
        Assert.Equal(BitConverter.GetBytes(0xffff_ffff_c012_3456UL), GuardTestGuest.New(e));
        Assert.Equal(5, e.Rule);   // "any other write to code, read-only data, the syscall table, an IDT or a GDT descriptor"
    }

    [Fact]
    public void Block_and_fault_injects_a_page_fault_at_the_linear_address()
    {
        var rules = new GuardRule[1];
        rules[0] = new GuardRule { Objects = 1u << (int)GuardObject.SysCallTable, Verdict = GuardVerdict.BlockAndFault };
        GuardState.SetRules(new GuardRuleSetHeader { Signature = GuardRuleSetHeader.ExpectedSignature, Version = 1, Count = 1, Default = GuardVerdict.Block }, rules);
        _g.State.Cpl = 0;
        var r = Store(GuardTestGuest.TableGpa + 8, [0x48, 0x89, 0x07], rdi: GuardTestGuest.TableVa + 8, rax: 5);
        Assert.Equal(VcpuAction.Resume, r.Action);
        Assert.Equal(GuardTestGuest.TableVa + 8, _g.State.Cr2Loaded);
        Assert.True(_g.State.Injected.Valid);
        Assert.Equal(VcpuEvent.PageFault, _g.State.Injected.Vector);
        Assert.Equal(3u, _g.State.Injected.ErrorCode);   // present | write, supervisor
        Assert.Equal(0UL, BitConverter.ToUInt64(_g.Bytes(GuardTestGuest.TableGpa + 8, 8)));
        Assert.Equal(GuardVerdict.BlockAndFault, Assert.Single(_g.Events()).Verdict);
    }

    [Fact]
    public void A_write_of_the_same_bytes_is_allowed_and_performed()
    {
        _g.Put(GuardTestGuest.TableGpa, 1, 2, 3, 4);
        var r = Store(GuardTestGuest.TableGpa, [0x89, 0x07], rdi: GuardTestGuest.TableVa, rax: 0x0403_0201);
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void Rep_stos_running_into_a_guarded_page_is_blocked_whole_and_its_registers_advance()
    {
        // memset(table - 16, 0, 32): 16 bytes in the unguarded page before, 16 in the table's.
        _g.Put(GuardTestGuest.TableGpa - 16, Enumerable.Repeat((byte)0x11, 16).ToArray());
        _g.Put(GuardTestGuest.TableGpa, Enumerable.Repeat((byte)0x22, 16).ToArray());
        ulong start = GuardTestGuest.TableVa - 16;
        var r = Store(GuardTestGuest.TableGpa, [0xF3, 0xAA], rdi: start, rax: 0, rcx: 32);
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(2, r.Length);
        Assert.All(_g.Bytes(GuardTestGuest.TableGpa - 16, 16), b => Assert.Equal(0x11, b));
        Assert.All(_g.Bytes(GuardTestGuest.TableGpa, 16), b => Assert.Equal(0x22, b));
        Assert.Equal(0UL, _g.State.Regs.Rcx);
        Assert.Equal(start + 32, _g.State.Regs.Rdi);
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardObject.SysCallTable, e.Object);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(32UL, e.Detail);   // the whole write's size (more than the 16 bytes shown)
        Assert.Equal(start, e.Linear);
    }

    [Fact]
    public void Rep_stos_across_a_guarded_page_that_changes_nothing_there_is_performed_whole()
    {
        _g.Put(GuardTestGuest.TableGpa - 8, Enumerable.Repeat((byte)0x11, 8).ToArray());
        ulong start = GuardTestGuest.TableVa - 8;
        var r = Store(GuardTestGuest.TableGpa, [0xF3, 0xAA], rdi: start, rax: 0, rcx: 12);   // the table's first 4 bytes are 0 already
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.All(_g.Bytes(GuardTestGuest.TableGpa - 8, 8), b => Assert.Equal(0, b));
        Assert.Equal(start + 12, _g.State.Regs.Rdi);
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void Rep_movsb_of_a_patch_is_judged_as_one_write()
    {
        // text_poke with an ERMS memcpy: one rep movsb of the INT3, then of the tail, then of the first byte.
        ulong site = GuardTestGuest.TextGpa + 0x400;
        ulong siteVa = GuardTestGuest.TextVa + 0x400;
        _g.Put(site, Nop5);
        byte[] jmp = Rel32(0xE9, siteVa, siteVa + 0x80);
        ulong buffer = GuardTestGuest.TableVa - 0x100;   // the source buffer: a writable unguarded page
        ulong bufferGpa = GuardTestGuest.TableGpa - 0x100;
        void Movs(int offset, byte[] bytes)
        {
            _g.Put(bufferGpa, bytes);
            var r = Store(site + (ulong)offset, [0xF3, 0xA4], rdi: GuardTestGuest.PokeVa + 0x400 + (ulong)offset, rsi: buffer, rcx: (ulong)bytes.Length);
            Assert.Equal(VcpuAction.Skip, r.Action);
            Assert.Equal(0UL, _g.State.Regs.Rcx);
            Assert.Equal(buffer + (ulong)bytes.Length, _g.State.Regs.Rsi);
        }
        Movs(0, [0xCC]);
        Movs(1, jmp[1..]);
        Movs(0, [jmp[0]]);
        Assert.Equal(jmp, _g.Bytes(site, 5));
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void A_text_poke_bp_sequence_replayed_write_by_write_is_allowed()
    {
        // A jump label: NOP5 -> JMP rel32 within the kernel, with memcpy_orig's stores through poking_addr: one byte, two
        // identical dword stores of the tail, one byte; then back again.
        ulong site = GuardTestGuest.TextGpa + 0x200;
        ulong siteVa = GuardTestGuest.TextVa + 0x200;
        ulong poke = GuardTestGuest.PokeVa + 0x200;
        _g.Put(site, Nop5);
        byte[] jmp = Rel32(0xE9, siteVa, siteVa + 0x40);
        PokeBp(site, poke, jmp);
        Assert.Equal(jmp, _g.Bytes(site, 5));
        PokeBp(site, poke, Nop5);
        Assert.Equal(Nop5, _g.Bytes(site, 5));
        Assert.Empty(_g.Events());
        Assert.Equal(0, GuardWrite.Tracker.Armed);
    }

    [Fact]
    public void An_inline_hook_through_the_int3_protocol_is_refused_and_the_site_put_back_whole()
    {
        ulong site = GuardTestGuest.TextGpa + 0x240;
        ulong siteVa = GuardTestGuest.TextVa + 0x240;
        ulong poke = GuardTestGuest.PokeVa + 0x240;
        byte[] prologue = [0x55, 0x48, 0x89, 0xE5, 0x41];
        _g.Put(site, prologue);
        byte[] hook = Rel32(0xE9, siteVa, GuardTestGuest.ModuleCodeVa);
        Assert.Equal(VcpuAction.Skip, Store(site, [0x88, 0x07], rdi: poke, rax: 0xCC).Action);   // the INT3 is a kprobe step: allowed
        Assert.Equal(0xCC, _g.Bytes(site, 1)[0]);
        Assert.Equal(VcpuAction.Skip, Store(site + 1, [0x89, 0x07], rdi: poke + 1, rax: BitConverter.ToUInt32(hook, 1)).Action);
        Assert.Equal(prologue, _g.Bytes(site, 5));   // refused: the original instruction is back, INT3 included
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(GuardObject.KernelText, e.Object);
    }

    [Fact]
    public void A_direct_jmp_over_a_function_is_blocked()
    {
        ulong site = GuardTestGuest.TextGpa + 0x280;
        ulong siteVa = GuardTestGuest.TextVa + 0x280;
        _g.Put(site, 0x55, 0x48, 0x89, 0xE5, 0x41);
        byte[] hook = Rel32(0xE9, siteVa, GuardTestGuest.ModuleCodeVa);
        _g.State.Rip = GuardTestGuest.ModuleCodeVa;
        var r = Store(site, [0x89, 0x07], rdi: GuardTestGuest.PokeVa + 0x280, rax: BitConverter.ToUInt32(hook, 0));
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(new byte[] { 0x55, 0x48, 0x89, 0xE5, 0x41 }, _g.Bytes(site, 5));
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(ActorRegion.ModuleArea, e.Region);
    }

    [Fact]
    public void What_cannot_be_decoded_is_blocked_and_recorded_with_its_bytes()
    {
        byte[] add = [0x48, 0x01, 0x07];   // add [rdi], rax: read-modify-write, not a store the decoder knows
        var r = Store(GuardTestGuest.TableGpa + 0x20, add, rdi: GuardTestGuest.TableVa + 0x20, rax: 1);
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(3, r.Length);   // stepped over by its decoded length
        Assert.Equal(0UL, BitConverter.ToUInt64(_g.Bytes(GuardTestGuest.TableGpa + 0x20, 8)));
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardContent.Undecodable, e.Content);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(add, GuardTestGuest.New(e).Take(3).ToArray());
    }

    [Fact]
    public void Xchg_and_cmpxchg_write_back_registers_as_the_cpu_would()
    {
        // Allowed because they change nothing in memory; the registers still take what the CPU gives them.
        _g.Put(GuardTestGuest.TableGpa + 0x40, 7, 0, 0, 0, 0, 0, 0, 0);
        _g.State.Regs.Rbx = 7;
        var r = Store(GuardTestGuest.TableGpa + 0x40, [0x48, 0x87, 0x1F], rdi: GuardTestGuest.TableVa + 0x40);   // xchg [rdi], rbx
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(7UL, _g.State.Regs.Rbx);
        _g.State.Regs.Rbx = 9;
        r = Store(GuardTestGuest.TableGpa + 0x40, [0xF0, 0x48, 0x0F, 0xB1, 0x1F], rdi: GuardTestGuest.TableVa + 0x40, rax: 8);   // lock cmpxchg [rdi], rbx: 8 != 7
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(7UL, _g.State.Regs.Rax);   // the accumulator gets memory's value
        Assert.Equal(0UL, _g.State.Rflags & (1UL << 6));   // ZF clear
        Assert.Equal(7, _g.Bytes(GuardTestGuest.TableGpa + 0x40, 1)[0]);
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void A_write_to_the_hypervisors_memory_is_refused_and_recorded_without_reading_it()
    {
        // The reservation (FakeVcpuState: 0x7000_0000, 1 MiB) mapped writable by a guest page table; the host may not touch it.
        const ulong va = 0xffff_c900_0010_0000;
        _g.Guest.Map(va, _g.State.ReservedBase + 0x2000, FakeGuest.Present | FakeGuest.Writable);
        _g.Guest.Bounds = new Vigil.Hypervisor.Core.PhysicalBounds(1UL << 52, _g.State.ReservedBase, _g.State.ReservedSize);
        var r = Store(_g.State.ReservedBase + 0x2010, [0x48, 0x89, 0x47, 0x10], rdi: va, rax: 0x4141_4141_4141_4141);
        Assert.True(r.Handled);
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(4, r.Length);
        Assert.Equal(0, _g.Guest.Violations);   // nothing of the reservation read or written
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardObject.HypervisorMemory, e.Object);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(0, e.Rule);
        Assert.Equal(_g.State.ReservedBase + 0x2010, e.Gpa);
        Assert.Equal(va + 0x10, e.Linear);
        Assert.All(GuardTestGuest.Old(e), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Rep_stos_into_the_hypervisors_memory_is_never_performed_even_when_a_rule_allows_it()
    {
        const ulong va = 0xffff_c900_0020_0000;
        _g.Guest.Map(va, _g.State.ReservedBase + 0x3000, FakeGuest.Present | FakeGuest.Writable);
        _g.Guest.Map(va + 0x1000, _g.State.ReservedBase + 0x4000, FakeGuest.Present | FakeGuest.Writable);
        _g.Guest.Bounds = new Vigil.Hypervisor.Core.PhysicalBounds(1UL << 52, _g.State.ReservedBase, _g.State.ReservedSize);
        GuardState.SetRules(new GuardRuleSetHeader { Default = GuardVerdict.Allow }, []);   // before any rule set: everything allowed
        byte[] page0 = _g.Bytes(0, 64);
        var r = Store(_g.State.ReservedBase + 0x3F00, [0xF3, 0x48, 0xAB], rdi: va + 0xF00, rax: 0x4242_4242_4242_4242, rcx: 64);   // rep stosq over two pages
        Assert.Equal(VcpuAction.Skip, r.Action);
        Assert.Equal(0, _g.Guest.Violations);
        Assert.Equal(page0, _g.Bytes(0, 64));
        Assert.Equal(va + 0xF00 + 512, _g.State.Regs.Rdi);
        Assert.Equal(0UL, _g.State.Regs.Rcx);
        Assert.Equal(1UL, GuardState.Events->Counted(GuardObject.HypervisorMemory, GuardVerdict.Allow));
    }

    private void PokeBp(ulong site, ulong poke, byte[] insn)
    {
        Assert.Equal(VcpuAction.Skip, Store(site, [0x88, 0x07], rdi: poke, rax: 0xCC).Action);
        uint tail = BitConverter.ToUInt32(insn, 1);
        Assert.Equal(VcpuAction.Skip, Store(site + 1, [0x89, 0x07], rdi: poke + 1, rax: tail).Action);
        Assert.Equal(VcpuAction.Skip, Store(site + 1, [0x89, 0x07], rdi: poke + 1, rax: tail).Action);
        Assert.Equal(VcpuAction.Skip, Store(site, [0x88, 0x07], rdi: poke, rax: insn[0]).Action);
    }

    private static byte[] Rel32(byte opcode, ulong siteVa, ulong destination)
    {
        int rel = unchecked((int)(long)(destination - (siteVa + 5)));
        return [opcode, (byte)rel, (byte)(rel >> 8), (byte)(rel >> 16), (byte)(rel >> 24)];
    }
}
