using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;

namespace Vigil.Tool.Guest;

/// <summary>
/// The guest's test programs: each tests/guest/programs/NAME.c becomes /bin/NAME in every scenario's
/// initramfs, built by the host's gcc as a static executable (the guest has no C library of its own;
/// libc6-dev is gcc's dependency on Debian). A program is rebuilt only when its source or the
/// command changed: the build records a hash of both next to the binary in out/guest/programs.
/// Each tests/guest/programs/NAME.sh (a busybox sh script, e.g. a suite several scenarios run) becomes
/// /bin/NAME as it is.
/// </summary>
internal static class ProgramBuilder
{
    /// <summary>The compiler and flags every program is built with (warnings are errors, as everywhere in Vigil).</summary>
    private static readonly string[] Flags = ["-static", "-O2", "-Wall", "-Wextra", "-Werror"];

    private const string Compiler = "gcc";

    public static string Sources(GuestLayout layout) => Path.Combine(layout.Sources, "programs");

    public static string Builds(GuestLayout layout) => Path.Combine(layout.Output, "programs");

    /// <summary>The program names: tests/guest/programs/*.c without the extension, sorted.</summary>
    public static IReadOnlyList<string> Discover(string sourceRoot)
        => Directory.Exists(sourceRoot)
            ? Directory.GetFiles(sourceRoot, "*.c").Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal).ToArray()
            : [];

    /// <summary>Builds what changed; returns (path in the initramfs, content, executable) for every program.</summary>
    public static IReadOnlyList<(string Path, byte[] Bytes, bool Executable)> Build(GuestLayout layout, TextWriter log)
    {
        string sources = Sources(layout);
        string builds = Builds(layout);
        var files = new List<(string, byte[], bool)>();
        foreach (string name in Discover(sources))
        {
            string source = Path.Combine(sources, name + ".c");
            string binary = Path.Combine(builds, name);
            string stamp = binary + ".hash";
            string hash = Hash(File.ReadAllBytes(source));
            if (!File.Exists(binary) || !File.Exists(stamp) || File.ReadAllText(stamp) != hash)
            {
                Directory.CreateDirectory(builds);
                string temporary = binary + ".tmp";
                ProcessResult result = HostProcess.Run(Compiler, [.. Flags, "-o", temporary, source]);
                if (result.ExitCode != 0)
                {
                    throw new ToolException($"building guest program {name} failed ({Compiler} exit {result.ExitCode}):\n{result.Tail(40)}");
                }
                File.Move(temporary, binary, overwrite: true);
                File.WriteAllText(stamp, hash);
                log.WriteLine($"guest: program {name}: built {Path.GetRelativePath(Environment.CurrentDirectory, binary)}, {new FileInfo(binary).Length:N0} bytes");
            }
            files.Add(("bin/" + name, File.ReadAllBytes(binary), true));
        }
        foreach (string name in DiscoverScripts(sources))
        {
            if (File.Exists(Path.Combine(sources, name + ".c"))) throw new ToolException($"tests/guest/programs has both {name}.c and {name}.sh: both would be /bin/{name}");
            files.Add(("bin/" + name, File.ReadAllBytes(Path.Combine(sources, name + ".sh")), true));
        }
        return files;
    }

    /// <summary>The script names: tests/guest/programs/*.sh without the extension, sorted.</summary>
    public static IReadOnlyList<string> DiscoverScripts(string sourceRoot)
        => Directory.Exists(sourceRoot)
            ? Directory.GetFiles(sourceRoot, "*.sh").Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal).ToArray()
            : [];

    /// <summary>SHA-256 of the command line and the source: either changing rebuilds the program.</summary>
    private static string Hash(byte[] source)
    {
        byte[] command = Encoding.UTF8.GetBytes(Compiler + " " + string.Join(' ', Flags) + "\n");
        return Convert.ToHexString(SHA256.HashData([.. command, .. source]));
    }
}
