using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Vigil.Tool.Guest;

/// <summary>
/// out/guest/pkgroot: every guest package extracted with <c>dpkg-deb -x</c> on top of each other, as
/// if installed into an empty system — except the kernel image package, of which only the kernel is taken. One shared root rather than a folder per package because the
/// kernel headers are spread over three packages joined by relative symlinks
/// (usr/src/linux-headers-R/scripts → ../../lib/linux-kbuild-6.1/scripts).
/// Each package version is extracted once; a stamp file per package records which version is there.
/// </summary>
internal static class PackageRoot
{
    private const string StampFolder = ".vigil-extracted";

    /// <summary>Extracts what is not extracted yet; returns the packages extracted now.</summary>
    public static IReadOnlyList<DebianPackage> Populate(string root, string cacheDir, ResolvedPackages packages, TextWriter log)
    {
        string stamps = Path.Combine(root, StampFolder);
        if (Directory.Exists(root) && !MatchesStamps(stamps, packages))
        {
            // Another version is extracted (after --refresh): files of the old one would linger in
            // the shared tree, and an old kernel's tree is 500 MB; start from an empty root.
            log.WriteLine($"guest: package versions changed; removing {Path.GetRelativePath(Environment.CurrentDirectory, root)}");
            Directory.Delete(root, recursive: true);
        }
        Directory.CreateDirectory(stamps);

        var extracted = new List<DebianPackage>();
        foreach (ResolvedPackage resolved in packages.Packages)
        {
            string stamp = Path.Combine(stamps, resolved.Package.Name);
            if (File.Exists(stamp)) continue;
            string deb = Path.Combine(cacheDir, resolved.FileName);
            // Of the kernel image package (≈485 MB unpacked, nearly all of it modules) only what the guest uses.
            ProcessResult result = resolved.Role == GuestPackageRole.KernelImage
                ? HostProcess.Run("bash", ["-c", "set -o pipefail; deb=$1 root=$2; shift 2; dpkg-deb --fsys-tarfile \"$deb\" | tar -x -C \"$root\" \"${@/#/./}\"",
                    "extract", deb, root, .. KernelImageMembers(packages.KernelRelease)])
                : HostProcess.Run("dpkg-deb", ["-x", deb, root]);
            if (result.ExitCode != 0)
            {
                throw new ToolException($"extracting {resolved.FileName} failed (exit {result.ExitCode}):\n{result.Tail()}\n"
                    + "the file may be damaged: `vigil guest --refresh` downloads it again");
            }
            // Written after a complete extraction only: an interrupted one is redone.
            File.WriteAllText(stamp, StampText(resolved, packages.KernelRelease) + "\n");
            extracted.Add(resolved.Package);
        }
        return extracted;
    }

    /// <summary>The kernel in the image package, relative to the root: boot/vmlinuz-RELEASE.</summary>
    public static string KernelImageMember(string release) => "boot/vmlinuz-" + release;

    /// <summary>efivarfs (a module in Debian's kernel): the guest reads vigil.efi's boot state through it.</summary>
    public static string FirmwareVariablesModule(string release) => $"lib/modules/{release}/kernel/fs/efivarfs/efivarfs.ko";

    /// <summary>
    /// The modules a guest needs to mount the ESP (scenario install): the virtio disk (QEMU -drive if=virtio) and FAT
    /// with the code page and character set of Debian's defaults (FAT_DEFAULT_CODEPAGE 437, IOCHARSET ascii), in the
    /// order insmod must load them (each after what it uses; there is no modprobe or modules.dep in the guest).
    /// </summary>
    public static readonly string[] EspModules =
    [
        "drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko", "drivers/virtio/virtio_pci_legacy_dev.ko",
        "drivers/virtio/virtio_pci_modern_dev.ko", "drivers/virtio/virtio_pci.ko", "drivers/block/virtio_blk.ko",
        "fs/fat/fat.ko", "fs/fat/vfat.ko", "fs/nls/nls_cp437.ko", "fs/nls/nls_ascii.ko",
    ];

    public static string EspModule(string release, string module) => $"lib/modules/{release}/kernel/{module}";

    /// <summary>What is taken from the kernel image package.</summary>
    public static string[] KernelImageMembers(string release) =>
        [KernelImageMember(release), FirmwareVariablesModule(release), .. EspModules.Select(m => EspModule(release, m))];

    /// <summary>A stamp names the version and, for the partly extracted kernel image, the members taken.</summary>
    private static string StampText(ResolvedPackage resolved, string release) => resolved.Role == GuestPackageRole.KernelImage
        ? resolved.Package.Version + " " + string.Join(",", KernelImageMembers(release))
        : resolved.Package.Version;

    /// <summary>True when every stamp present belongs to a wanted package at the wanted version.</summary>
    private static bool MatchesStamps(string stamps, ResolvedPackages packages)
    {
        if (!Directory.Exists(stamps)) return Directory.GetFileSystemEntries(Path.GetDirectoryName(stamps)!).Length == 0;
        var wanted = packages.Packages.ToDictionary(p => p.Package.Name, p => StampText(p, packages.KernelRelease), StringComparer.Ordinal);
        foreach (string stamp in Directory.GetFiles(stamps))
        {
            if (!wanted.TryGetValue(Path.GetFileName(stamp), out string? version)) return false;
            if (File.ReadAllText(stamp).Trim() != version) return false;
        }
        return true;
    }
}
