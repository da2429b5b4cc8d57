using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Decoding;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>Pinned control registers, EFER, syscall MSRs, LIDT/LGDT and per-CPU arming, over a fake protected guest.</summary>
[Collection(GuardStateCollection.Name)]
public sealed unsafe class GuardRegistersTests : IDisposable
{
    private const ulong Wp = 1UL << 16, Smep = 1UL << 20, Smap = 1UL << 21, Nxe = 1UL << 11, Sce = 1UL << 0;
    private const ulong Lstar = 0xffff_ffff_8160_0000, IdtBase = 0xffff_fe00_0000_0000, GdtBase = 0xffff_fe00_0000_1000;

    private static GuardLockCpus s_cpus;
    private readonly GuardTestGuest _g = new();

    public GuardRegistersTests()
    {
        GuardArming.Reset();
        GuardState.Pins = new GuardPins
        {
            Cr0Set = Wp, Cr4Set = Smep | Smap, EferSet = Nxe | Sce, Lstar = Lstar, Star = 0x0023_0010_0000_0000,
            IdtBase = IdtBase, IdtLimit = 4095, GdtLimit = 127,
        };
        GuardState.GdtBase(0) = GdtBase;
        _g.State.Cr0 = 0x8005_0033;                          // PG, WP, NE, ET, MP, PE
        _g.State.Cr4 = 0x20 | Smep | Smap | (1UL << 18);     // PAE, SMEP, SMAP, OSXSAVE
        _g.State.Cr4Supported |= Smep | Smap;
        _g.State.Efer = 0xD01;                               // SCE, LME, LMA, NXE
    }

    public void Dispose()
    {
        GuardArming.Reset();
        _g.Dispose();
    }

    private FakeVcpu V => _g.Vcpu;

    private GuardEvent Only() => Assert.Single(_g.Events());

