using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// Bochs (Intel Skylake-X with VMX), N CPUs: vigil.efi virtualizes the AP through MP services and then
/// the BSP; the INIT-SIPI-SIPI that OVMF and Linux send to the APs are caught at the sender's ICR write
/// (xAPIC page write-trapped in the EPT), the AP is taken out of the guest with an NMI and waits in the
/// host for its start-up IPI (no wait-for-SIPI state: Bochs 2.7 keeps a delivered INIT pending after the
/// INIT VM exit, fixed after 2.7 by Bochs commit 88f881c6d).
/// </summary>
public abstract class BochsSmpBoot(int cpus, string? extraKernelOptions = null) : EmulatorBoot(
    $"bochs-vmx-smp{cpus}",
    new EspLayoutSpec(EspTarget.Bochs, "smoke", extraKernelOptions == null ? null
        : EspLayout.DefaultConfig(EspTarget.Bochs, "smoke").Replace(EspLayout.GuestOptions, EspLayout.GuestOptions + " " + extraKernelOptions, StringComparison.Ordinal)),
    new EmulatorSpec(Tool.Emulators.Emulator.Bochs, Cpus: cpus),
    TimeSpan.FromSeconds(1200),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic")
        || t.Contains(EmulatorSetup.Com2, "stopped: the guest on this CPU cannot continue safely"))
{
    public int Cpus { get; } = cpus;
}

public sealed class BochsSmp2Boot() : BochsSmpBoot(2);

/// <summary>
/// 4 CPUs, Linux idling with HLT (`idle=halt`). With its default MWAIT idle, one 4-CPU run under Vigil hung
/// at the kernel's switch to the TSC clocksource: stop_machine waited for a CPU that stayed asleep in MWAIT
/// (it took no interrupt and no exit any more), while the same boot with `idle=halt` went through the switch
/// and a 2-CPU boot with MWAIT idle did too. Vigil does not intercept MONITOR/MWAIT or touch the monitored
/// memory. Suspected, not proven: Bochs 2.7's MONITOR invalidates the other CPUs' TLB entries with the
/// monitored physical address taken as a linear one (bx_pc_system.invlpg), so a store through a TLB entry
/// that already holds a direct host pointer skips the monitor check and the wake-up is lost. The 2-CPU
/// boot keeps Linux's default MWAIT idle.
/// </summary>
public sealed class BochsSmp4Boot() : BochsSmpBoot(4, "idle=halt");

/// <summary>What every multi-CPU Bochs boot must show (the 1-CPU boot is BochsBootTests).</summary>
public abstract class BochsVmxSmpChecks(BochsSmpBoot boot, ITestOutputHelper output)
{
    private int Cpus => boot.Cpus;

    private Transcript T => boot.Transcript;

    protected BochsSmpBoot Boot => boot;

    protected ITestOutputHelper Output => output;

    [Fact]
    public void Boot_completes_and_reports_timings()
    {
        output.WriteLine(boot.Timings(
            ("banner", EmulatorSetup.Com2, GuestMarkers.VigilBanner),
            ("launched", EmulatorSetup.Com1, GuestMarkers.AllCpusProtected),
            ("linux", EmulatorSetup.Com1, GuestMarkers.LinuxVersion),
            ("init", EmulatorSetup.Com1, GuestMarkers.InitStarted),
            ("power-off", EmulatorSetup.Com1, GuestMarkers.PowerDown)));
        Assert.False(T.TimedOut, $"Bochs did not finish in time; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown), "the guest did not power off");
    }

    [Fact]
    public void Vmx_launches_every_cpu_before_linux() => VmxGuestChecks.EveryCpuLaunched(T, Cpus);

    [Fact]
    public void Linux_starts_its_ap_under_the_hypervisor() => VmxGuestChecks.LinuxUsesEveryCpu(T, Cpus);

    [Fact]
    public void Every_guest_cpu_sees_vigils_cpuid_leaf_and_no_vmx() => VmxGuestChecks.GuestSeesVigilNotVmx(T, Cpus);

    [Fact]
    public void Vigild_status_reports_every_cpu_virtualized_with_exits() => VmxGuestChecks.StatusReportsEveryCpuWithExits(T, Cpus, output);

    [Fact]
    public void Guest_cannot_read_the_hypervisors_pages() => VmxGuestChecks.HypervisorPagesUnreadable(T);

    [Fact]
    public void A_debugger_single_stepping_over_cpuid_gets_its_trap_at_the_next_instruction() => GuestProgramChecks.SingleStepOverCpuid(T);

    [Fact]
    public void User_space_sees_osxsave_and_the_avx_state_and_runs_avx() => GuestProgramChecks.AvxWorks(T, output);

    [Fact]
    public void A_nested_map_change_at_start_up_is_acknowledged_by_every_cpu() => KickChecks.NestedMapChangeAcknowledgedByEveryCpu(T, output);

    [Fact]
    public void Binary_log_records_arrive_intact_on_the_log_port() => BinaryLogChecks.RecordsArriveIntact(boot, Cpus, Abi.Vendor.IntelVmx, output);
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class BochsVmxSmpTests(BochsSmp2Boot boot, ITestOutputHelper output) : BochsVmxSmpChecks(boot, output), IClassFixture<BochsSmp2Boot>
{
    /// <summary>Linux takes CPU 1 offline and brings it back (the VMX NMI kick: hv/Vmx/VmxNmi, hv/Host/NmiKick).</summary>
    [Fact]
    public void A_cpu_taken_offline_comes_back_online_and_runs_work() => KickChecks.CpuComesBackOnline(Boot.Transcript, Boot.Cpus, Output);

    /// <summary>The guest's own NMIs (sysrq 'l' backtraces) exit and are injected back into it.</summary>
    [Fact]
    public void A_guest_nmi_to_the_other_cpu_is_delivered() => KickChecks.GuestNmisReachTheOtherCpus(Boot.Transcript, Boot.Cpus);
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class BochsVmxSmp4Tests(BochsSmp4Boot boot, ITestOutputHelper output) : BochsVmxSmpChecks(boot, output), IClassFixture<BochsSmp4Boot>;
