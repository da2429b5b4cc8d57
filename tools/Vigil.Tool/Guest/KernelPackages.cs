using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;

namespace Vigil.Tool.Guest;

/// <summary>
/// Which Debian packages make up the guest, found from apt's metadata rather than written down: the
/// kernel ABI number N in linux-image-6.1.0-N-amd64 changes with every Debian point/security release,
/// and only the newest one stays downloadable.
/// </summary>
internal static partial class KernelPackages
{
    /// <summary>The metapackage that always depends on the current kernel image.</summary>
    public const string Metapackage = "linux-image-amd64";

    public const string BusyboxPackage = "busybox-static";

    // linux-image-6.1.0-56-amd64 (not the -unsigned or -dbg variants).
    [GeneratedRegex(@"^linux-image-(?<release>\d+\.\d+\.\d+-\d+-amd64)$")]
    private static partial Regex ImagePackage();

    [GeneratedRegex(@"^linux-headers-\d+\.\d+\.\d+-\d+-common$")]
    private static partial Regex HeadersCommonPackage();

    [GeneratedRegex(@"^linux-kbuild-\d+\.\d+$")]
    private static partial Regex KbuildPackage();

    /// <summary>The kernel image package <see cref="Metapackage"/> depends on, from <c>apt-cache depends linux-image-amd64</c>.</summary>
    public static string ImageFromMetapackage(string aptCacheDependsText)
    {
        var relations = AptCacheText.ParseDepends(aptCacheDependsText, Metapackage);
        return AptCacheText.SingleDependency(relations, ImagePackage(), "linux-image-X.Y.Z-N-amd64 package for " + Metapackage);
    }

    /// <summary>The kernel release (uname -r) of an image package: linux-image-6.1.0-56-amd64 → 6.1.0-56-amd64.</summary>
    public static string Release(string imagePackage)
    {
        Match match = ImagePackage().Match(imagePackage);
        return match.Success ? match.Groups["release"].Value : throw new ToolException($"'{imagePackage}' is not a linux-image-X.Y.Z-N-amd64 package");
    }

    public static string HeadersPackage(string release) => "linux-headers-" + release;

    /// <summary>The architecture-independent headers and the kbuild tools the flavour's headers depend on,
    /// from <c>apt-cache depends linux-headers-RELEASE</c>.</summary>
    public static (string Common, string Kbuild) HeaderDependencies(string aptCacheDependsText, string headersPackage)
    {
        var relations = AptCacheText.ParseDepends(aptCacheDependsText, headersPackage);
        return (AptCacheText.SingleDependency(relations, HeadersCommonPackage(), "linux-headers-X.Y.Z-N-common package for " + headersPackage),
                AptCacheText.SingleDependency(relations, KbuildPackage(), "linux-kbuild-X.Y package for " + headersPackage));
    }

    /// <summary>
    /// Pins every package to the candidate version <c>apt-cache show --no-all-versions</c> printed for it,
    /// and checks the exact-version dependencies between them ("linux-headers-…-common (= 6.1.192-2)"):
    /// candidates that disagree mean apt's lists are half updated.
    /// </summary>
    /// <param name="names">Role → package name.</param>
    /// <param name="aptCacheShowText">apt-cache show output for all the packages and the metapackage.</param>
    public static ResolvedPackages Pin(string release, IReadOnlyDictionary<string, string> names, string aptCacheShowText)
    {
        var stanzas = new Dictionary<string, IReadOnlyDictionary<string, string>>(StringComparer.Ordinal);
        foreach (var stanza in AptCacheText.ParseStanzas(aptCacheShowText))
        {
            if (stanza.TryGetValue("Package", out string? name)) stanzas.TryAdd(name, stanza);
        }

        var versions = new Dictionary<string, string>(StringComparer.Ordinal);
        var packages = new List<ResolvedPackage>();
        foreach (string role in GuestPackageRole.All)
        {
            string name = names[role];
            if (!stanzas.TryGetValue(name, out var stanza)) throw new ToolException($"apt-cache show printed nothing for {name}");
            if (!stanza.TryGetValue("Version", out string? version) || !stanza.TryGetValue("Architecture", out string? architecture))
            {
                throw new ToolException($"apt-cache show gave no Version/Architecture for {name}");
            }
            versions[name] = version;
            var package = new DebianPackage(name, version, architecture);
            packages.Add(new ResolvedPackage(role, package, package.FileName));
        }

        foreach (var (name, stanza) in stanzas)
        {
            if (!stanza.TryGetValue("Depends", out string? depends)) continue;
            foreach (var (dependency, pinned) in AptCacheText.ExactVersions(depends))
            {
                if (versions.TryGetValue(dependency, out string? candidate) && candidate != pinned)
                {
                    throw new ToolException($"{name} needs {dependency} {pinned} but apt's candidate is {candidate}; "
                        + "the package lists look inconsistent: run `apt-get update` and then `vigil guest --refresh`");
                }
            }
        }
        return new ResolvedPackages(release, packages);
    }
}
