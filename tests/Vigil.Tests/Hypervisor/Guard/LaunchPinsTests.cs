using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>
/// CPU-state rules from the kernel's first instruction, before Protect (hv/Core/Guard/LaunchPins.cs): armed at the first
/// entry into upper-half code at CPL 0 with long-mode paging, never by firmware code; pins once set; the first syscall-MSR
/// value the OS writes becomes the expected one; LIDT/LGDT from Protect on.
/// </summary>
[Collection(GuardStateCollection.Name)]
public sealed unsafe class LaunchPinsTests : IDisposable
{
    private const ulong Wp = 1UL << 16, Smep = 1UL << 20, Smap = 1UL << 21;
    private const ulong EntrySyscall = 0xffff_ffff_8160_0000, ModuleCode = 0xffff_ffff_c012_0000;

    private static GuardLockCpus s_cpus;
    private readonly GuardTestGuest _g = new();

    public LaunchPinsTests()
    {
        // Launch: the policy's rules in force, nothing protected, no pins.
        GuardState.Protected = false;
        GuardState.Pins = default;
        GuardArming.Reset();
        _g.State.Cr0 = 0x8005_0033;                          // PG, WP, NE, ET, MP, PE
        _g.State.Cr4 = 0x20 | Smep | Smap;
        _g.State.Cr4Supported |= Smep | Smap;
        _g.State.Efer = 0xD01;                               // SCE, LME, LMA, NXE
        _g.State.Mode = CpuMode.Bits64;
    }

    public void Dispose()
    {
        GuardArming.Reset();
        _g.Dispose();
    }

    private FakeVcpu V => _g.Vcpu;

    private bool Enter(ulong rip, int cpl = 0)
    {
        _g.State.Rip = rip;
        _g.State.Cpl = cpl;
        var v = V;
        GuardArming.BeforeEntry(ref v, out bool protect, out _);
        return protect;
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
    public void Firmware_code_in_the_lower_half_arms_nothing_and_may_clear_wp()
    {
        Assert.False(Enter(0x7FE0_1234));                    // OVMF, identity-mapped
        Assert.False(Enter(0xffff_ffff_8100_0000, cpl: 3));  // not kernel code
        Assert.False(LaunchPins.Armed);
        var v = V;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x8005_0033 & ~Wp));
        Assert.Equal(0x8005_0033 & ~Wp, _g.State.Cr0Loaded);
        Assert.Empty(_g.Events());
    }

    [Fact]
    public void From_the_kernels_first_instruction_clearing_wp_or_smep_is_judged_before_protect()
    {
        uint generation = GuardState.Generation;
        Assert.True(Enter(0xffff_ffff_8100_0040));
        Assert.True(LaunchPins.Armed);
        Assert.NotEqual(generation, GuardState.Generation);   // every CPU re-arms
        Assert.False(GuardState.Protected);

        var v = V;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x8005_0033 & ~Wp));
        Assert.Equal(0x8005_0033UL, _g.State.Cr0Loaded);    // WP stays
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardObject.ControlRegister0, e.Object);
        Assert.Equal(GuardVerdict.Block, e.Verdict);

        // A bit the OS has not set yet is not pinned: secondary_startup_64 loads CR4 without SMEP/SMAP, cr4_init sets them.
        _g.State.Cr4 = 0x20;
        v = V;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr4(ref v, ref s_cpus, 0x20 | (1UL << 7)));
        Assert.Equal(0x20 | (1UL << 7), _g.State.Cr4Loaded);
        Assert.Single(_g.Events());
    }

    [Fact]
    public void The_first_syscall_msr_value_the_kernel_writes_becomes_the_expected_one()
    {
        Enter(0xffff_ffff_8100_0040);
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, EntrySyscall));   // syscall_init on the boot CPU
        Assert.Equal(EntrySyscall, _g.State.GuardedMsrs[GuardMsrs.Lstar]);
        Assert.Equal(EntrySyscall, GuardState.Pins.Lstar);
        Assert.Empty(_g.Events());                                                  // allowed (expected value): not recorded
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, EntrySyscall));       // another CPU's bring-up
        Assert.Empty(_g.Events());

        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, ModuleCode));         // a rootkit's WRMSR
        Assert.Equal(EntrySyscall, _g.State.GuardedMsrs[GuardMsrs.Lstar]);
        GuardEvent e = Assert.Single(_g.Events());
        Assert.Equal(GuardObject.SyscallMsr, e.Object);
        Assert.Equal(GuardVerdict.Block, e.Verdict);
        Assert.Equal((ulong)GuardMsrs.Lstar, e.Detail);
        Assert.Equal(1u << 2, LaunchPins.Learned);                                  // LSTAR only (GuardMsrs.Guarded index 2)
    }

    [Fact]
    public void Before_the_kernel_runs_syscall_msr_writes_are_not_judged_and_protect_takes_over()
    {
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Lstar, ModuleCode));
        Assert.Equal(ModuleCode, _g.State.GuardedMsrs[GuardMsrs.Lstar]);
        Assert.Empty(_g.Events());

        // After Protect nothing is learned any more: Protect's pins hold.
        Enter(0xffff_ffff_8100_0040);
        GuardState.Protected = true;
        GuardState.Pins = new GuardPins { Lstar = EntrySyscall, Cr0Set = Wp };
        Assert.False(LaunchPins.Learn(GuardMsrs.Star, 1));
        Assert.Equal(VcpuAction.Skip, Wrmsr(GuardMsrs.Star, 0x0023_0010_0000_0000));
        Assert.Equal(GuardVerdict.Block, Assert.Single(_g.Events()).Verdict);
    }
}
