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
            // Of the kernel image package (≈485 MB unpacked, nearly all of it modules) only the kernel is used.
            ProcessResult result = resolved.Role == GuestPackageRole.KernelImage
                ? HostProcess.Run("bash", ["-c", "set -o pipefail; dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\" \"./$3\"", "extract", deb, root, KernelImageMember(packages.KernelRelease)])
                : HostProcess.Run("dpkg-deb", ["-x", deb, root]);
            if (result.ExitCode != 0)
            {
                throw new ToolException($"extracting {resolved.FileName} failed (exit {result.ExitCode}):\n{result.Tail()}\n"
                    + "the file may be damaged: `vigil guest --refresh` downloads it again");
            }
            // Written after a complete extraction only: an interrupted one is redone.
            File.WriteAllText(stamp, resolved.Package.Version + "\n");
            extracted.Add(resolved.Package);
        }
        return extracted;
    }

    /// <summary>The kernel in the image package, relative to the root: boot/vmlinuz-RELEASE.</summary>
    public static string KernelImageMember(string release) => "boot/vmlinuz-" + release;

    /// <summary>True when every stamp present belongs to a wanted package at the wanted version.</summary>
    private static bool MatchesStamps(string stamps, ResolvedPackages packages)
    {
        if (!Directory.Exists(stamps)) return Directory.GetFileSystemEntries(Path.GetDirectoryName(stamps)!).Length == 0;
        var wanted = packages.Packages.ToDictionary(p => p.Package.Name, p => p.Package.Version, StringComparer.Ordinal);
        foreach (string stamp in Directory.GetFiles(stamps))
        {
            if (!wanted.TryGetValue(Path.GetFileName(stamp), out string? version)) return false;
            if (File.ReadAllText(stamp).Trim() != version) return false;
        }
        return true;
    }
}
