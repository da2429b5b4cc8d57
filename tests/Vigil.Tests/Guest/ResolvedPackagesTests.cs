using System;
using System.Linq;
using Vigil.Tool.Guest;
using Xunit;

namespace Vigil.Tests.Guest;

public class ResolvedPackagesTests
{
    private static ResolvedPackages Sample() => new("6.1.0-56-amd64", new[]
    {
        new DebianPackage("busybox-static", "1:1.35.0-4+deb12u1+b1", "amd64"),
        new DebianPackage("linux-image-6.1.0-56-amd64", "6.1.192-2", "amd64"),
        new DebianPackage("linux-headers-6.1.0-56-amd64", "6.1.192-2", "amd64"),
        new DebianPackage("linux-headers-6.1.0-56-common", "6.1.192-2", "all"),
        new DebianPackage("linux-kbuild-6.1", "6.1.192-2", "amd64"),
    }.Zip([GuestPackageRole.Busybox, GuestPackageRole.KernelImage, GuestPackageRole.KernelHeaders, GuestPackageRole.KernelHeadersCommon, GuestPackageRole.KernelBuild],
        (p, role) => new ResolvedPackage(role, p, p.FileName)));

    [Fact]
    public void Format_and_parse_round_trip_in_role_order()
    {
        string text = Sample().Format();
        ResolvedPackages parsed = ResolvedPackages.Parse(text);
        Assert.Equal("6.1.0-56-amd64", parsed.KernelRelease);
        Assert.Equal(GuestPackageRole.All, parsed.Packages.Select(p => p.Role));
        Assert.Equal(Sample().Packages, parsed.Packages);
        Assert.Equal(text, parsed.Format());
        Assert.Contains("\nbusybox busybox-static 1:1.35.0-4+deb12u1+b1 amd64 busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Comments_blank_lines_and_crlf_are_accepted()
    {
        string text = "# hand-edited\r\n\r\n" + Sample().Format().Replace("\n", "\r\n", StringComparison.Ordinal);
        Assert.Equal(Sample().Packages, ResolvedPackages.Parse(text).Packages);
    }

    [Theory]
    [InlineData("kernel-image linux-image-6.1.0-56-amd64 6.1.192-2 amd64", "line 6")]                 // a column missing
    [InlineData("kernel-rootfs x 1 amd64 x_1_amd64.deb", "line 6")]                                   // unknown role
    [InlineData("kernel-release 6.1.0-57-amd64", "given twice")]
    public void Malformed_lines_are_reported_with_their_number(string extraLine, string expected)
    {
        string text = string.Join("\n", Sample().Format().Split('\n').Take(5)) + "\n" + extraLine + "\n"
            + string.Join("\n", Sample().Format().Split('\n').Skip(5));
        var e = Assert.Throws<FormatException>(() => ResolvedPackages.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_record_without_every_role_or_the_release_is_rejected()
    {
        string withoutBusybox = string.Join("\n", Sample().Format().Split('\n').Where(l => !l.StartsWith("busybox ", StringComparison.Ordinal)));
        Assert.Contains("busybox", Assert.Throws<FormatException>(() => ResolvedPackages.Parse(withoutBusybox)).Message, StringComparison.Ordinal);
        string withoutRelease = string.Join("\n", Sample().Format().Split('\n').Where(l => !l.StartsWith("kernel-release", StringComparison.Ordinal)));
        Assert.Throws<FormatException>(() => ResolvedPackages.Parse(withoutRelease));
        Assert.Throws<FormatException>(() => ResolvedPackages.Parse(""));
    }

    [Fact]
    public void File_names_must_be_plain_deb_names()
    {
        string text = Sample().Format().Replace("linux-kbuild-6.1_6.1.192-2_amd64.deb", "../evil.deb", StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => ResolvedPackages.Parse(text));
    }
}
