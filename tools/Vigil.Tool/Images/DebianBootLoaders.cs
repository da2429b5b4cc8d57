using System.IO;

namespace Vigil.Tool.Images;

/// <summary>
/// Debian's signed shim and GRUB (packages shim-signed and grub-efi-amd64-signed) for an ESP laid out like an installed
/// Debian: downloaded once with apt-get into out/cache/boot-debs, extracted there; later uses need no network.
/// </summary>
public static class DebianBootLoaders
{
    public const string ShimPackage = "shim-signed";
    public const string GrubPackage = "grub-efi-amd64-signed";

    /// <summary>(shimx64.efi, grubx64.efi) on the host; a ToolException with the reason when they cannot be had.</summary>
    public static (string Shim, string Grub) Ensure(string root)
    {
        string cache = Path.Combine(root, "out", "cache", "boot-debs");
        string tree = Path.Combine(cache, "root");
        string shim = Path.Combine(tree, "usr", "lib", "shim", "shimx64.efi.signed");
        string grub = Path.Combine(tree, "usr", "lib", "grub", "x86_64-efi-signed", "grubx64.efi.signed");
        if (File.Exists(shim) && File.Exists(grub)) return (shim, grub);
        Directory.CreateDirectory(cache);
        ProcessResult download = HostProcess.Run("apt-get", ["download", "-q", "-o", "APT::Sandbox::User=root", ShimPackage, GrubPackage], cache);
        if (download.ExitCode != 0)
            throw new ToolException($"apt-get download {ShimPackage} {GrubPackage} failed (exit {download.ExitCode}; network and `apt-get update`?):\n{download.Tail(5)}");
        foreach (string deb in Directory.GetFiles(cache, "*.deb")) HostProcess.RunChecked("dpkg-deb", "-x", deb, tree);
        if (!File.Exists(shim) || !File.Exists(grub)) throw new ToolException($"the packages {ShimPackage} and {GrubPackage} did not bring {shim} and {grub}");
        return (shim, grub);
    }
}
