using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>QEMU TCG (AMD model with SVM), 1 CPU: firmware → vigil.efi → Linux → smoke scenario → power-off.</summary>
public sealed class QemuSmokeBoot() : EmulatorBoot(
    "qemu-smoke",
    new EspLayoutSpec(EspTarget.Qemu, "smoke"),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg),
    TimeSpan.FromSeconds(300));

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class QemuBootTests(QemuSmokeBoot boot, ITestOutputHelper output) : IClassFixture<QemuSmokeBoot>
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
        Assert.False(T.TimedOut, $"QEMU did not finish in time; see {boot.TranscriptPath}");
        Assert.Equal(0, T.ExitCode);
    }

    [Fact]
    public void Firmware_starts_vigil_efi_which_prints_its_banner_on_console_and_log_port()
    {
        double? firmware = T.FirstSeen(EmulatorSetup.Com1, GuestMarkers.FirmwareStartsBootOption);
        double? console = T.FirstSeen(EmulatorSetup.Com1, GuestMarkers.VigilBanner);
        Assert.NotNull(firmware);
        Assert.NotNull(console);
        Assert.True(firmware <= console, "the banner came before the firmware started the boot option");
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.VigilBanner), "no banner on COM2, Vigil's log port");
    }

    [Fact]
    public void Vigil_reads_its_config_and_starts_the_configured_loader()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.ConfigRead));
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.StartingLoader));
        Assert.Equal(0, T.Count(EmulatorSetup.Com2, "vigil.conf line"));
    }

    [Fact]
    public void Hypervisor_image_is_placed_and_started_and_an_unprotected_boot_is_loud()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorPlaced));
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting));
        bool allProtected = T.Contains(EmulatorSetup.Com2, "CPUs run under the hypervisor (AMD SVM + NPT)");
        Assert.True(allProtected || T.Contains(EmulatorSetup.Com2, GuestMarkers.Unprotected), "neither protected nor a loud unprotected warning");
    }

    [Fact]
    public void Linux_boots_with_the_load_options_vigil_passed()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.LinuxVersion));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.KernelCommandLine));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted));
    }

    [Fact]
    public void Guest_module_loads_and_the_guest_powers_off()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.HelloModuleLoaded));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PoweringOff));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown));
    }

    [Fact]
    public void Vigild_reports_what_runs_below_the_guest()
    {
        if (T.Contains(EmulatorSetup.Com2, "vigil: all ") && T.Contains(EmulatorSetup.Com2, GuestMarkers.AllCpusProtected))
        {
            Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildCpuidOk), "a CPU does not see Vigil's CPUID leaf");
            Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusOk), "vigild status failed under Vigil");
            Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.HvpeekNothingReadable), "the guest read the hypervisor's memory");
        }
        else
        {
            // Unprotected boot: vigild must say there is no Vigil and exit non-zero.
            Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildNoVigil));
            Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusFailed));
        }
    }
}
