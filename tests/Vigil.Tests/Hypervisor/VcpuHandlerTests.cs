using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>The vendor-neutral exit handlers (hv/Core/Vcpu) over a fake vCPU: what the guest sees and what is loaded.</summary>
[Collection(Guard.GuardStateCollection.Name)]   // the CR and MSR handlers read GuardState
public class VcpuHandlerTests
{
    private static Guard.GuardLockCpus s_cpus;

    private const uint Osxsave = 1u << 27, Ospke = 1u << 4, WaitPkg = 1u << 5, Invpcid = 1u << 10, Xsaves = 1u << 3, Rdtscp = 1u << 27;

    private static (FakeVcpu Vcpu, FakeVcpuState State) New(System.Action<FakeVcpuState>? setup = null)
    {
        var s = new FakeVcpuState();
        setup?.Invoke(s);
        return (new FakeVcpu(s), s);
    }

    private static void AssertGeneralProtection(FakeVcpuState s)
    {
        Assert.True(s.Injected.Valid);
        Assert.Equal(VcpuEvent.GeneralProtection, s.Injected.Vector);
        Assert.Equal(EventType.HardwareException, s.Injected.Type);
        Assert.True(s.Injected.HasErrorCode);
        Assert.Equal(0u, s.Injected.ErrorCode);
    }

    // ---- CPUID ----

    private static (uint A, uint B, uint C, uint D) Cpuid(FakeVcpuState s, uint leaf, uint subleaf = 0)
    {
        var v = new FakeVcpu(s);
        s.Regs.Rax = 0xDEAD_BEEF_0000_0000 | leaf;
        s.Regs.Rcx = 0xDEAD_BEEF_0000_0000 | subleaf;
        Assert.Equal(VcpuAction.Skip, CpuidExit.Handle(ref v));
        // CPUID clears the high halves (SDM Vol 2A CPUID).
        Assert.True(s.Regs.Rax >> 32 == 0 && s.Regs.Rbx >> 32 == 0 && s.Regs.Rcx >> 32 == 0 && s.Regs.Rdx >> 32 == 0);
        return ((uint)s.Regs.Rax, (uint)s.Regs.Rbx, (uint)s.Regs.Rcx, (uint)s.Regs.Rdx);
    }

    [Theory]
    [InlineData(true, false)]    // the host runs with OSXSAVE, the guest has not enabled it (SVM before the fix)
    [InlineData(false, true)]    // the host has no OSXSAVE, the guest enabled it (glibc would turn AVX off)
    [InlineData(true, true)]
    public void Osxsave_and_ospke_follow_the_guests_cr4_not_the_hosts(bool host, bool guest)
    {
        var (_, s) = New(s =>
        {
            s.Cpuid[(1, 0)] = (0x806F8, 0, (1u << 28) | (1u << 26) | (host ? Osxsave : 0), 0);
            s.Cpuid[(7, 0)] = (0, 0, (1u << 3) | (host ? Ospke : 0), 0);
            s.Cr4 = 0x20 | (guest ? CpuidPolicy.Cr4Osxsave | CpuidPolicy.Cr4Pke : 0);
        });
        var leaf1 = Cpuid(s, 1);
        Assert.Equal(guest, (leaf1.C & Osxsave) != 0);
        Assert.NotEqual(0u, leaf1.C & (1u << 28));   // AVX itself passes through
        Assert.NotEqual(0u, leaf1.C & (1u << 31));   // the hypervisor bit
        Assert.Equal(guest, (Cpuid(s, 7).C & Ospke) != 0);
    }

    [Fact]
    public void Features_the_back_end_cannot_enable_are_hidden_and_others_pass()
    {
        var (_, s) = New(s =>
        {
            s.Cpuid[(7, 0)] = (0, Invpcid, WaitPkg, 0);
            s.Cpuid[(0xD, 1)] = (0xF, 576, 0x1800, 0x1);   // XCR0 = x87, IA32_XSS = 0: the legacy region and the header
            s.Cpuid[(0x8000_0001, 0)] = (0, 0, 0, Rdtscp | 1);
        });
        Assert.Equal((WaitPkg, Invpcid), (Cpuid(s, 7).C, Cpuid(s, 7).B));
        Assert.Equal((0xFu, 0x1800u, 0x1u), (Cpuid(s, 0xD, 1).A, Cpuid(s, 0xD, 1).C, Cpuid(s, 0xD, 1).D));
        Assert.Equal(Rdtscp | 1, Cpuid(s, 0x8000_0001).D);

        s.Features = GuestFeatures.None;
        Assert.Equal(0u, Cpuid(s, 7).C & WaitPkg);
        Assert.Equal(0u, Cpuid(s, 7).B & Invpcid);
        var xsave = Cpuid(s, 0xD, 1);
        Assert.Equal(0xFu & ~Xsaves, xsave.A);
        Assert.Equal((0u, 0u), (xsave.C, xsave.D));   // no IA32_XSS bits without XSAVES
        Assert.Equal(1u, Cpuid(s, 0x8000_0001).D);
    }

