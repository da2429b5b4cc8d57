using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Vigil.Tool;
using Vigil.Tool.Install;
using Xunit;

namespace Vigil.Tests.Tools;

/// <summary>
/// `vigil install`/`uninstall` against a fake machine: /sys/firmware/efi, efivarfs, mountinfo and udev's database
/// in a temporary directory, a Debian-like ESP (shim and GRUB) booted from Boot0000.
/// </summary>
public sealed class InstallTests : IDisposable
{
    private static readonly Guid PartitionGuid = Guid.Parse("0fc63daf-8483-4772-8e79-3d69d8477de4");
    private static readonly HardDrive Esp = new(1, 2048, 1048576, PartitionGuid, Gpt: true);
    private readonly string _root = Directory.CreateTempSubdirectory("vigil-install-").FullName;

    public InstallTests()
    {
        Directory.CreateDirectory(Efivars);
        Directory.CreateDirectory(Path.Combine(EspDir, "EFI", "debian"));
        File.WriteAllText(Path.Combine(EspDir, "EFI", "debian", "shimx64.efi"), "shim");
        File.WriteAllText(Path.Combine(EspDir, "EFI", "debian", "grubx64.efi"), "grub");
        Directory.CreateDirectory(EfiDir);
        File.WriteAllBytes(Path.Combine(EfiDir, "vigil.efi"), Pe(signed: false));
        File.WriteAllBytes(Path.Combine(EfiDir, "vigil-hv.efi"), Pe(signed: false));
        Directory.CreateDirectory(Path.Combine(_root, "proc"));
        WriteMountInfo(efivarsOptions: "rw,nosuid,nodev,noexec,relatime");
        Directory.CreateDirectory(Path.Combine(_root, "run", "udev", "data"));
        File.WriteAllText(Path.Combine(_root, "run", "udev", "data", "b8:1"),
            $"S:disk/by-partuuid/{PartitionGuid}\nE:ID_PART_ENTRY_SCHEME=gpt\nE:ID_PART_ENTRY_UUID={PartitionGuid}\nE:ID_PART_ENTRY_NUMBER=1\nE:ID_PART_ENTRY_OFFSET=2048\nE:ID_PART_ENTRY_SIZE=1048576\n");
        Firmware.Write("Boot0000", LoadOption.ForFile("debian", Esp, "\\EFI\\debian\\shimx64.efi").Encode());
        // A network entry: no file path (a MAC node, type 3 subtype 11), only to be kept.
        Firmware.Write("Boot0001", new LoadOption(1, "UEFI PXEv4", [3, 11, 37, 0, .. new byte[33], 0x7F, 0xFF, 4, 0], []).Encode());
        Firmware.Write("BootOrder", FirmwareEnvironment.EncodeBootOrder([0, 1]));
        Firmware.Write("BootCurrent", BitConverter.GetBytes((ushort)0));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Efivars => Path.Combine(_root, "sys", "firmware", "efi", "efivars");

    private string EspDir => Path.Combine(_root, "boot", "efi");

    private string EfiDir => Path.Combine(_root, "efi");

    private FirmwareEnvironment Firmware => new()
    {
        FirmwareDirectory = Path.Combine(_root, "sys", "firmware", "efi"),
        EfivarsDirectory = Efivars,
        MountInfo = Path.Combine(_root, "proc", "mountinfo"),
        UdevData = Path.Combine(_root, "run", "udev", "data"),
    };

    private void WriteMountInfo(string efivarsOptions) => File.WriteAllText(Path.Combine(_root, "proc", "mountinfo"),
        $"22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
        + $"30 22 0:26 / {Efivars} {efivarsOptions} shared:9 - efivarfs efivarfs rw\n"
        + $"40 28 8:1 / {EspDir} rw,relatime shared:30 - vfat /dev/sda1 rw,fmask=0077\n");

    /// <summary>A PE32+ header: MZ, e_lfanew, "PE\0\0", COFF header, optional header with its data directories.</summary>
    private static byte[] Pe(bool signed)
    {
        var pe = new byte[0x200];
        pe[0] = (byte)'M';
        pe[1] = (byte)'Z';
        BitConverter.TryWriteBytes(pe.AsSpan(0x3C), 0x80);
        "PE\0\0"u8.CopyTo(pe.AsSpan(0x80));
        BitConverter.TryWriteBytes(pe.AsSpan(0x80 + 24), (ushort)0x20B);
        if (signed)
        {
            int security = 0x80 + 24 + 112 + 32;
            BitConverter.TryWriteBytes(pe.AsSpan(security), 0x180u);
            BitConverter.TryWriteBytes(pe.AsSpan(security + 4), 0x80u);
        }
        return pe;
    }

    private Dictionary<string, string> Snapshot() => Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories)
        .ToDictionary(f => Path.GetRelativePath(_root, f), f => Convert.ToHexString(File.ReadAllBytes(f)));

