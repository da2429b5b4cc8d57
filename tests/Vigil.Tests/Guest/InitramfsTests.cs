using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using Vigil.Tool.Guest;
using Xunit;

namespace Vigil.Tests.Guest;

public class InitramfsTests
{
    private static InitramfsContent Content(string scenario = "smoke") => new(
        Busybox: [0x7F, (byte)'E', (byte)'L', (byte)'F'],
        Applets: ["[", "busybox", "insmod", "sh", "sh"],
        Init: Encoding.ASCII.GetBytes("#!/bin/sh\n"),
        ScenarioName: scenario,
        Scenario: Encoding.ASCII.GetBytes("load_module hello\n"),
        Modules: [("hello", new byte[] { 1, 2, 3 })],
        Programs: [("bin/vigild", new byte[] { 4, 5 }, true), ("lib/x86_64-linux-gnu/libc.so.6", new byte[] { 6 }, true)]);

    [Fact]
    public void Layout_has_init_scenario_modules_busybox_applets_and_device_nodes()
    {
        var entries = NewcReader.Read(Initramfs.Compose(Content()).ToArray()).ToDictionary(e => e.Name);

        foreach (string dir in new[] { "bin", "dev", "etc", "modules", "proc", "sys", "tmp" }) Assert.Equal(0x4000u, entries[dir].Type);
        Assert.Equal(0x41FFu | 0x200u, entries["tmp"].Mode);   // drwxrwxrwt
        Assert.Equal(0x81EDu, entries["init"].Mode);           // -rwxr-xr-x
        Assert.Equal("#!/bin/sh\n", entries["init"].Text);
        Assert.Equal(0x81EDu, entries["scenario.sh"].Mode);
        Assert.Equal("smoke\n", entries["etc/vigil-scenario"].Text);
        Assert.Equal([1, 2, 3], entries["modules/hello.ko"].Data);
        Assert.Equal(0x81EDu, entries["bin/busybox"].Mode);

        Assert.Equal("busybox", entries["bin/sh"].Text);
        Assert.Equal("busybox", entries["bin/["].Text);
        Assert.Equal("busybox", entries["bin/insmod"].Text);
        Assert.Equal(0x8000u, entries["bin/busybox"].Type);     // the binary, not a link to itself

        Assert.Equal((0x2000u, 5u, 1u), (entries["dev/console"].Type, entries["dev/console"].RdevMajor, entries["dev/console"].RdevMinor));
        Assert.Equal((0x2000u, 1u, 3u), (entries["dev/null"].Type, entries["dev/null"].RdevMajor, entries["dev/null"].RdevMinor));
        Assert.Equal((0x2000u, 4u, 64u), (entries["dev/ttyS0"].Type, entries["dev/ttyS0"].RdevMajor, entries["dev/ttyS0"].RdevMinor));
    }

    [Fact]
    public void Gzip_round_trips_and_is_deterministic()
    {
        byte[] cpio = Initramfs.Compose(Content()).ToArray();
        byte[] first = Initramfs.Gzip(cpio);
        Assert.Equal(first, Initramfs.Gzip(Initramfs.Compose(Content()).ToArray()));
        Assert.Equal([0x1F, 0x8B, 8], first[..3]);   // gzip magic, deflate

        using var input = new GZipStream(new MemoryStream(first), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        Assert.Equal(cpio, output.ToArray());
    }

    [Fact]
    public void Scenarios_differ_only_in_their_own_files()
    {
        var smoke = NewcReader.Read(Initramfs.Compose(Content("smoke")).ToArray());
        var other = NewcReader.Read(Initramfs.Compose(Content("other")).ToArray());
        Assert.Equal(smoke.Select(e => e.Name), other.Select(e => e.Name));
        Assert.Equal("other\n", other.Single(e => e.Name == "etc/vigil-scenario").Text);
    }

    [Fact]
    public void Programs_and_their_library_directories_are_in_the_archive()
    {
        byte[] cpio = Initramfs.Compose(Content()).ToArray();
        string text = Encoding.ASCII.GetString(cpio);
        foreach (string name in new[] { "bin/vigild", "lib", "lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu/libc.so.6" })
        {
            Assert.Contains(name + "\0", text);
        }
        Assert.Equal(text.IndexOf("lib\0", System.StringComparison.Ordinal), text.IndexOf("lib\0", System.StringComparison.Ordinal));
        Assert.True(text.IndexOf("lib/x86_64-linux-gnu\0", System.StringComparison.Ordinal) < text.IndexOf("lib/x86_64-linux-gnu/libc.so.6\0", System.StringComparison.Ordinal));
    }

    [Fact]
    public void Library_paths_are_read_from_ldd_output()
    {
        const string ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        Assert.Equal(["/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"], GuestPrograms.SharedLibraries(ldd));
    }
}
