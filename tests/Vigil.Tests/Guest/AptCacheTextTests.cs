using System.Linq;
using Vigil.Tool;
using Vigil.Tool.Guest;
using Xunit;

namespace Vigil.Tests.Guest;

public class AptCacheTextTests
{
    // Captured from Debian 12 (bookworm-security, November 2026).
    internal const string MetapackageDepends = """
        linux-image-amd64
          Depends: linux-image-6.1.0-56-amd64

        """;

    internal const string HeadersDepends = """
        linux-headers-6.1.0-56-amd64
          Depends: linux-headers-6.1.0-56-common
          Depends: linux-kbuild-6.1
          Depends: linux-compiler-gcc-12-x86

        """;

    private const string ImageDepends = """
        linux-image-6.1.0-56-amd64
          Depends: kmod
          Depends: linux-base
         |Depends: initramfs-tools
          Depends: <linux-initramfs-tool>
            dracut
            initramfs-tools
            tiny-initramfs
          Conflicts: linux-image-6.1.0-56-amd64-unsigned
          Breaks: fwupdate
          Recommends: firmware-linux-free
          Suggests: linux-doc-6.1
          Replaces: linux-image-6.1.0-56-amd64-unsigned

        """;

    [Fact]
    public void Depends_lines_alternatives_and_virtual_packages_are_parsed_and_providers_skipped()
    {
        var relations = AptCacheText.ParseDepends(ImageDepends, "linux-image-6.1.0-56-amd64");
        Assert.Equal(9, relations.Count);
        Assert.Equal(new AptRelation("Depends", "kmod", false, false), relations[0]);
        Assert.Equal(new AptRelation("Depends", "initramfs-tools", false, true), relations[2]);
        Assert.Equal(new AptRelation("Depends", "linux-initramfs-tool", true, false), relations[3]);
        Assert.Equal(new AptRelation("Conflicts", "linux-image-6.1.0-56-amd64-unsigned", false, false), relations[4]);
        Assert.DoesNotContain(relations, r => r.Package == "dracut");
    }

    [Fact]
    public void Only_the_relations_of_the_asked_package_count_when_apt_printed_several()
    {
        var relations = AptCacheText.ParseDepends(MetapackageDepends + HeadersDepends, "linux-headers-6.1.0-56-amd64");
        Assert.Equal(["linux-headers-6.1.0-56-common", "linux-kbuild-6.1", "linux-compiler-gcc-12-x86"], relations.Select(r => r.Package));
    }

    [Fact]
    public void Show_stanzas_keep_fields_and_continuation_lines()
    {
        var stanzas = AptCacheText.ParseStanzas("""
            Package: busybox-static
            Version: 1:1.35.0-4+deb12u1+b1
            Architecture: amd64
            Description: Standalone rescue shell
             with tons of builtin utilities

            Package: linux-kbuild-6.1
            Version: 6.1.192-2
            """);
        Assert.Equal(2, stanzas.Count);
        Assert.Equal("1:1.35.0-4+deb12u1+b1", stanzas[0]["Version"]);
        Assert.Equal("Standalone rescue shell\nwith tons of builtin utilities", stanzas[0]["Description"]);
        Assert.Equal("linux-kbuild-6.1", stanzas[1]["package"]);
    }

    [Fact]
    public void Exact_versions_come_only_from_equals_relations_without_alternatives()
    {
        var pinned = AptCacheText.ExactVersions(
            "linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86, a (= 1) | b (= 2), libc6:amd64 (= 2.36-9)");
        Assert.Equal(2, pinned.Count);
        Assert.Equal("6.1.192-2", pinned["linux-headers-6.1.0-56-common"]);
        Assert.Equal("2.36-9", pinned["libc6"]);
    }

    [Fact]
    public void A_single_dependency_must_be_unique()
    {
        var relations = AptCacheText.ParseDepends("""
            linux-image-amd64
              Depends: linux-image-6.1.0-56-amd64
              Depends: linux-image-6.1.0-57-amd64
            """, "linux-image-amd64");
        var e = Assert.Throws<ToolException>(() => AptCacheText.SingleDependency(relations, new System.Text.RegularExpressions.Regex("^linux-image-"), "image"));
        Assert.Contains("linux-image-6.1.0-57-amd64", e.Message, System.StringComparison.Ordinal);
    }
}
