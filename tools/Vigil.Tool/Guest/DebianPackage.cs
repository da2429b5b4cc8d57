using System;

namespace Vigil.Tool.Guest;

/// <summary>A Debian binary package pinned to one version and architecture.</summary>
internal sealed record DebianPackage(string Name, string Version, string Architecture)
{
    /// <summary>The file name <c>apt-get download</c> saves it as: name_version_arch.deb, with the
    /// epoch's colon URL-escaped (busybox-static_1%3a1.35.0-4_amd64.deb).</summary>
    public string FileName => $"{Name}_{Version.Replace(":", "%3a", StringComparison.Ordinal)}_{Architecture}.deb";

    /// <summary>The argument that makes apt fetch exactly this version.</summary>
    public string AptSpec => $"{Name}={Version}";

    public override string ToString() => $"{Name} {Version} {Architecture}";
}
