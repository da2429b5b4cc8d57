using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace Vigil.Tool.Guest;

/// <summary>What each Debian package is used for in the guest build (a column of resolved.txt).</summary>
internal static class GuestPackageRole
{
    public const string KernelImage = "kernel-image";
    public const string KernelHeaders = "kernel-headers";
    public const string KernelHeadersCommon = "kernel-headers-common";
    public const string KernelBuild = "kernel-kbuild";
    public const string Busybox = "busybox";

    public static readonly IReadOnlyList<string> All = [KernelImage, KernelHeaders, KernelHeadersCommon, KernelBuild, Busybox];
}

/// <summary>One resolved package and the .deb file it was downloaded to.</summary>
internal sealed record ResolvedPackage(string Role, DebianPackage Package, string FileName);

/// <summary>
/// The packages the guest is built from, as recorded in out/cache/debs/resolved.txt. The record is
/// what lets a second build run without apt: when it parses and every file it names is present,
/// nothing is resolved or downloaded again.
/// </summary>
internal sealed class ResolvedPackages
{
    public const string FileName = "resolved.txt";

    private const string KernelReleaseKey = "kernel-release";

    public ResolvedPackages(string kernelRelease, IEnumerable<ResolvedPackage> packages)
    {
        if (!IsWord(kernelRelease)) throw new ArgumentException($"bad kernel release '{kernelRelease}'", nameof(kernelRelease));
        var byRole = new Dictionary<string, ResolvedPackage>(StringComparer.Ordinal);
        foreach (ResolvedPackage package in packages)
        {
            if (!GuestPackageRole.All.Contains(package.Role)) throw new ArgumentException($"unknown package role '{package.Role}'", nameof(packages));
            if (!byRole.TryAdd(package.Role, package)) throw new ArgumentException($"package role '{package.Role}' given twice", nameof(packages));
            DebianPackage p = package.Package;
            if (!IsWord(p.Name) || !IsWord(p.Version) || !IsWord(p.Architecture) || !IsWord(package.FileName)
                || package.FileName.Contains('/', StringComparison.Ordinal) || !package.FileName.EndsWith(".deb", StringComparison.Ordinal))
            {
                throw new ArgumentException($"bad package record '{package}'", nameof(packages));
            }
        }
        string[] missing = GuestPackageRole.All.Where(role => !byRole.ContainsKey(role)).ToArray();
        if (missing.Length > 0) throw new ArgumentException("no package for " + string.Join(", ", missing), nameof(packages));
        KernelRelease = kernelRelease;
        Packages = GuestPackageRole.All.Select(role => byRole[role]).ToArray();
    }

    /// <summary>The kernel's release string (uname -r), e.g. 6.1.0-56-amd64.</summary>
    public string KernelRelease { get; }

    /// <summary>Every package, in the order of <see cref="GuestPackageRole.All"/>.</summary>
    public IReadOnlyList<ResolvedPackage> Packages { get; }

    public ResolvedPackage this[string role] => Packages.FirstOrDefault(p => p.Role == role) ?? throw new KeyNotFoundException(role);

    public string Format()
    {
        var sb = new StringBuilder();
        sb.Append("# The Debian packages of the Vigil test guest, resolved with apt-cache by `vigil guest`.\n");
        sb.Append("# While this file and every .deb it names are here, builds use them without apt;\n");
        sb.Append("# `vigil guest --refresh` resolves and downloads again.\n");
        sb.Append("# role package version architecture file\n");
        sb.Append($"{KernelReleaseKey} {KernelRelease}\n");
        foreach (ResolvedPackage p in Packages)
        {
            sb.Append($"{p.Role} {p.Package.Name} {p.Package.Version} {p.Package.Architecture} {p.FileName}\n");
        }
        return sb.ToString();
    }

    /// <summary>Parses <see cref="Format"/>'s output; a <see cref="FormatException"/> names the line at fault.</summary>
    public static ResolvedPackages Parse(string text)
    {
        string? release = null;
        var packages = new List<ResolvedPackage>();
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields[0] == KernelReleaseKey && fields.Length == 2)
            {
                if (release != null) throw new FormatException($"line {i + 1}: {KernelReleaseKey} given twice");
                release = fields[1];
            }
            else if (fields.Length == 5 && GuestPackageRole.All.Contains(fields[0]))
            {
                packages.Add(new ResolvedPackage(fields[0], new DebianPackage(fields[1], fields[2], fields[3]), fields[4]));
            }
            else
            {
                throw new FormatException($"line {i + 1}: expected '{KernelReleaseKey} RELEASE' or 'ROLE PACKAGE VERSION ARCH FILE', got '{line}'");
            }
        }
        if (release == null) throw new FormatException($"no {KernelReleaseKey} line");
        try
        {
            return new ResolvedPackages(release, packages);
        }
        catch (ArgumentException e)
        {
            throw new FormatException(e.Message, e);
        }
    }

    private static bool IsWord(string text) => text.Length > 0 && text.All(c => c > ' ' && c < 0x7F);
}