    [Fact]
    public void Clearing_cr0_wp_is_blocked_the_pin_stays_and_the_instruction_is_skipped()
    {
        var v = V;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x8005_0033 & ~Wp));
        Assert.Equal(0x8005_0033UL, _g.State.Cr0Loaded);
        GuardEvent e = Only();
        Assert.Equal(GuardObject.ControlRegister0, e.Object);
        Assert.Equal(GuardAccess.RegisterWrite, e.Access);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(GuardContent.PinnedBitCleared, e.Content);
        Assert.Equal(Wp, e.Detail);
        Assert.Equal(0x8005_0033UL, BitConverter.ToUInt64(GuardTestGuest.Old(e)));
        Assert.Equal(0x8004_0033UL, BitConverter.ToUInt64(GuardTestGuest.New(e)));
    }

    [Fact]
    public void Block_and_fault_on_cr0_raises_gp_and_loads_nothing()
    {
        var rules = new GuardRule[] { new() { Objects = 1u << (int)GuardObject.ControlRegister0, Verdict = GuardVerdict.BlockAndFault } };
        GuardState.SetRules(new GuardRuleSetHeader { Signature = GuardRuleSetHeader.ExpectedSignature, Version = 1, Count = 1 }, rules);
        var v = V;
        Assert.Equal(VcpuAction.Resume, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x8004_0033));
        Assert.Null(_g.State.Cr0Loaded);
        Assert.Equal(VcpuEvent.GeneralProtection, _g.State.Injected.Vector);
    }

    [Fact]
    public void Pins_are_not_judged_outside_long_mode_paging_nor_for_a_bit_not_yet_set()
    {
        // A CPU starting up: 32-bit protected mode without paging clears WP freely.
        _g.State.Efer = 0;
        _g.State.Cr0 = 0x11 | Wp;
        _g.State.Mode = CpuMode.Bits32;
        var v = V;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x11));
        // Back in long mode: secondary_startup_64 loads CR4 without SMEP/SMAP before cr4_init sets them.
        _g.State.Efer = 0xD01;
        _g.State.Cr0 = 0x8005_0033;
        _g.State.Mode = CpuMode.Bits64;
        _g.State.Cr4 = 0x20;
        v = V;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr4(ref v, ref s_cpus, 0x20 | (1UL << 7)));
        Assert.Equal(0x20 | (1UL << 7), _g.State.Cr4Loaded);
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void Clearing_cr4_smep_is_blocked_other_bits_still_change()
    {
        var v = V;
        ulong value = (_g.State.Cr4 & ~Smep) | (1UL << 7);   // SMEP off, PGE on
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr4(ref v, ref s_cpus, value));
        Assert.Equal(value | Smep, _g.State.Cr4Loaded);
        GuardEvent e = Only();
        Assert.Equal(GuardObject.ControlRegister4, e.Object);
        Assert.Equal(Smep, e.Detail);
    }

    private VcpuAction Wrmsr(uint msr, ulong value)
    {
        _g.State.Regs.Rcx = msr;
        _g.State.Regs.Rax = (uint)value;
        _g.State.Regs.Rdx = value >> 32;
        var v = V;
        return MsrExit.Handle(ref v, ref s_cpus, write: true);
    }

    [Fact]
    public void An_lstar_write_to_module_code_is_blocked_and_the_pinned_value_allowed()
    {
        _g.State.GuardedMsrs[GuardMsrs.Lstar] = Lstar;
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, 0xffff_ffff_c012_0000));
        Assert.Equal(Lstar, _g.State.GuardedMsrs[GuardMsrs.Lstar]);
        GuardEvent e = Only();
        Assert.Equal(GuardObject.SyscallMsr, e.Object);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal((ulong)GuardMsrs.Lstar, e.Detail);
        Assert.Equal(Lstar, BitConverter.ToUInt64(GuardTestGuest.Old(e)));
        Assert.Equal(0xffff_ffff_c012_0000UL, BitConverter.ToUInt64(GuardTestGuest.New(e)));

        _g.State.GuardedMsrs[GuardMsrs.Lstar] = 0;   // a CPU coming back online: syscall_init writes the pinned value
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, Lstar));
        Assert.Equal(Lstar, _g.State.GuardedMsrs[GuardMsrs.Lstar]);
        Assert.Single(_g.Events());   // allowed: not recorded
        Assert.Equal(1UL, GuardState.Events->Counted(GuardObject.SyscallMsr, GuardVerdict.Allow));
    }

    [Fact]
    public void Sysenter_esp_is_per_cpu_any_entry_stack_in_the_cpu_entry_area_is_expected()
    {
        GuardState.Pins.SysenterEsp = 0xffff_fe00_0000_5200;   // CPU 0's
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.SysenterEsp, 0xffff_fe00_0003_9200));   // CPU 1's, coming back online
        Assert.Equal(0xffff_fe00_0003_9200UL, _g.State.GuardedMsrs[GuardMsrs.SysenterEsp]);
        Assert.Empty(_g.Events());
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.SysenterEsp, 0xffff_ffff_c012_0000));   // a module's stack: no
        Assert.Equal(GuardVerdict.Block, Only().Verdict);
    }

    [Fact]
    public void Clearing_efer_nxe_is_blocked_with_the_pin_kept()
    {
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Efer, 0xD01 & ~Nxe));
        Assert.Equal(0xD01UL, _g.State.GuardedMsrs[GuardMsrs.Efer]);
        Assert.Equal(GuardObject.Efer, Only().Object);
    }

    [Fact]
    public void Guarded_msr_writes_load_unjudged_when_the_guard_is_off()
    {
        GuardState.Protected = false;
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, 0x1234));
        Assert.Equal(0x1234UL, _g.State.GuardedMsrs[GuardMsrs.Lstar]);
        Assert.Empty(_g.Events());
    }

    private VcpuAction Load(bool idt, ulong baseAddress, ushort limit)
    {
        // lgdt/lidt [rax] with the operand in a writable unguarded page.
        ulong operandVa = GuardTestGuest.TableVa - 0x200, operandGpa = GuardTestGuest.TableGpa - 0x200;
        var operand = new byte[10];
        BitConverter.TryWriteBytes(operand.AsSpan(0, 2), limit);
        BitConverter.TryWriteBytes(operand.AsSpan(2, 8), baseAddress);
        _g.Put(operandGpa, operand);
        _g.Code(0x0F, 0x01, (byte)(idt ? 0x18 : 0x10));
        _g.State.Regs.Rax = operandVa;
        var v = V;
        var memory = _g.Guest.View;
        Assert.True(SystemInstructionExit.Handle(ref v, ref memory, ref s_cpus, out VcpuAction action, out int length));
        Assert.Equal(3, length);
        return action;
    }

    [Fact]
    public void Lidt_of_the_kernels_table_is_allowed_of_another_blocked()
    {
        Assert.Equal(VcpuAction.Skip, Load(idt: true, IdtBase, 4095));
        Assert.Equal((GdtBase, 127u, IdtBase, 4095u), _g.State.Tables);
        Assert.Empty(_g.Events());
        _g.State.Tables = null;
        Assert.Equal(VcpuAction.Skip, Load(idt: true, 0xffff_ffff_c020_0000, 4095));
        Assert.Null(_g.State.Tables);
        GuardEvent e = Only();
        Assert.Equal(GuardObject.InterruptTableRegister, e.Object);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal(0xffff_ffff_c020_0000UL, e.Linear);
        Assert.Equal(VcpuAction.Skip, Load(idt: true, 0, 0));   // the null IDT before reboot
        Assert.Equal((GdtBase, 127u, 0UL, 0u), _g.State.Tables);
    }

    [Fact]
    public void Lgdt_of_this_cpus_gdt_is_allowed_another_blocked_and_the_bring_up_window_lets_the_early_gdt_through()
    {
        Assert.Equal(VcpuAction.Skip, Load(idt: false, GdtBase, 127));
        Assert.Empty(_g.Events());
        Assert.Equal(VcpuAction.Skip, Load(idt: false, 0xffff_8880_7fc1_3000, 127));
        Assert.Equal(GuardVerdict.Block, Only().Verdict);

        // The CPU goes offline and comes back: seen in real mode before an entry, then LGDT of its early per-CPU GDT.
        _g.State.Efer = 0;
        _g.State.Cr0 = 0x10;
        var v = V;
        GuardArming.BeforeEntry(ref v, out _, out _);
        Assert.True(GuardArming.InBringUp(0));
        _g.State.Efer = 0xD01;
        _g.State.Cr0 = 0x8005_0033;
        _g.State.Tables = null;
        Assert.Equal(VcpuAction.Skip, Load(idt: false, 0xffff_8880_7fc1_3000, 127));
        Assert.Equal(0xffff_8880_7fc1_3000UL, _g.State.Tables!.Value.GdtBase);
        Assert.Single(_g.Events());
        Assert.Equal(VcpuAction.Skip, Load(idt: false, GdtBase, 127));   // its fixmap GDT: the window closes
        Assert.False(GuardArming.InBringUp(0));
        Assert.Equal(VcpuAction.Skip, Load(idt: false, 0xffff_8880_7fc1_3000, 127));
        Assert.Equal(2, _g.Events().Length);
    }

    [Fact]
    public void A_cpu_arms_once_per_generation_and_mode_and_learns_its_gdt()
    {
        GuardState.GdtBase(0) = 0;
        var v = V;
        Assert.True(GuardArming.BeforeEntry(ref v, out bool protect, out bool longPaging));
        Assert.True(protect);
        Assert.True(longPaging);
        Assert.Equal(GdtBase, GuardState.GdtBase(0));   // the FakeVcpu's GDTR: kernel address, limit 127
        Assert.False(GuardArming.BeforeEntry(ref v, out _, out _));
        GuardState.Publish();
        Assert.True(GuardArming.BeforeEntry(ref v, out _, out _));
        Assert.False(GuardArming.BeforeEntry(ref v, out _, out _));
        _g.State.Efer = 0;   // INIT: real mode
        Assert.True(GuardArming.BeforeEntry(ref v, out _, out longPaging));
        Assert.False(longPaging);
        GuardState.Protected = false;
        GuardState.Publish();
        Assert.True(GuardArming.BeforeEntry(ref v, out protect, out _));
        Assert.False(protect);
    }

    [Theory]
    [InlineData(new byte[] { 0x0F, 0x22, 0xE0 }, false, SystemForm.MoveToControlRegister, 4, 0, 3)]          // mov cr4, rax
    [InlineData(new byte[] { 0x41, 0x0F, 0x22, 0xC7 }, true, SystemForm.MoveToControlRegister, 0, 15, 4)]   // mov cr0, r15
    [InlineData(new byte[] { 0x44, 0x0F, 0x22, 0xC1 }, true, SystemForm.MoveToControlRegister, 8, 1, 4)]    // mov cr8, rcx
    [InlineData(new byte[] { 0xF0, 0x0F, 0x22, 0xC2 }, false, SystemForm.MoveToControlRegister, 8, 2, 4)]   // lock mov cr0 = cr8 (AMD)
    [InlineData(new byte[] { 0x0F, 0x22, 0x00 }, false, SystemForm.MoveToControlRegister, 0, 0, 3)]         // mod is ignored
    [InlineData(new byte[] { 0x0F, 0x06 }, true, SystemForm.Clts, 0, 0, 2)]
    [InlineData(new byte[] { 0x0F, 0x01, 0xF3 }, true, SystemForm.Lmsw, 0, 3, 3)]                           // lmsw bx
    [InlineData(new byte[] { 0x48, 0x0F, 0x22, 0xD8 }, false, SystemForm.MoveToControlRegister, 3, 0, 4)]   // 32-bit mode: 48 is DEC, not REX
    public void Mov_cr_clts_and_lmsw_decode_in_every_mode(byte[] code, bool is64, SystemForm form, int cr, int register, int length)
    {
        var regs = new ulong[16];
        var context = new WriteContext { Registers = regs };
        bool ok = SystemInstructionDecoder.Decode(code, is64, in context, out SystemInstruction s);
        if (!is64 && code[0] == 0x48)
        {
            Assert.False(ok);   // DEC EAX is not a system instruction
            return;
        }
        Assert.True(ok);
        Assert.Equal(form, s.Form);
        Assert.Equal(cr, s.ControlRegister);
        Assert.Equal(register, s.Register);
        Assert.Equal(length, s.Length);
    }

    [Fact]
    public void Lgdt_and_lidt_operands_decode_with_rip_relative_and_fs_addressing()
    {
        var regs = new ulong[16];
        var context = new WriteContext { Registers = regs, Rip = 0xffff_ffff_8100_0000, FsBase = 0x7000 };
        Assert.True(SystemInstructionDecoder.Decode([0x0F, 0x01, 0x15, 0x10, 0x00, 0x00, 0x00], true, in context, out SystemInstruction s));
        Assert.Equal(SystemForm.Lgdt, s.Form);
        Assert.Equal(0xffff_ffff_8100_0017UL, s.Address);   // next RIP (7 bytes on) + 0x10
        regs[3] = 0x20;
        context = new WriteContext { Registers = regs, FsBase = 0x7000 };
        Assert.True(SystemInstructionDecoder.Decode([0x64, 0x0F, 0x01, 0x5B, 0x08], true, in context, out s));
        Assert.Equal(SystemForm.Lidt, s.Form);
        Assert.Equal(0x7028UL, s.Address);
        Assert.False(SystemInstructionDecoder.Decode([0x0F, 0x01, 0xC1], true, in context, out _));   // VMCALL
        Assert.False(SystemInstructionDecoder.Decode([0x0F, 0x01, 0x08], true, in context, out _));   // SIDT is not intercepted
    }

    [Fact]
    public void Ltr_loads_the_tss_from_the_gdt_and_marks_it_busy()
    {
        // A 16-byte available TSS descriptor at GDT entry 8 (selector 0x40), GDT in a writable page.
        ulong gdtVa = GuardTestGuest.TableVa - 0x1000, gdtGpa = GuardTestGuest.TableGpa - 0x1000;
        ulong tss = 0xffff_fe00_0000_3000;
        ulong low = 0x67 | ((tss & 0xFF_FFFF) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xFF) << 56);
        _g.Put(gdtGpa + 0x40, BitConverter.GetBytes(low));
        _g.Put(gdtGpa + 0x48, BitConverter.GetBytes(tss >> 32));
        _g.State.Tables = (gdtVa, 127, IdtBase, 4095);
        _g.State.Regs.Rcx = 0x40;
        var v = V;
        var memory = _g.Guest.View;
        Assert.Equal(VcpuAction.Skip, DescriptorTableExit.LoadSelector(ref v, ref memory, taskRegister: true, register: 1, linear: 0));
        var tr = _g.State.Segments[SegmentRegister.Tr];
        Assert.Equal((ushort)0x40, tr.Selector);
        Assert.Equal(tss, tr.Base);
        Assert.Equal(0x67u, tr.Limit);
        Assert.Equal(0x8Bu, tr.Rights);
        Assert.Equal(0x8B, _g.Bytes(gdtGpa + 0x45, 1)[0]);   // busy in memory
        // LTR of the now busy descriptor faults, as on the CPU.
        Assert.Equal(VcpuAction.Resume, DescriptorTableExit.LoadSelector(ref v, ref memory, taskRegister: true, register: 1, linear: 0));
        Assert.Equal(VcpuEvent.GeneralProtection, _g.State.Injected.Vector);
        Assert.Equal(0x40u, _g.State.Injected.ErrorCode);
    }
}
