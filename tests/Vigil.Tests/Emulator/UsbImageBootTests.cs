using System;
using System.IO;
using Vigil.Tool;
using Vigil.Tool.Emulators;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>
/// The USB image `vigil image` writes (GPT, vigil.efi as \EFI\BOOT\BOOTX64.EFI) boots in QEMU (1 CPU, SVM): OVMF finds the
/// ESP through the GPT, vigil.efi launches the hypervisor and chains the test guest (scenario smoke here, so it
/// powers off), which sees itself protected. Not in Bochs: OVMF there has no ACPI tables, and the emulator images
/// start the harness acpitables.efi first for that (EspTarget.Bochs); a USB image for a real PC must not.
/// </summary>
public sealed class UsbImageBoot
{
    private readonly Lazy<Transcript> _transcript;

    public UsbImageBoot()
    {
        Root = Repository.Root();
        Work = Path.Combine(Root, "out", "tests", "qemu-usb-image");
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
        int rc = Tool.Commands.ImageCommand.Run(new Options(["--root", Root, "--out", Image, "--scenario", "smoke", "--log-port", "com2", "--size", "96"]));
        Assert.Equal(0, rc);
        EmulatorCommand command = EmulatorSetup.Create(Root, new EmulatorOptions { Emulator = Tool.Emulators.Emulator.QemuTcg, Disk = Image, WorkDirectory = Work });
        return EmulatorRun.RunToEnd(command, TimeSpan.FromSeconds(240),
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
