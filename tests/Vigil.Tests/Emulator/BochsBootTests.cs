using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// Bochs (Intel Skylake-X with VMX), 1 CPU: firmware → acpitables.efi (harness) → vigil.efi → Linux
/// → smoke scenario → ACPI power-off. Bochs reports the power-off as a panic and exits non-zero,
/// so the run is judged by its serial output.
/// </summary>
public sealed class BochsSmokeBoot() : EmulatorBoot(
    "bochs-smoke",
    new EspLayoutSpec(EspTarget.Bochs, "smoke"),
    new EmulatorSpec(Tool.Emulators.Emulator.Bochs),
    TimeSpan.FromSeconds(900),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class BochsBootTests(BochsSmokeBoot boot, ITestOutputHelper output) : IClassFixture<BochsSmokeBoot>
{
    private Transcript T => boot.Transcript;

    [Fact]
    public void Boot_completes_and_reports_timings()
    {
        output.WriteLine(boot.Timings(
            ("banner", EmulatorSetup.Com2, GuestMarkers.VigilBanner),
            ("linux", EmulatorSetup.Com1, GuestMarkers.LinuxVersion),
            ("init", EmulatorSetup.Com1, GuestMarkers.InitStarted),
            ("power-off", EmulatorSetup.Com1, GuestMarkers.PowerDown)));
        Assert.False(T.TimedOut, $"Bochs did not finish in time; see {boot.TranscriptPath}");
    }

    [Fact]
    public void Harness_installs_acpi_tables_then_firmware_chain_reaches_vigil_efi()
    {
        double? acpi = T.FirstSeen(EmulatorSetup.Com1, "acpitables: installed");
        double? banner = T.FirstSeen(EmulatorSetup.Com2, GuestMarkers.VigilBanner);
        Assert.NotNull(acpi);
        Assert.NotNull(banner);
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigilBanner), "no banner on the console (COM1)");
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.StartingLoader));
    }

    [Fact]
    public void Linux_boots_loads_the_module_and_powers_off()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.KernelCommandLine));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.HelloModuleLoaded));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown));
    }

    [Fact]
    public void Vmx_launches_the_cpu_before_linux() => VmxGuestChecks.EveryCpuLaunched(T, 1);

    [Fact]
    public void Guest_sees_vigils_cpuid_leaf_and_no_vmx() => VmxGuestChecks.GuestSeesVigilNotVmx(T, 1);

    [Fact]
    public void Vigild_status_reports_the_cpu_virtualized_with_exits() => VmxGuestChecks.StatusReportsEveryCpuWithExits(T, 1, output);

    [Fact]
    public void Guest_cannot_read_the_hypervisors_pages() => VmxGuestChecks.HypervisorPagesUnreadable(T);

    [Fact]
    public void A_debugger_single_stepping_over_cpuid_gets_its_trap_at_the_next_instruction() => GuestProgramChecks.SingleStepOverCpuid(T);

    [Fact]
    public void User_space_sees_osxsave_and_the_avx_state_and_runs_avx() => GuestProgramChecks.AvxWorks(T, output);

    [Fact]
    public void Binary_log_records_arrive_intact_on_the_log_port() => BinaryLogChecks.RecordsArriveIntact(boot, 1, Abi.Vendor.IntelVmx, output);
}
