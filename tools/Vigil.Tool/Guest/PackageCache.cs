using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Vigil.Tool.Guest;

/// <summary>
/// out/cache/debs: the guest's .deb files and resolved.txt. apt is asked only when the record is
/// missing, incomplete or <c>--refresh</c> is given, so rebuilding the guest needs no network and
/// keeps the same kernel until the user asks for a newer one.
/// </summary>
internal static class PackageCache
{
    private const string AptHint = "check the network and the package lists (run `apt-get update` as root), then `vigil guest --refresh`";

    public static ResolvedPackages Ensure(string cacheDir, bool refresh, TextWriter log)
    {
        Directory.CreateDirectory(cacheDir);
        string recordPath = Path.Combine(cacheDir, ResolvedPackages.FileName);
        if (!refresh)
        {
            ResolvedPackages? cached = LoadComplete(cacheDir, recordPath, log);
            if (cached != null)
            {
                log.WriteLine($"guest: using cached packages ({Relative(recordPath)}, kernel {cached.KernelRelease}; --refresh resolves again)");
                return cached;
            }
        }

        ResolvedPackages resolved = Resolve();
        log.WriteLine($"guest: resolved kernel {resolved.KernelRelease}:");
        foreach (ResolvedPackage p in resolved.Packages) log.WriteLine($"         {p.Role,-22} {p.Package.Name} {p.Package.Version}");
        Download(cacheDir, resolved, log);

        // The record is written last: it must only ever describe files that are all present.
        string temporary = recordPath + ".tmp";
        File.WriteAllText(temporary, resolved.Format());
        File.Move(temporary, recordPath, overwrite: true);
        RemoveStale(cacheDir, resolved, log);
        return resolved;
    }

    /// <summary>The recorded packages when resolved.txt parses and every .deb it names exists; otherwise null (and why).</summary>
    private static ResolvedPackages? LoadComplete(string cacheDir, string recordPath, TextWriter log)
    {
        if (!File.Exists(recordPath)) return null;
        ResolvedPackages record;
        try
        {
            record = ResolvedPackages.Parse(File.ReadAllText(recordPath));
        }
        catch (FormatException e)
        {
            log.WriteLine($"guest: ignoring {Relative(recordPath)} ({e.Message}); resolving again");
            return null;
        }
        string[] missing = record.Packages.Select(p => p.FileName).Where(f => !File.Exists(Path.Combine(cacheDir, f))).ToArray();
        if (missing.Length == 0) return record;
        log.WriteLine($"guest: {string.Join(", ", missing)} missing from {Relative(cacheDir)}; resolving again");
        return null;
    }

    private static ResolvedPackages Resolve()
    {
        string imagePackage = KernelPackages.ImageFromMetapackage(AptCache("depends", KernelPackages.Metapackage));
        string release = KernelPackages.Release(imagePackage);
        string headersPackage = KernelPackages.HeadersPackage(release);
        var (common, kbuild) = KernelPackages.HeaderDependencies(AptCache("depends", headersPackage), headersPackage);
        var names = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [GuestPackageRole.KernelImage] = imagePackage,
            [GuestPackageRole.KernelHeaders] = headersPackage,
            [GuestPackageRole.KernelHeadersCommon] = common,
            [GuestPackageRole.KernelBuild] = kbuild,
            [GuestPackageRole.Busybox] = KernelPackages.BusyboxPackage,
        };
        // The metapackage's record is included for its "(= version)" pin on the image.
        string show = AptCache(["show", "--no-all-versions", KernelPackages.Metapackage, .. names.Values]);
        return KernelPackages.Pin(release, names, show);
    }

    private static string AptCache(params string[] arguments)
    {
        ProcessResult result = HostProcess.Run("apt-cache", arguments);
        if (result.ExitCode != 0 || result.StandardOutput.Trim().Length == 0)
        {
            throw new ToolException($"`apt-cache {string.Join(" ", arguments)}` failed (exit {result.ExitCode}):\n{result.Tail()}\n{AptHint}");
        }
        return result.StandardOutput;
    }

    private static void Download(string cacheDir, ResolvedPackages resolved, TextWriter log)
    {
        var wanted = resolved.Packages.Where(p => !File.Exists(Path.Combine(cacheDir, p.FileName))).ToArray();
        if (wanted.Length == 0) return;
        log.WriteLine($"guest: apt-get download {string.Join(" ", wanted.Select(p => p.Package.AptSpec))}");
        // Run as root, apt downloads as the _apt user, which cannot write into a root-owned out/ folder:
        // it falls back to root with a warning per file. Ask for root directly (other users download as themselves).
        ProcessResult result = HostProcess.Run("apt-get",
            ["download", "-q", "-o", "APT::Sandbox::User=root", .. wanted.Select(p => p.Package.AptSpec)], cacheDir);
        if (result.ExitCode != 0)
        {
            throw new ToolException($"apt-get download failed (exit {result.ExitCode}):\n{result.Tail()}\n{AptHint}");
        }
        string[] absent = wanted.Select(p => p.FileName).Where(f => !File.Exists(Path.Combine(cacheDir, f))).ToArray();
        if (absent.Length > 0)
        {
            throw new ToolException($"apt-get download succeeded but did not produce {string.Join(", ", absent)} in {Relative(cacheDir)}");
        }
    }

    // A refresh that moved to a newer kernel leaves the old 70 MB image behind otherwise.
    private static void RemoveStale(string cacheDir, ResolvedPackages resolved, TextWriter log)
    {
        var keep = new HashSet<string>(resolved.Packages.Select(p => p.FileName), StringComparer.Ordinal);
        foreach (string file in Directory.GetFiles(cacheDir, "*.deb"))
        {
            if (keep.Contains(Path.GetFileName(file))) continue;
            File.Delete(file);
            log.WriteLine($"guest: removed stale {Path.GetFileName(file)}");
        }
    }

    private static string Relative(string path) => Path.GetRelativePath(Environment.CurrentDirectory, path);
}