    private (int Rc, string Output) Run(string verb, params string[] args)
    {
        var output = new StringWriter();
        var options = new Options(["--esp", EspDir, .. args, .. (verb == "install" ? new[] { "--efi", EfiDir } : [])]);
        int rc = verb == "install"
            ? Vigil.Tool.Commands.InstallCommand.Install(options, Firmware, output)
            : Vigil.Tool.Commands.InstallCommand.Uninstall(options, Firmware, output);
        return (rc, output.ToString());
    }

    [Fact]
    public void Install_copies_the_images_chains_the_loader_booted_before_and_puts_a_new_entry_first()
    {
        var (rc, output) = Run("install");
        Assert.Equal(0, rc);
        Assert.Contains("loader = \\EFI\\debian\\shimx64.efi (BootCurrent Boot0000 'debian')", output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(EspDir, "EFI", "vigil", "vigil.efi")));
        Assert.True(File.Exists(Path.Combine(EspDir, "EFI", "vigil", "vigil-hv.efi")));
        string conf = File.ReadAllText(Path.Combine(EspDir, "EFI", "vigil", "vigil.conf"));
        Assert.Contains("loader = \\EFI\\debian\\shimx64.efi\n", conf, StringComparison.Ordinal);
        var r = Vigil.Boot.Config.ConfigParser.Parse(Encoding.ASCII.GetBytes(conf));
        Assert.Equal(0, r.DiagnosticCount);
        Assert.Equal("\\EFI\\debian\\shimx64.efi", r.Config.Loader);
        Assert.Equal([2, 0, 1], Firmware.BootOrder);
        LoadOption entry = Firmware.BootEntries()[2];
        Assert.Equal("Vigil", entry.Description);
        Assert.Equal(LoadOption.Active, entry.Attributes);
        Assert.Equal("\\EFI\\vigil\\vigil.efi", entry.FilePath);
        Assert.Equal(Esp, entry.Partition);
    }

    [Fact]
    public void Install_twice_changes_nothing_the_second_time_even_when_booted_through_vigil()
    {
        Assert.Equal(0, Run("install").Rc);
        var before = Snapshot();
        Firmware.Write("BootCurrent", BitConverter.GetBytes((ushort)2));   // the next boot went through Vigil
        before = Snapshot();
        var (rc, output) = Run("install");
        Assert.Equal(0, rc);
        Assert.Contains("install: nothing to change", output, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public void Dry_run_prints_every_change_and_makes_none()
    {
        var before = Snapshot();
        var (rc, output) = Run("install", "--dry-run");
        Assert.Equal(0, rc);
        Assert.Equal(before, Snapshot());
        Assert.Contains("would make 5 changes", output, StringComparison.Ordinal);
        Assert.Contains("copy " + Path.Combine(EfiDir, "vigil.efi") + " -> EFI/vigil/vigil.efi", output, StringComparison.Ordinal);
        Assert.Contains("write EFI/vigil/vigil.conf", output, StringComparison.Ordinal);
        Assert.Contains($"write Boot0002: 'Vigil' HD(1,GPT,{PartitionGuid},0x800,0x100000)/File(\\EFI\\vigil\\vigil.efi)", output, StringComparison.Ordinal);
        Assert.Contains("set BootOrder 0002,0000,0001 (was 0000,0001)", output, StringComparison.Ordinal);

        Assert.Equal(0, Run("install").Rc);
        before = Snapshot();
        (rc, output) = Run("uninstall", "--dry-run");
        Assert.Equal(0, rc);
        Assert.Equal(before, Snapshot());
        Assert.Contains("set BootOrder 0000,0001 (was 0002,0000,0001)", output, StringComparison.Ordinal);
        Assert.Contains("delete Boot0002", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Uninstall_undoes_exactly_what_install_did_and_twice_is_harmless()
    {
        var before = Snapshot();
        Assert.Equal(0, Run("install").Rc);
        Assert.Equal(0, Run("uninstall").Rc);
        Assert.Equal(before, Snapshot());
        Assert.False(Directory.Exists(Path.Combine(EspDir, "EFI", "vigil")));
        var (rc, output) = Run("uninstall");
        Assert.Equal(0, rc);
        Assert.Contains("uninstall: nothing to change", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Uninstall_keeps_what_the_user_changed_in_boot_order_meanwhile()
    {
        Assert.Equal(0, Run("install").Rc);
        Firmware.Write("BootOrder", FirmwareEnvironment.EncodeBootOrder([1, 2, 0]));
        Assert.Equal(0, Run("uninstall").Rc);
        Assert.Equal([1, 0], Firmware.BootOrder);
    }

    private void AssertRefused(string verb, string why, params string[] args)
    {
        var before = Snapshot();
        var e = Assert.Throws<ToolException>(() => Run(verb, args));
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.Contains("nothing changed", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public void Refuses_a_non_uefi_boot()
    {
        Directory.Delete(Path.Combine(_root, "sys"), recursive: true);
        AssertRefused("install", "was not booted through UEFI");
        AssertRefused("uninstall", "was not booted through UEFI");
    }

    [Fact]
    public void Refuses_a_missing_esp_or_a_directory_that_is_none()
    {
        Directory.Delete(EspDir, recursive: true);
        AssertRefused("install", "no ESP at");
        Directory.CreateDirectory(EspDir);
        AssertRefused("install", "has no EFI directory");
    }

    [Fact]
    public void Refuses_a_read_only_or_missing_efivarfs()
    {
        WriteMountInfo(efivarsOptions: "ro,nosuid,nodev,noexec,relatime");
        AssertRefused("install", "is mounted read-only");
        AssertRefused("uninstall", "is mounted read-only");
        File.WriteAllText(Path.Combine(_root, "proc", "mountinfo"), "");
        AssertRefused("install", "efivarfs is not mounted");
    }

    [Fact]
    public void Refuses_secure_boot_with_an_unsigned_vigil_efi_and_accepts_a_signed_one()
    {
        Firmware.Write("SecureBoot", [1]);
        AssertRefused("install", "Secure Boot is enabled and vigil.efi is not signed");
        File.WriteAllBytes(Path.Combine(EfiDir, "vigil.efi"), Pe(signed: true));
        Assert.Equal(0, Run("install").Rc);
    }

    [Fact]
    public void Refuses_a_loader_that_is_not_on_the_esp_and_takes_one_that_is()
    {
        AssertRefused("install", "no such file on the ESP", "--loader", "\\EFI\\nothing\\here.efi");
        var (rc, output) = Run("install", "--loader", "/EFI/debian/grubx64.efi", "--dry-run");
        Assert.Equal(0, rc);
        Assert.Contains("loader = \\EFI\\debian\\grubx64.efi (--loader)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_firmware_hints_the_first_known_loader_on_the_esp_is_chained()
    {
        Firmware.Delete("BootCurrent");
        Firmware.Delete("Boot0000");
        var (rc, output) = Run("install", "--dry-run");
        Assert.Equal(0, rc);
        Assert.Contains("loader = \\EFI\\debian\\shimx64.efi (found on the ESP)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_options_round_trip_through_the_encoding()
    {
        var option = new LoadOption(LoadOption.Active, "Vigil ü", DevicePaths.HardDriveFile(Esp, "\\EFI\\vigil\\vigil.efi"), [1, 2, 3]);
        byte[] bytes = option.Encode();
        // UEFI 2.10 §3.1.3: attributes, FilePathListLength, NUL-terminated UCS-2 description, device path, optional data.
        Assert.Equal(1u, BitConverter.ToUInt32(bytes));
        Assert.Equal(option.DevicePath.Length, BitConverter.ToUInt16(bytes, 4));
        Assert.Equal(42 + 4 + (2 * 21) + 4, option.DevicePath.Length);   // HD, File(20 characters and a NUL), End
        LoadOption back = LoadOption.Decode(bytes);
        Assert.Equal(option.Description, back.Description);
        Assert.Equal(option.DevicePath, back.DevicePath);
        Assert.Equal(option.OptionalData, back.OptionalData);
        Assert.Equal(Esp, back.Partition);
        Assert.Equal("\\EFI\\vigil\\vigil.efi", back.FilePath);
        // The HD node's GUID is stored in EFI_GUID order (Data1-3 little-endian), as efibootmgr writes it.
        Assert.Equal(PartitionGuid.ToByteArray(), option.DevicePath[24..40]);
        Assert.Throws<ToolException>(() => LoadOption.Decode(bytes.AsSpan(0, 20)));
    }

    [Fact]
    public void Mbr_partitions_are_described_by_their_disk_signature()
    {
        File.WriteAllText(Path.Combine(_root, "run", "udev", "data", "b8:1"),
            "E:ID_PART_ENTRY_SCHEME=dos\nE:ID_PART_ENTRY_UUID=4c474956-01\nE:ID_PART_ENTRY_NUMBER=1\nE:ID_PART_ENTRY_OFFSET=2048\nE:ID_PART_ENTRY_SIZE=4096\n");
        HardDrive? hd = Firmware.Partition("8:1", out _);
        Assert.NotNull(hd);
        Assert.False(hd.Gpt);
        Assert.Equal("HD(1,MBR,0x4c474956,0x800,0x1000)", hd.ToString());
        byte[] path = DevicePaths.HardDriveFile(hd, "\\x.efi");
        Assert.Equal(hd, DevicePaths.HardDrive(path));
    }
}
