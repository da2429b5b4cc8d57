using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Vigil.Tool.Guest;

/// <summary>A guest kernel module built from tests/guest/modules/NAME.</summary>
internal sealed record BuiltModule(string Name, string KoPath);

/// <summary>
/// Builds the out-of-tree guest modules (tests/guest/modules/NAME/, each with a Kbuild file
/// <c>obj-m := NAME.o</c>) against the extracted kernel headers. Kbuild writes its objects next to
/// the sources, so each module is built in a copy under out/guest/modules/NAME and the repository
/// stays clean.
/// </summary>
internal static class ModuleBuilder
{
    /// <summary>The module names: the folders of <paramref name="sourceRoot"/> that hold a Kbuild file, sorted.</summary>
    public static IReadOnlyList<string> Discover(string sourceRoot)
    {
        if (!Directory.Exists(sourceRoot)) return [];
        return Directory.GetDirectories(sourceRoot)
            .Where(dir => File.Exists(Path.Combine(dir, "Kbuild")))
            .Select(dir => Path.GetFileName(dir))
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>
    /// Builds the module unless it was built from the same sources against the same headers (<paramref name="headersIdentity"/>:
    /// the kernel release and the header packages' versions); returns the module and whether it was built now.
    /// </summary>
    public static (BuiltModule Module, bool Built) Build(string name, string sourceDir, string buildDir, string headersDir, string headersIdentity, TextWriter log)
    {
        string ko = Path.Combine(buildDir, name + ".ko");
        // The stamp lives beside the build folder: the folder is deleted and recreated for each build.
        string stamp = buildDir.TrimEnd('/', '\\') + ".inputs";
        string digest = new InputStamp().Add("headers", headersIdentity).AddTree(sourceDir).Finish();
        if (InputStamp.IsCurrent(stamp, digest, ko)) return (new BuiltModule(name, ko), false);
        if (File.Exists(stamp)) File.Delete(stamp);

        // A fresh copy each time: stale objects of a deleted source file cannot end up in the module.
        if (Directory.Exists(buildDir)) Directory.Delete(buildDir, recursive: true);
        CopyTree(sourceDir, buildDir);

        string absoluteBuildDir = Path.GetFullPath(buildDir);
        ProcessResult result = HostProcess.Run("make", ["-C", Path.GetFullPath(headersDir), "M=" + absoluteBuildDir, "modules"]);
        if (result.ExitCode != 0)
        {
            throw new ToolException($"building module {name} failed (make exit {result.ExitCode}):\n{result.Tail(40)}");
        }
        foreach (string line in (result.StandardOutput + result.StandardError).Split('\n'))
        {
            if (line.Contains("warning:", StringComparison.Ordinal)) log.WriteLine("guest: " + line.Trim());
        }
        if (!File.Exists(ko))
        {
            throw new ToolException($"make built no {name}.ko; the Kbuild file of tests/guest/modules/{name} must say `obj-m := {name}.o`");
        }
        InputStamp.Record(stamp, digest);
        return (new BuiltModule(name, ko), true);
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (string dir in Directory.GetDirectories(from)) CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)));
    }
}