    [Fact]
    public void Vigils_leaf_is_answered_without_asking_the_hardware()
    {
        var (_, s) = New();
        var r = Cpuid(s, 0x4000_0000);
        Assert.Equal(0x4000_0001u, r.A);
        Assert.Equal(Vigil.Abi.Hypercall.CpuidVendorEbx, r.B);
    }

    // ---- MSRs ----

    [Fact]
    public void Pat_is_the_guests_own_and_invalid_types_fault()
    {
        var (v, s) = New(s => s.Vendor = Vigil.Abi.Vendor.AmdSvm);   // VMX passes PAT through (VMCS load/save fields)
        s.Regs.Rcx = MsrExit.PatMsr;
        s.Regs.Rax = 0x0006_0606;
        s.Regs.Rdx = 0x0007_0406;
        Assert.Equal(VcpuAction.Skip, MsrExit.Handle(ref v, ref s_cpus, write: true));
        Assert.Equal(0x0007_0406_0006_0606UL, s.Pat);
        s.Regs.Rax = 0x0000_0002;   // type 2 is reserved
        Assert.Equal(VcpuAction.Resume, MsrExit.Handle(ref v, ref s_cpus, write: true));
        AssertGeneralProtection(s);
        Assert.Equal(0x0007_0406_0006_0606UL, s.Pat);
        s.Injected = default;
        Assert.Equal(VcpuAction.Skip, MsrExit.Handle(ref v, ref s_cpus, write: false));
        Assert.Equal((0x0006_0606UL, 0x0007_0406UL), (s.Regs.Rax, s.Regs.Rdx));
    }

    [Fact]
    public void Vendor_msrs_go_through_the_seam_and_unknown_ones_fault()
    {
        var (v, s) = New(s => s.VendorMsrs[0x3A] = 0x5);
        s.Regs.Rcx = 0x3A;
        Assert.Equal(VcpuAction.Skip, MsrExit.Handle(ref v, ref s_cpus, write: false));
        Assert.Equal((5UL, 0UL), (s.Regs.Rax, s.Regs.Rdx));
        s.Regs.Rcx = 0xC000_2000;   // not known to the vendor policy
        Assert.Equal(VcpuAction.Resume, MsrExit.Handle(ref v, ref s_cpus, write: false));
        AssertGeneralProtection(s);
    }

    [Fact]
    public void Msrs_nobody_intercepts_run_on_the_hardware_and_its_gp_is_the_guests()
    {
        foreach (Vigil.Abi.Vendor vendor in new[] { Vigil.Abi.Vendor.IntelVmx, Vigil.Abi.Vendor.AmdSvm })
        {
            var (v, s) = New(s => { s.Vendor = vendor; s.HardwareMsrs[0xC000_2001] = 0x1234_5678_9ABC_DEF0; });
            s.Regs.Rcx = 0xC000_2001;   // an SMCA bank MSR: outside both maps, exits, not intercepted on purpose
            Assert.Equal(VcpuAction.Skip, MsrExit.Handle(ref v, ref s_cpus, write: false));
            Assert.Equal((0x9ABC_DEF0UL, 0x1234_5678UL), (s.Regs.Rax, s.Regs.Rdx));
            s.Regs.Rax = 0xFFFF_FFFF_0000_0001;   // upper halves ignored
            s.Regs.Rdx = 0xFFFF_FFFF_0000_0002;
            Assert.Equal(VcpuAction.Skip, MsrExit.Handle(ref v, ref s_cpus, write: true));
            Assert.Equal(0x2_0000_0001UL, s.HardwareMsrs[0xC000_2001]);
            Assert.False(s.Injected.Valid);
            s.Regs.Rcx = 0xC000_2FFF;   // the CPU has no such MSR: its #GP goes to the guest, registers untouched
            s.Regs.Rax = 7;
            Assert.Equal(VcpuAction.Resume, MsrExit.Handle(ref v, ref s_cpus, write: false));
            AssertGeneralProtection(s);
            Assert.Equal(7UL, s.Regs.Rax);
        }
    }

