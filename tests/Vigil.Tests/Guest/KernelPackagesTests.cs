using System.Collections.Generic;
using Vigil.Tool;
using Vigil.Tool.Guest;
using Xunit;

namespace Vigil.Tests.Guest;

public class KernelPackagesTests
{
    private static readonly Dictionary<string, string> Names = new()
    {
        [GuestPackageRole.KernelImage] = "linux-image-6.1.0-56-amd64",
        [GuestPackageRole.KernelHeaders] = "linux-headers-6.1.0-56-amd64",
        [GuestPackageRole.KernelHeadersCommon] = "linux-headers-6.1.0-56-common",
        [GuestPackageRole.KernelBuild] = "linux-kbuild-6.1",
        [GuestPackageRole.Busybox] = "busybox-static",
    };

    private static string Show(string headersCommonVersion = "6.1.192-2") => $"""
        Package: linux-image-amd64
        Version: 6.1.192-2
        Architecture: amd64
        Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)

        Package: linux-image-6.1.0-56-amd64
        Version: 6.1.192-2
        Architecture: amd64
        Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool

        Package: linux-headers-6.1.0-56-amd64
        Version: 6.1.192-2
        Architecture: amd64
        Depends: linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86

        Package: linux-headers-6.1.0-56-common
        Version: {headersCommonVersion}
        Architecture: all

        Package: linux-kbuild-6.1
        Version: 6.1.192-2
        Architecture: amd64
        Depends: libc6 (>= 2.34), libelf1 (>= 0.142), libssl3 (>= 3.0.0)

        Package: busybox-static
        Version: 1:1.35.0-4+deb12u1+b1
        Architecture: amd64

        """;

    [Fact]
    public void The_kernel_abi_number_comes_from_the_metapackage()
    {
        string image = KernelPackages.ImageFromMetapackage(AptCacheTextTests.MetapackageDepends);
        Assert.Equal("linux-image-6.1.0-56-amd64", image);
        Assert.Equal("6.1.0-56-amd64", KernelPackages.Release(image));
        Assert.Equal("linux-headers-6.1.0-56-amd64", KernelPackages.HeadersPackage("6.1.0-56-amd64"));
    }

    [Fact]
    public void The_unsigned_and_debug_images_are_not_the_kernel()
    {
        const string depends = """
            linux-image-amd64
              Depends: linux-image-6.1.0-99-amd64-unsigned
              Depends: linux-image-6.1.0-99-amd64-dbg
              Depends: linux-image-6.1.0-99-amd64
            """;
        Assert.Equal("linux-image-6.1.0-99-amd64", KernelPackages.ImageFromMetapackage(depends));
        Assert.Throws<ToolException>(() => KernelPackages.Release("linux-image-6.1.0-99-amd64-unsigned"));
    }

    [Fact]
    public void A_metapackage_without_an_image_dependency_is_an_error()
    {
        Assert.Throws<ToolException>(() => KernelPackages.ImageFromMetapackage("linux-image-amd64\n  Depends: kmod\n"));
    }

    [Fact]
    public void Headers_bring_the_common_headers_and_kbuild_but_not_the_compiler_metapackage()
    {
        var (common, kbuild) = KernelPackages.HeaderDependencies(AptCacheTextTests.HeadersDepends, "linux-headers-6.1.0-56-amd64");
        Assert.Equal("linux-headers-6.1.0-56-common", common);
        Assert.Equal("linux-kbuild-6.1", kbuild);
    }

    [Fact]
    public void Pinning_takes_the_candidate_versions_and_apt_file_names()
    {
        ResolvedPackages resolved = KernelPackages.Pin("6.1.0-56-amd64", Names, Show());
        Assert.Equal("6.1.0-56-amd64", resolved.KernelRelease);
        Assert.Equal(new DebianPackage("linux-headers-6.1.0-56-common", "6.1.192-2", "all"), resolved[GuestPackageRole.KernelHeadersCommon].Package);
        Assert.Equal("busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb", resolved[GuestPackageRole.Busybox].FileName);
        Assert.Equal("linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb", resolved[GuestPackageRole.KernelImage].FileName);
    }

    [Fact]
    public void Candidates_that_break_an_exact_version_dependency_are_an_error()
    {
        var e = Assert.Throws<ToolException>(() => KernelPackages.Pin("6.1.0-56-amd64", Names, Show(headersCommonVersion: "6.1.191-1")));
        Assert.Contains("apt-get update", e.Message, System.StringComparison.Ordinal);
    }

    [Fact]
    public void A_package_apt_does_not_show_is_an_error()
    {
        string show = Show().Replace("Package: linux-kbuild-6.1", "Package: linux-kbuild-6.2", System.StringComparison.Ordinal);
        Assert.Throws<ToolException>(() => KernelPackages.Pin("6.1.0-56-amd64", Names, show));
    }
}
