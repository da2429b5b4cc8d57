using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Vigil.Tool;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Vigil.Tool.Install;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>
/// Issue 13, 5(a): an ESP laid out like an installed Debian (Debian's signed shim and GRUB in EFI/debian, a grub.cfg
/// that boots the test guest, scenario smoke), `vigil install` run on the host into it (a fake /sys whose firmware
/// booted Boot0000 = shim on this ESP: the boot entry it writes stays in that fake store), then QEMU (1 CPU, SVM):
/// firmware → vigil.efi → shim → GRUB → Linux, protected. The firmware starts vigil.efi from \EFI\BOOT\BOOTX64.EFI
/// (a copy of EFI/vigil/vigil.efi), standing in for the boot entry.
/// </summary>
public sealed class ShimGrubInstallBoot
{
    private static readonly Guid PartitionGuid = Guid.Parse("56494749-4c00-4d00-8000-000000000002");   // GptDisk.WithEsp's
    private readonly Lazy<(Transcript? Transcript, string? Problem)> _boot;

    public ShimGrubInstallBoot()
    {
        Root = Repository.Root();
        Work = Path.Combine(Root, "out", "tests", "qemu-shim-grub");
        _boot = new Lazy<(Transcript?, string?)>(Boot, System.Threading.LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Root { get; }

    public string Work { get; }

    public string TranscriptPath => Path.Combine(Work, "transcript.txt");

    public string InstallOutput { get; private set; } = "";

    /// <summary>Null when the boot loaders could not be had (the reason in <see cref="Problem"/>).</summary>
    public Transcript? Transcript => _boot.Value.Transcript;

    public string? Problem => _boot.Value.Problem;

    private (Transcript?, string?) Boot()
    {
        (string Shim, string Grub) loaders;
        try
        {
            loaders = DebianBootLoaders.Ensure(Root);
        }
        catch (ToolException e)
        {
            return (null, e.Message);
        }
        if (Directory.Exists(Work)) Directory.Delete(Work, recursive: true);
        string esp = Path.Combine(Work, "esp");
        Directory.CreateDirectory(Path.Combine(esp, "EFI", "debian"));
        Directory.CreateDirectory(Path.Combine(esp, "EFI", "BOOT"));
        Directory.CreateDirectory(Path.Combine(esp, "guest"));
        File.Copy(loaders.Shim, Path.Combine(esp, "EFI", "debian", "shimx64.efi"));
        File.Copy(loaders.Grub, Path.Combine(esp, "EFI", "debian", "grubx64.efi"));
        File.Copy(loaders.Shim, Path.Combine(esp, "EFI", "BOOT", "BOOTX64.EFI"));   // Debian's removable-media copy
        File.Copy(Path.Combine(Root, "out", "guest", "linux.efi"), Path.Combine(esp, "guest", "vmlinuz"));
        File.Copy(Path.Combine(Root, "out", "guest", "smoke", "initrd.img"), Path.Combine(esp, "guest", "initrd.img"));
        File.WriteAllText(Path.Combine(esp, "EFI", "debian", "grub.cfg"), """
            set timeout=0
            set default=0
            echo 'grub: starting the test guest'
            menuentry 'Vigil test guest' {
                linux /guest/vmlinuz console=ttyS0 panic=-1
                initrd /guest/initrd.img
            }
            """ + "\n");

        // The machine as `vigil install` sees it: booted from Boot0000 (shim on this ESP), efivarfs writable.
        string fake = Path.Combine(Work, "machine");
        var firmware = new FirmwareEnvironment
        {
            FirmwareDirectory = Path.Combine(fake, "sys", "firmware", "efi"),
            EfivarsDirectory = Path.Combine(fake, "sys", "firmware", "efi", "efivars"),
            MountInfo = Path.Combine(fake, "mountinfo"),
            UdevData = Path.Combine(fake, "udev"),
        };
        Directory.CreateDirectory(firmware.EfivarsDirectory);
        Directory.CreateDirectory(firmware.UdevData);
        File.WriteAllText(firmware.MountInfo, $"30 22 0:26 / {firmware.EfivarsDirectory} rw,relatime - efivarfs efivarfs rw\n40 28 8:1 / {esp} rw - vfat /dev/sda1 rw\n");
        File.WriteAllText(Path.Combine(firmware.UdevData, "b8:1"),
            $"E:ID_PART_ENTRY_SCHEME=gpt\nE:ID_PART_ENTRY_UUID={PartitionGuid}\nE:ID_PART_ENTRY_NUMBER=1\nE:ID_PART_ENTRY_OFFSET=2048\nE:ID_PART_ENTRY_SIZE=100000\n");
        var hd = new HardDrive(1, 2048, 100000, PartitionGuid, Gpt: true);
        firmware.Write("Boot0000", LoadOption.ForFile("debian", hd, "\\EFI\\debian\\shimx64.efi").Encode());
        firmware.Write("BootOrder", FirmwareEnvironment.EncodeBootOrder([0]));
        firmware.Write("BootCurrent", BitConverter.GetBytes((ushort)0));
        var output = new StringWriter();
        int rc = Tool.Commands.InstallCommand.Install(new Options(["--esp", esp, "--efi", Path.Combine(Root, "out", "efi")]), firmware, output);
        InstallOutput = output.ToString();
        Assert.True(rc == 0, InstallOutput);
        Assert.Equal([1, 0], firmware.BootOrder);
        // log_port = none as installed; for the test the log goes to COM2 like every other boot's.
        string conf = Path.Combine(esp, "EFI", "vigil", "vigil.conf");
        File.WriteAllText(conf, File.ReadAllText(conf).Replace("log_port = none", "log_port = com2", StringComparison.Ordinal));
        File.Copy(Path.Combine(esp, "EFI", "vigil", "vigil.efi"), Path.Combine(esp, "EFI", "BOOT", "BOOTX64.EFI"), overwrite: true);

        var files = Directory.EnumerateFiles(esp, "*", SearchOption.AllDirectories)
            .Select(f => (f, Path.GetRelativePath(esp, f).Replace('\\', '/'))).ToList();
        string disk = Path.Combine(Work, "disk.img");
        DiskImage.Build(disk, files, DiskPartitioning.Gpt);
        EmulatorCommand command = EmulatorSetup.Create(Root, new EmulatorOptions { Emulator = Tool.Emulators.Emulator.QemuTcg, Disk = disk, WorkDirectory = Work });
        return (EmulatorRun.RunToEnd(command, TimeSpan.FromSeconds(300),
            t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic")), null);
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class ShimGrubInstallBootTests(ShimGrubInstallBoot boot) : IClassFixture<ShimGrubInstallBoot>
{
    [SkippableFact]
    public void Firmware_starts_vigil_which_chains_debian_shim_then_grub_then_a_protected_linux()
    {
        Skip.If(boot.Problem != null, "Debian's signed shim and GRUB are not available here: " + boot.Problem);
        Transcript t = boot.Transcript!;
        Assert.Contains("loader = \\EFI\\debian\\shimx64.efi (BootCurrent Boot0000 'debian')", boot.InstallOutput, StringComparison.Ordinal);
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting), $"no hypervisor; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com2, "vigil: starting \\EFI\\debian\\shimx64.efi"), $"vigil.efi did not chain shim; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "grub: starting the test guest"), $"GRUB did not read its grub.cfg; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted), $"Linux did not start; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(1)), $"not protected; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusOk), $"see {boot.TranscriptPath}");
    }
}
