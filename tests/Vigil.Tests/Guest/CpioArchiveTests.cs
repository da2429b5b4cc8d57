using System;
using System.Linq;
using System.Text;
using Vigil.Tool.Guest;
using Xunit;

namespace Vigil.Tests.Guest;

public class CpioArchiveTests
{
    private static string Ascii(byte[] bytes) => Encoding.ASCII.GetString(bytes).Replace("\0", "\\0", StringComparison.Ordinal);

    [Fact]
    public void One_file_archive_is_byte_exact_newc()
    {
        var archive = new CpioArchive();
        archive.AddFile("a", Encoding.ASCII.GetBytes("hi"), 0b110_100_100);
        byte[] bytes = archive.ToArray();

        // What GNU `cpio -o -H newc -R 0:0` writes for the same file (modulo inode and mtime):
        // magic, 13 fields of 8 upper-case hex digits, the name with its NUL, padding to 4, the data, padding.
        string expected =
            "070701" + "00000001" + "000081A4" + "00000000" + "00000000" + "00000001" + "00000000" + "00000002"
            + "00000000" + "00000000" + "00000000" + "00000000" + "00000002" + "00000000" + "a\\0"
            + "hi\\0\\0"
            + "070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" + "00000000"
            + "00000000" + "00000000" + "00000000" + "00000000" + "0000000B" + "00000000" + "TRAILER!!!\\0" + "\\0\\0\\0";
        Assert.Equal(expected, Ascii(bytes));
        Assert.Equal(240, bytes.Length);
    }

    [Fact]
    public void Device_nodes_carry_type_permissions_and_rdev_but_no_data()
    {
        var archive = new CpioArchive();
        archive.AddDirectory("dev", 0b111_101_101);
        archive.AddCharacterDevice("dev/console", 5, 1, 0b110_000_000);
        archive.AddCharacterDevice("dev/ttyS0", 4, 64, 0b110_110_000);
        var entries = NewcReader.Read(archive.ToArray());

        var console = entries.Single(e => e.Name == "dev/console");
        Assert.Equal(0x2180u, console.Mode);    // S_IFCHR | 0600
        Assert.Equal((5u, 1u), (console.RdevMajor, console.RdevMinor));
        Assert.Empty(console.Data);
        var tty = entries.Single(e => e.Name == "dev/ttyS0");
        Assert.Equal(0x21B0u, tty.Mode);        // S_IFCHR | 0660
        Assert.Equal((4u, 64u), (tty.RdevMajor, tty.RdevMinor));
        Assert.Equal("00000004" + "00000040", Encoding.ASCII.GetString(archive.ToArray(), (int)tty.Offset + 6 + 9 * 8, 16));
    }

    [Fact]
    public void Symlinks_store_their_target_as_data_with_mode_0777()
    {
        var archive = new CpioArchive();
        archive.AddDirectory("bin", 0b111_101_101);
        archive.AddSymlink("bin/sh", "busybox");
        var link = NewcReader.Read(archive.ToArray()).Single(e => e.Name == "bin/sh");
        Assert.Equal(0xA1FFu, link.Mode);
        Assert.Equal("busybox", link.Text);
    }

    [Fact]
    public void Output_is_sorted_owned_by_root_with_fixed_times_whatever_the_insertion_order()
    {
        static CpioArchive Build(bool reversed)
        {
            var archive = new CpioArchive { ModificationTime = 1_700_000_000 };
            var adds = new Action<CpioArchive>[]
            {
                a => a.AddDirectory("bin", 0b111_101_101),
                a => a.AddFile("bin/busybox", [1, 2, 3], 0b111_101_101),
                a => a.AddFile("init", Encoding.ASCII.GetBytes("#!/bin/sh\n"), 0b111_101_101),
                a => a.AddDirectory("bin-extra", 0b111_101_101),
                a => a.AddSymlink("bin/sh", "busybox"),
            };
            foreach (var add in reversed ? adds.Reverse() : adds) add(archive);
            return archive;
        }
        byte[] forward = Build(false).ToArray();
        Assert.Equal(forward, Build(true).ToArray());

        var entries = NewcReader.Read(forward);
        Assert.Equal(["bin", "bin-extra", "bin/busybox", "bin/sh", "init", "TRAILER!!!"], entries.Select(e => e.Name));
        Assert.Equal([1u, 2u, 3u, 4u, 5u, 0u], entries.Select(e => e.Inode));
        Assert.All(entries.SkipLast(1), e =>
        {
            Assert.Equal((0u, 0u), (e.Uid, e.Gid));
            Assert.Equal(1_700_000_000u, e.Mtime);
            Assert.Equal(e.Type == 0x4000 ? 2u : 1u, e.Links);
        });
    }

    [Theory]
    [InlineData("x")]
    [InlineData("xy")]
    [InlineData("xyz")]
    [InlineData("wxyz")]
    [InlineData("vwxyz")]
    public void Names_and_data_of_every_length_stay_4_byte_aligned(string name)
    {
        var archive = new CpioArchive();
        for (int size = 0; size < 6; size++) archive.AddFile(name + size, new byte[size], 0b110_100_100);
        byte[] bytes = archive.ToArray();
        Assert.Equal(0, bytes.Length % 4);
        var entries = NewcReader.Read(bytes);   // asserts every alignment and the padding bytes
        Assert.Equal(7, entries.Count);
    }

    [Fact]
    public void A_missing_parent_directory_is_an_error_because_the_kernel_would_not_create_it()
    {
        var archive = new CpioArchive();
        archive.AddFile("modules/hello.ko", [0], 0b110_100_100);
        var e = Assert.Throws<InvalidOperationException>(() => archive.ToArray());
        Assert.Contains("'modules'", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("/init")]
    [InlineData("bin/")]
    [InlineData("a//b")]
    [InlineData("./init")]
    [InlineData("a/../b")]
    [InlineData("TRAILER!!!")]
    [InlineData("with space")]
    public void Bad_paths_are_rejected(string path)
    {
        Assert.Throws<ArgumentException>(() => new CpioArchive().AddFile(path, [], 0b110_100_100));
    }

    [Fact]
    public void Duplicate_paths_are_rejected()
    {
        var archive = new CpioArchive();
        archive.AddFile("init", [], 0b111_101_101);
        Assert.Throws<ArgumentException>(() => archive.AddSymlink("init", "busybox"));
    }
}
