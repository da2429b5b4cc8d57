using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Text;

namespace Vigil.Tool.Guest;

/// <summary>Everything one scenario's initramfs is made of, already read from disk.</summary>
/// <param name="Busybox">The statically linked busybox binary.</param>
/// <param name="Applets">Its applet names (<c>busybox --list</c>); each becomes a symlink in /bin.</param>
/// <param name="Init">tests/guest/init.sh, the guest's /init.</param>
/// <param name="ScenarioName">Written to /etc/vigil-scenario for init's markers.</param>
/// <param name="Scenario">tests/guest/scenarios/NAME.sh, the guest's /scenario.sh.</param>
/// <param name="Modules">Module name → .ko contents, installed as /modules/NAME.ko.</param>
/// <param name="Programs">Further files (vigild and its shared libraries) by their path in the archive.</param>
internal sealed record InitramfsContent(
    byte[] Busybox,
    IReadOnlyList<string> Applets,
    byte[] Init,
    string ScenarioName,
    byte[] Scenario,
    IReadOnlyList<(string Name, byte[] Ko)> Modules,
    IReadOnlyList<(string Path, byte[] Bytes, bool Executable)> Programs);

/// <summary>The layout of the guest's initramfs, and its gzip compression.</summary>
internal static class Initramfs
{
    private const int Executable = 0b111_101_101;     // 0755
    private const int Readable = 0b110_100_100;       // 0644
    private const int StickyWorldWritable = 0b1_111_111_111;   // 01777, /tmp

    public static CpioArchive Compose(InitramfsContent content)
    {
        var archive = new CpioArchive();
        foreach (string dir in new[] { "bin", "dev", "etc", "modules", "proc", "sys" }) archive.AddDirectory(dir, Executable);
        archive.AddDirectory("tmp", StickyWorldWritable);

        // The kernel opens /dev/console for init's stdin/stdout before init can mount devtmpfs, so the
        // node must be in the archive; /dev/null and /dev/ttyS0 cover a guest without devtmpfs.
        archive.AddCharacterDevice("dev/console", 5, 1, 0b110_000_000);   // 0600
        archive.AddCharacterDevice("dev/null", 1, 3, 0b110_110_110);      // 0666
        archive.AddCharacterDevice("dev/ttyS0", 4, 64, 0b110_110_000);    // 0660

        archive.AddFile("bin/busybox", content.Busybox, Executable);
        var linked = new HashSet<string>(StringComparer.Ordinal) { "busybox" };
        foreach (string applet in content.Applets)
        {
            if (applet.Length == 0 || applet.Contains('/', StringComparison.Ordinal)) throw new ArgumentException($"bad busybox applet name '{applet}'", nameof(content));
            if (linked.Add(applet)) archive.AddSymlink("bin/" + applet, "busybox");
        }

        archive.AddFile("init", content.Init, Executable);
        archive.AddFile("scenario.sh", content.Scenario, Executable);
        archive.AddFile("etc/vigil-scenario", Encoding.ASCII.GetBytes(content.ScenarioName + "\n"), Readable);
        foreach (var (name, ko) in content.Modules) archive.AddFile($"modules/{name}.ko", ko, Readable);

        var directories = new HashSet<string>(StringComparer.Ordinal) { "bin", "dev", "etc", "modules", "proc", "sys", "tmp" };
        foreach (var (path, bytes, executable) in content.Programs)
        {
            string[] parts = path.Split('/');
            string dir = "";
            for (int i = 0; i < parts.Length - 1; i++)
            {
                dir = dir.Length == 0 ? parts[i] : dir + "/" + parts[i];
                if (directories.Add(dir)) archive.AddDirectory(dir, Executable);
            }
            archive.AddFile(path, bytes, executable ? Executable : Readable);
        }
        return archive;
    }

    /// <summary>gzip at the highest level. The stream header carries no file name and a zero time, so equal input gives equal bytes.</summary>
    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            gzip.Write(data);
        }
        return output.ToArray();
    }
}
