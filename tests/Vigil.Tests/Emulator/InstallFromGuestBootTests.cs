using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool;
using Vigil.Tool.Emulators;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// Issue 13, test 5(b): `vigild install` from inside the guest, through efivarfs, and the next boot goes through the
/// entry it made. Two QEMU boots (1 CPU, SVM) of `vigil image --scenario install` on a virtio drive, with one writable
/// copy of OVMF's variable store. Boot 1: OVMF starts \EFI\BOOT\BOOTX64.EFI (vigil.efi); the guest mounts the ESP
/// (virtio_blk, vfat), deletes that removable-media path and EFI/vigil's images, and `vigild install` copies them back
/// into EFI/vigil and writes Boot#### + BootOrder (the partition found without udev: sysfs and the GPT). Boot 2: with
/// no \EFI\BOOT\BOOTX64.EFI left, only the new entry can start Vigil; the guest sees BootCurrent = that entry, is
/// protected, and `vigild install` again has nothing to change (tests/guest/scenarios/install.sh).
/// </summary>
public sealed class InstallFromGuestBoots
{
    private readonly Lazy<IReadOnlyList<Transcript>> _transcripts;

    public InstallFromGuestBoots()
    {
        Root = Repository.Root();
        Work = Path.Combine(Root, "out", "tests", "qemu-install-from-guest");
        _transcripts = new Lazy<IReadOnlyList<Transcript>>(BootTwice, System.Threading.LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Root { get; }

    public string Work { get; }

    public IReadOnlyList<Transcript> Transcripts => _transcripts.Value;

    public string TranscriptPath(int boot) => Path.Combine(Work, $"boot{boot}", "transcript.txt");

    private IReadOnlyList<Transcript> BootTwice()
    {
        if (Directory.Exists(Work)) Directory.Delete(Work, recursive: true);
        Directory.CreateDirectory(Work);
        string vars = Path.Combine(Work, "OVMF_VARS.fd");
        File.Copy(EmulatorSetup.OvmfVarsTemplate, vars);
        string image = Path.Combine(Work, "vigil-usb.img");
        int rc = Tool.Commands.ImageCommand.Run(new Options(["--root", Root, "--out", image, "--scenario", "install", "--log-port", "com2", "--size", "64"]));
        Assert.Equal(0, rc);
        var transcripts = new List<Transcript>();
        for (int boot = 1; boot <= 2; boot++)
        {
            EmulatorCommand command = EmulatorSetup.Create(Root, new EmulatorOptions
            {
                Emulator = Tool.Emulators.Emulator.QemuTcg,
                Disk = image,
                DiskInterface = "virtio",
                WorkDirectory = Path.Combine(Work, $"boot{boot}"),
                VariableStore = vars,
            });
            transcripts.Add(EmulatorRun.RunToEnd(command, TimeSpan.FromSeconds(240),
                // OVMF's shell: nothing on the disk it could boot (boot 2 without the entry: no BOOTX64.EFI left).
                t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic") || t.Contains(EmulatorSetup.Com1, "Shell> ")));
        }
        return transcripts;
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed partial class InstallFromGuestBootTests(InstallFromGuestBoots boots, ITestOutputHelper output) : IClassFixture<InstallFromGuestBoots>
{
    private Transcript Boot(int n) => boots.Transcripts[n - 1];

    private string See(int n) => $"see {boots.TranscriptPath(n)}";

    [GeneratedRegex(@"^install: loader = .*; boot entry (Boot[0-9A-F]{4}) on HD\(1,GPT,")]
    private static partial Regex EntryLine();

    private string InstalledEntry()
    {
        string? line = Boot(1).On(EmulatorSetup.Com1).Select(l => l.Text).FirstOrDefault(l => EntryLine().IsMatch(l));
        Assert.True(line != null, $"boot 1: vigild install named no boot entry; {See(1)}");
        return EntryLine().Match(line).Groups[1].Value;
    }

    [Fact]
    public void The_first_boot_installs_from_the_guest_through_efivarfs()
    {
        Transcript t = Boot(1);
        output.WriteLine($"boot 1: {t.Seconds:F1} s, boot 2: {Boot(2).Seconds:F1} s");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(1)), $"boot 1 (through BOOTX64.EFI) not protected; {See(1)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: install: ESP /dev/vda1 mounted"), See(1));
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: install: removable-media path and EFI/vigil's images removed"), See(1));
        string entry = InstalledEntry();
        Assert.True(t.Contains(EmulatorSetup.Com1, "install: loader = \\EFI\\vigil\\linux.efi (--loader)"), See(1));
        Assert.True(t.Contains(EmulatorSetup.Com1, $"  write {entry}: "), $"no {entry} written; {See(1)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "  copy /usr/lib/vigil/efi/vigil.efi -> EFI/vigil/vigil.efi"), See(1));
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild install rc=0"), See(1));
        Assert.True(t.Contains(EmulatorSetup.Com1, $"VIGIL-GUEST: install: BootOrder={entry[4..]},"), $"{entry} is not first in BootOrder; {See(1)}");
        Assert.False(t.Contains(EmulatorSetup.Com1, $"VIGIL-GUEST: install: BootCurrent={entry}"), $"boot 1 already came through {entry}; {See(1)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "BdsDxe: starting Boot"), $"OVMF did not say which entry it started; {See(1)}");
        Assert.False(t.Contains(EmulatorSetup.Com1, "\"Vigil\" from HD("), $"boot 1 already had a Vigil entry; {See(1)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: install: ESP unmounted rc=0"), See(1));
    }

    [Fact]
    public void The_next_boot_comes_through_the_new_entry_protected_and_a_second_install_changes_nothing()
    {
        string entry = InstalledEntry();
        Transcript t = Boot(2);
        // OVMF says which entry it starts (BdsDxe), and the guest reads the same from BootCurrent.
        Assert.True(t.Contains(EmulatorSetup.Com1, $"BdsDxe: starting {entry} \"Vigil\" from HD(1,GPT,"), $"OVMF did not start {entry}; {See(2)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, $"VIGIL-GUEST: install: BootCurrent={entry}"), $"boot 2 did not come through {entry}; {See(2)}");
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.VigilBanner), See(2));
        Assert.True(t.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting), See(2));
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(1)), $"boot 2 not protected; {See(2)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "install: nothing to change"), $"install is not idempotent; {See(2)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild install rc=0"), See(2));
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown), See(2));
    }
}
