using System;
using System.IO;
using Vigil.Tool;
using Vigil.Tool.Emulators;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>
/// The USB image `vigil image` writes (GPT, vigil.efi as \EFI\BOOT\BOOTX64.EFI) boots in QEMU (1 CPU, SVM): OVMF finds the
/// ESP through the GPT, vigil.efi launches the hypervisor and chains the test guest (scenario smoke here, so it
/// powers off), which sees itself protected. For Bochs see <see cref="UsbImageBochsBoot"/>.
/// </summary>
public sealed class UsbImageBoot() : UsbImageBootBase("qemu-usb-image", forBochs: false);

/// <summary>One `vigil image` (scenario smoke, 96 MiB) booted once in one emulator; the test classes read its transcript.</summary>
public abstract class UsbImageBootBase
{
    private readonly Lazy<Transcript> _transcript;
    private readonly bool _forBochs;

    protected UsbImageBootBase(string name, bool forBochs)
    {
        _forBochs = forBochs;
        Root = Repository.Root();
        Work = Path.Combine(Root, "out", "tests", name);
        _transcript = new Lazy<Transcript>(Boot, System.Threading.LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Root { get; }

    public string Work { get; }

    public string Image => Path.Combine(Work, "vigil-usb.img");

    public string TranscriptPath => Path.Combine(Work, "transcript.txt");

    public Transcript Transcript => _transcript.Value;

    private Transcript Boot()
    {
        if (Directory.Exists(Work)) Directory.Delete(Work, recursive: true);
        Directory.CreateDirectory(Work);
        string[] args = ["--root", Root, "--out", Image, "--scenario", "smoke", "--log-port", "com2", "--size", "96"];
        int rc = Tool.Commands.ImageCommand.Run(new Options(_forBochs ? [.. args, "--for-bochs"] : args));
        Assert.Equal(0, rc);
        var options = _forBochs
            ? new EmulatorOptions { Emulator = Tool.Emulators.Emulator.Bochs, Disk = Image, WorkDirectory = Work, BochsIps = 20_000_000 }
            : new EmulatorOptions { Emulator = Tool.Emulators.Emulator.QemuTcg, Disk = Image, WorkDirectory = Work };
        EmulatorCommand command = EmulatorSetup.Create(Root, options);
        return EmulatorRun.RunToEnd(command, TimeSpan.FromSeconds(_forBochs ? 900 : 240),
            t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class UsbImageBootTests(UsbImageBoot boot) : IClassFixture<UsbImageBoot>
{
    [Fact]
    public void The_gpt_image_is_the_size_asked_for_and_boots_through_vigil_into_a_protected_guest()
    {
        Transcript t = boot.Transcript;
        Assert.True(new FileInfo(boot.Image).Length >= 96L << 20);
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.VigilBanner), $"vigil.efi did not start; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting), $"see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(1)), $"see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusOk), $"see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown), $"see {boot.TranscriptPath}");
    }
}

/// <summary>
/// The same `vigil image` in Bochs (Intel VMX, 1 CPU). OVMF under Bochs has no ACPI tables, which every Bochs boot of
/// the tests gets from the harness acpitables.efi started first; `vigil image --for-bochs` (emulators only) makes it
/// \EFI\BOOT\BOOTX64.EFI and it starts \EFI\vigil\vigil.efi. The rest of the image (GPT, vigil.efi, vigil-hv.efi,
/// vigil.conf, the guest) is what a USB stick gets.
/// </summary>
public sealed class UsbImageBochsBoot() : UsbImageBootBase("bochs-usb-image", forBochs: true);

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class UsbImageBochsBootTests(UsbImageBochsBoot boot, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<UsbImageBochsBoot>
{
    [Fact]
    public void The_gpt_image_boots_in_bochs_through_acpitables_and_vigil_into_a_protected_guest()
    {
        Transcript t = boot.Transcript;
        output.WriteLine($"bochs-usb-image: total {t.Seconds:F1} s, power-off at {t.FirstSeen(EmulatorSetup.Com1, GuestMarkers.PowerDown)?.ToString("F1") ?? "never"} s");
        Assert.False(t.TimedOut, $"Bochs did not finish in time; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "acpitables: installed"), $"acpitables.efi did not run; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.VigilBanner), $"vigil.efi did not start; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting), $"see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(1)), $"see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusOk), $"see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown), $"see {boot.TranscriptPath}");
    }
}