    [Fact]
    public void X2apic_icr_writes_the_cpu_would_refuse_fault_and_others_are_sent()
    {
        var (v, s) = New();
        s.Regs.Rcx = ApicPage.X2ApicIcrMsr;
        s.Regs.Rax = 0x40FE;   // fixed IPI, vector 0xFE
        s.Regs.Rdx = 1;
        Assert.Equal(VcpuAction.Resume, MsrExit.Handle(ref v, ref s_cpus, write: true));   // xAPIC mode: WRMSR 0x830 faults
        AssertGeneralProtection(s);
        Assert.Null(s.IcrSent);
        s.Injected = default;
        s.ApicBaseMsr |= ApicPage.X2ApicEnable;
        Assert.Equal(VcpuAction.Skip, MsrExit.Handle(ref v, ref s_cpus, write: true));
        Assert.Equal(0x1_0000_40FEUL, s.IcrSent);
    }

    // ---- control registers ----

    [Theory]
    [InlineData(0x1_8000_0033UL)]        // bits 63:32
    [InlineData(0x8000_0032UL)]          // PG without PE
    [InlineData(0x2000_0033UL | 0x8000_0000)]   // NW without CD
    [InlineData(0x0000_0033UL)]          // PG cleared in 64-bit mode
    public void Cr0_values_the_cpu_refuses_get_gp_and_are_not_loaded(ulong value)
    {
        var (v, s) = New();
        Assert.Equal(VcpuAction.Resume, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, value));
        AssertGeneralProtection(s);
        Assert.Null(s.Cr0Loaded);
    }

    [Fact]
    public void Cr0_paging_on_with_lme_needs_pae_and_reserved_low_bits_are_ignored()
    {
        var (v, s) = New(s =>
        {
            s.Cr0 = 0x11;
            s.Cr4 = 0;
            s.Efer = 0x100;   // LME, not yet active
            s.Mode = CpuMode.Bits32;
        });
        Assert.Equal(VcpuAction.Resume, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x8000_0011));
        AssertGeneralProtection(s);
        s.Injected = default;
        s.Cr4 = 0x20;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr0(ref v, ref s_cpus, 0x8000_0001 | (1UL << 8)));   // bit 8 reserved, ET clear
        Assert.Equal(0x8000_0011UL, s.Cr0Loaded);
    }

    [Fact]
    public void Lmsw_cannot_clear_pe_and_clts_clears_ts()
    {
        var (v, s) = New(s => s.Cr0 = 0x8005_003B);
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.Lmsw(ref v, ref s_cpus, 0x0));
        Assert.Equal(0x8005_0031UL, s.Cr0Loaded);   // MP, EM, TS cleared, PE kept
        s.Cr0 = 0x8005_003B;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.Clts(ref v, ref s_cpus));
        Assert.Equal(0x8005_0033UL, s.Cr0Loaded);
    }

    [Theory]
    [InlineData(0x20UL | (1UL << 13))]   // VMXE: not offered to the guest
    [InlineData(0x20UL | (1UL << 30))]   // beyond what the CPU supports
    [InlineData(0x0UL)]                  // PAE cleared in IA-32e mode
    [InlineData(0x20UL | (1UL << 12))]   // LA57 changed in IA-32e mode
    [InlineData(0x20UL | (1UL << 23))]   // CET with CR0.WP clear
    public void Cr4_values_the_cpu_refuses_get_gp_and_no_bit_is_dropped_silently(ulong value)
    {
        var (v, s) = New(s => s.Cr0 = 0x8000_0033);   // WP clear
        Assert.Equal(VcpuAction.Resume, ControlRegisterExit.WriteCr4(ref v, ref s_cpus, value));
        AssertGeneralProtection(s);
        Assert.Null(s.Cr4Loaded);
    }

    [Fact]
    public void Cr4_pcide_needs_long_mode_and_a_cr3_with_pcid_0_then_loads_exactly()
    {
        var (v, s) = New(s => s.Cr3 = 0x10_0005);
        const ulong pcide = 0x20 | (1UL << 17);
        Assert.Equal(VcpuAction.Resume, ControlRegisterExit.WriteCr4(ref v, ref s_cpus, pcide));
        AssertGeneralProtection(s);
        s.Injected = default;
        s.Cr3 = 0x10_0000;
        Assert.Equal(VcpuAction.Skip, ControlRegisterExit.WriteCr4(ref v, ref s_cpus, pcide | CpuidPolicy.Cr4Osxsave));
        Assert.Equal(pcide | CpuidPolicy.Cr4Osxsave, s.Cr4Loaded);
    }

    // ---- XSETBV ----

    [Theory]
    [InlineData(0u, 0x7UL, 3)]        // CPL 3
    [InlineData(1u, 0x7UL, 0)]        // XCR1 is not writable
    [InlineData(0u, 0x6UL, 0)]        // x87 state must stay enabled
    [InlineData(0u, 0x5UL, 0)]        // AVX without SSE
    [InlineData(0u, 0x207UL, 0)]      // a component the CPU does not support (PKRU)
    [InlineData(0u, 0x27UL, 0)]       // AVX-512 opmask without ZMM_Hi256 and Hi16_ZMM
    [InlineData(0u, 0xE3UL, 0)]       // AVX-512 without AVX
    [InlineData(0u, 0xFUL, 0)]        // BNDREGS without BNDCSR
    public void Xsetbv_refuses_what_the_cpu_refuses(uint index, ulong value, int cpl)
    {
        var (v, s) = New(s =>
        {
            s.Cpl = cpl;
            s.Cpuid[(0xD, 0)] = (0xFF, 0, 0, 0);   // x87 .. Hi16_ZMM, no PKRU
        });
        s.Regs.Rcx = index;
        s.Regs.Rax = (uint)value;
        s.Regs.Rdx = value >> 32;
        Assert.Equal(VcpuAction.Resume, XsetbvExit.Handle(ref v));
        AssertGeneralProtection(s);
        Assert.Null(s.Xcr0Loaded);
    }

    [Theory]
    [InlineData(0x3UL)]
    [InlineData(0x7UL)]
    [InlineData(0xE7UL)]
    [InlineData(0x1FUL)]
    public void Xsetbv_loads_valid_combinations(ulong value)
    {
        var (v, s) = New(s => s.Cpuid[(0xD, 0)] = (0xFF, 0, 0, 0));
        s.Regs.Rcx = 0;
        s.Regs.Rax = value | 0xFFFF_FFFF_0000_0000;   // only EDX:EAX count
        s.Regs.Rdx = 0xFFFF_FFFF_0000_0000;
        Assert.Equal(VcpuAction.Skip, XsetbvExit.Handle(ref v));
        Assert.Equal(value, s.Xcr0Loaded);
    }

    // ---- hypercall entry ----

    [Fact]
    public void A_vmcall_without_vigils_signature_gets_ud()
    {
        var (v, s) = New();
        s.Regs.Rax = 0x1234;
        var memory = new FakeGuest().View;
        var guard = new Guard.FakeGuardPlatform(new Guard.FakeGuardPlatformState());
        Assert.Equal(VcpuAction.Resume, HypercallExit.Handle(ref v, ref memory, ref guard));
        Assert.Equal(VcpuEvent.InvalidOpcode, s.Injected.Vector);
        Assert.False(s.Injected.HasErrorCode);
    }

    // ---- stepping over the instruction ----

    [Fact]
    public void Skip_uses_the_cpus_length_ends_the_shadow_and_clears_rf()
    {
        var (v, s) = New(s =>
        {
            s.ExitInstructionLength = 3;
            s.Shadow = true;
            s.Rflags = 0x1_0202;
        });
        var memory = new FakeGuest().View;
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(0x1003UL, s.Rip);
        Assert.False(s.Shadow);
        Assert.Equal(0x202UL, s.Rflags);
        Assert.False(s.SingleStep);
    }

    [Fact]
    public void Skip_with_tf_set_raises_the_single_step_trap()
    {
        var (v, s) = New(s => s.Rflags = 0x302);
        var memory = new FakeGuest().View;
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(0x1002UL, s.Rip);
        Assert.True(s.SingleStep);
    }

    [Fact]
    public void Without_a_cpu_length_the_decoder_sizes_the_instruction_from_guest_memory()
    {
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present | FakeGuest.Writable);
        guest.Page(0x20_0000)[0x10] = 0x0F;   // CPUID
        guest.Page(0x20_0000)[0x11] = 0xA2;
        var (v, s) = New(s =>
        {
            s.ExitInstructionLength = 0;   // SVM without NRIP save
            s.Rip = 0x40_0010;
            s.Cr3 = guest.Cr3;
        });
        var memory = guest.View;
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(0x40_0012UL, s.Rip);

        s.Rip = 0x80_0000;   // not mapped: cannot be sized, nothing changes
        Assert.False(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(0x80_0000UL, s.Rip);
    }

    [Fact]
    public void Without_a_cpu_length_the_kept_translation_sizes_the_next_exit_until_the_guest_remaps_the_page()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present | FakeGuest.Writable);
        guest.Page(0x20_0000)[0x10] = 0x0F;   // CPUID, CPUID
        guest.Page(0x20_0000)[0x11] = 0xA2;
        guest.Page(0x20_0000)[0x12] = 0x0F;
        guest.Page(0x20_0000)[0x13] = 0xA2;
        guest.Page(0x20_0000)[0x14] = 0x0F;   // CPUID again in the old page: what a stale translation would size
        guest.Page(0x20_0000)[0x15] = 0xA2;
        guest.Page(0x30_0000)[0x14] = 0x66;   // the page the guest maps there next: CPUID behind a prefix
        guest.Page(0x30_0000)[0x15] = 0x0F;
        guest.Page(0x30_0000)[0x16] = 0xA2;
        var (v, s) = New(s =>
        {
            s.Index = 3;
            s.ExitInstructionLength = 0;   // SVM without NRIP save
            s.Rip = 0x40_0010;
            s.Cr3 = guest.Cr3;
        });
        var memory = guest.View;
        Assert.Equal(0, GuestCode.FetchHead(ref memory, 3, s.Cr3, s.Cr4, s.Efer, s.Cpl, s.Rip, s.ReservedBase, s.ReservedSize, out _));
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));   // walks and keeps the translation
        Assert.Equal(0x40_0012UL, s.Rip);
        Assert.Equal(8, GuestCode.FetchHead(ref memory, 3, s.Cr3, s.Cr4, s.Efer, s.Cpl, s.Rip, s.ReservedBase, s.ReservedSize, out ulong head));
        Assert.Equal(0xA2_0FUL, head & 0xFFFF);
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));   // from the kept translation
        Assert.Equal(0x40_0014UL, s.Rip);

        guest.Write64(guest.EntryAddress(0x40_0000, 1), 0x30_0000 | FakeGuest.Present | FakeGuest.Writable);
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(0x40_0017UL, s.Rip);   // 3, not CPUID's 2
        Assert.Equal(0, guest.Violations);
    }

    /// <summary>
    /// The exit after the guest moved its code page onto the hypervisor's reservation: the instruction cannot be read, so
    /// it cannot be sized (the back end stops the guest on this CPU) — it must not be sized from the page kept before.
    /// </summary>
    [Fact]
    public void A_code_page_moved_onto_the_reservation_is_not_sized_from_the_page_kept_before()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present | FakeGuest.Writable);
        guest.Page(0x20_0000)[0x10] = 0x0F;   // CPUID, then RDTSC
        guest.Page(0x20_0000)[0x11] = 0xA2;
        guest.Page(0x20_0000)[0x12] = 0x0F;
        guest.Page(0x20_0000)[0x13] = 0x31;
        var (v, s) = New(s =>
        {
            s.ExitInstructionLength = 0;
            s.Rip = 0x40_0010;
            s.Cr3 = guest.Cr3;
        });
        var memory = guest.View;
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(0x40_0012UL, s.Rip);
        guest.Write64(guest.EntryAddress(0x40_0000, 1), s.ReservedBase | FakeGuest.Present | FakeGuest.Writable);
        bool skipped = InstructionSkip.Skip(ref v, ref memory, 0);
        Assert.True(!skipped && s.Rip == 0x40_0012, $"skipped: {skipped}, rip 0x{s.Rip:X}");
    }

    [Fact]
    public void Outside_64_bit_mode_rip_wraps_at_4_gib()
    {
        var (v, s) = New(s =>
        {
            s.Mode = CpuMode.Bits32;
            s.Rip = 0xFFFF_FFFF;
        });
        var memory = new FakeGuest().View;
        Assert.True(InstructionSkip.Skip(ref v, ref memory, 0));
        Assert.Equal(1UL, s.Rip);
    }

    // ---- INIT / start-up IPI ----

    [Fact]
    public void A_started_ap_is_in_real_mode_at_the_vector_with_nothing_left_of_the_old_state()
    {
        var (v, s) = New(s =>
        {
            s.Cpuid[(1, 0)] = (0x0008_06F8, 0, 0, 0);
            s.Regs.Rax = s.Regs.R15 = 0x55;
            s.Pat = 0x0606_0606_0606_0606;
            s.Interrupted = VcpuEvent.Nmi;
            s.Injected = VcpuEvent.Exception(13, 0);
            s.Deferred = VcpuEvent.Nmi;
        });
        StartupState.StartAt(ref v, 0x9A);
        Assert.True(s.Cleared);
        Assert.False(s.Injected.Valid);
        Assert.False(s.Deferred.Valid);
        Assert.False(v.InterruptedEvent.Valid);
        Assert.Equal((ushort)0x9A00, s.Segments[SegmentRegister.Cs].Selector);
        Assert.Equal(0x9_A000UL, s.Segments[SegmentRegister.Cs].Base);
        Assert.Equal(0x9Bu, s.Segments[SegmentRegister.Cs].Rights);
        Assert.Equal((ushort)0, s.Segments[SegmentRegister.Ss].Selector);
        Assert.Equal(0x8Bu, s.Segments[SegmentRegister.Tr].Rights);
        Assert.Equal(8, s.Segments.Count);
        Assert.Equal((0UL, 0xFFFFu, 0UL, 0xFFFFu), s.Tables);
        Assert.Equal((0x6000_0010UL, 0x400UL), s.ResetControl);
        Assert.Equal((0UL, 0UL, 2UL), (s.Rip, s.Rsp, s.Rflags));
        Assert.Equal(1UL, s.Xcr0Loaded);
        Assert.Equal(X86PageEntry.DefaultPat, s.Pat);
        Assert.Equal(0x0008_06F8UL, s.Regs.Rdx);
        Assert.Equal((0UL, 0UL), (s.Regs.Rax, s.Regs.R15));
        Assert.True(s.Flushed);
    }

    // ---- events before entry ----

    [Theory]
    [InlineData(14, 13, true)]    // #GP while delivering #PF: #DF
    [InlineData(14, 14, true)]    // #PF while delivering #PF: #DF
    [InlineData(13, 11, true)]    // #NP while delivering #GP: #DF
    [InlineData(13, 14, false)]   // #PF while delivering #GP: serial
    [InlineData(6, 13, false)]    // #GP while delivering #UD (benign): serial
    public void An_exception_raised_while_delivering_another_merges_as_the_sdm_says(byte first, byte second, bool doubleFault)
    {
        var (v, s) = New(s =>
        {
            s.Interrupted = VcpuEvent.Exception(first, 0);
            s.Injected = VcpuEvent.Exception(second, 0);
        });
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.Equal(doubleFault ? VcpuEvent.DoubleFault : second, s.Injected.Vector);
        Assert.True(s.Injected.HasErrorCode);
        Assert.False(s.TripleFault);
    }

    [Fact]
    public void A_contributory_fault_while_delivering_a_double_fault_shuts_down()
    {
        var (v, s) = New(s =>
        {
            s.Interrupted = VcpuEvent.Exception(VcpuEvent.DoubleFault, 0);
            s.Injected = VcpuEvent.Exception(VcpuEvent.GeneralProtection, 0);
        });
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.True(s.TripleFault);
        Assert.False(s.Injected.Valid);
    }

    [Fact]
    public void An_interrupted_event_is_delivered_again_and_an_nmi_unblocks_first()
    {
        var (v, s) = New(s =>
        {
            s.Interrupted = VcpuEvent.Nmi;
            s.NmiBlocked = true;
        });
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.Equal(VcpuEvent.Nmi.Info, s.Injected.Info);
        Assert.False(s.NmiBlocked);

        (v, s) = New(s => s.Interrupted = VcpuEvent.Exception(VcpuEvent.PageFault, 0x6));
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: false);
        Assert.Equal((VcpuEvent.PageFault, 0x6u), (s.Injected.Vector, s.Injected.ErrorCode));
    }

    [Fact]
    public void Software_events_are_reinjected_with_their_length_or_left_to_the_instruction()
    {
        var soft = VcpuEvent.FromInfo(VcpuEvent.ValidBit | ((uint)EventType.SoftwareInterrupt << 8) | 0x80, 0, 2);
        var (v, s) = New(s => s.Interrupted = soft);
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.Equal((0x80, 2), (s.Injected.Vector, s.Injected.InstructionLength));

        (v, s) = New(s => s.Interrupted = soft);
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: false);   // SVM: RIP still at INT 0x80, which runs again
        Assert.False(s.Injected.Valid);
    }

    [Fact]
    public void An_interrupt_displaced_by_an_exception_waits_for_the_window_then_goes_in()
    {
        var interrupt = VcpuEvent.FromInfo(VcpuEvent.ValidBit | 0x30, 0, 0);
        var (v, s) = New(s =>
        {
            s.Interrupted = interrupt;
            s.Injected = VcpuEvent.Exception(VcpuEvent.GeneralProtection, 0);
            s.Rflags = 0x202;
        });
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.Equal(VcpuEvent.GeneralProtection, s.Injected.Vector);
        Assert.Equal(interrupt.Info, s.Deferred.Info);
        Assert.True(s.Window);

        // The next exit: the exception went in, the guest's handler runs with IF clear: still waiting.
        s.Interrupted = s.Injected = default;
        s.Rflags = 0x2;
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.False(s.Injected.Valid);
        Assert.True(s.Window);

        // The window exit: IF set, no shadow: the interrupt is injected and the window closed.
        s.Rflags = 0x202;
        VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
        Assert.Equal(interrupt.Info, s.Injected.Info);
        Assert.False(s.Deferred.Valid);
        Assert.False(s.Window);
    }

    [Fact]
    public void Event_encodings_round_trip_between_the_vendors()
    {
        VcpuEvent gp = VcpuEvent.Exception(VcpuEvent.GeneralProtection, 0x18);
        Assert.Equal(0x0000_0018_0000_0B0DUL | (1UL << 31), gp.ToSvm());
        VcpuEvent back = VcpuEvent.FromSvm(gp.ToSvm());
        Assert.Equal((gp.Info, gp.ErrorCode), (back.Info, back.ErrorCode));
        // VMX's bit 12 (NMI unblocking due to IRET) is reserved on entry: never carried into an injection.
        Assert.Equal(VcpuEvent.Nmi.Info, VcpuEvent.FromInfo(VcpuEvent.Nmi.Info | (1u << 12), 0, 0).Info);
        Assert.Equal(ExceptionClass.PageFault, VcpuEvent.Exception(VcpuEvent.PageFault, 0).Class);
        Assert.Equal(ExceptionClass.Benign, VcpuEvent.Nmi.Class);
    }

    [Theory]
    [InlineData(0x8000_03ECUL, 0x8000_00ECu)]   // QEMU TCG: the timer interrupt 0xEC being delivered, reported as an exception
    [InlineData(0x8000_0302UL, 0x8000_0202u)]   // QEMU TCG: an NMI, reported as exception 2
    [InlineData(0x8000_0303UL, 0x8000_0603u)]   // INT3: a software exception (raised again by the instruction)
    [InlineData(0x8000_0304UL, 0x8000_0604u)]   // INTO
    [InlineData(0x8000_00ECUL, 0x8000_00ECu)]   // an external interrupt as hardware reports it
    [InlineData(0x8000_0202UL, 0x8000_0202u)]   // an NMI as hardware reports it
    [InlineData(0x8000_0480UL, 0x8000_0480u)]   // INT 0x80
    [InlineData(0x0000_0000UL, 0x0000_0000u)]   // nothing
    public void Svm_interrupted_events_are_read_with_the_type_their_vector_allows(ulong exitIntInfo, uint expected)
    {
        VcpuEvent e = VcpuEvent.FromSvmInterrupted(exitIntInfo);
        Assert.Equal(expected, e.Info);
        Assert.Equal(0u, e.ErrorCode);
        // A page fault keeps its type and error code.
        VcpuEvent pf = VcpuEvent.FromSvmInterrupted(VcpuEvent.Exception(VcpuEvent.PageFault, 0x7).ToSvm());
        Assert.Equal((EventType.HardwareException, (byte)14, 7u, true), (pf.Type, pf.Vector, pf.ErrorCode, pf.HasErrorCode));
    }
}
