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

    public static BuiltModule Build(string name, string sourceDir, string buildDir, string headersDir, TextWriter log)
    {
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
        string ko = Path.Combine(buildDir, name + ".ko");
        if (!File.Exists(ko))
        {
            throw new ToolException($"make built no {name}.ko; the Kbuild file of tests/guest/modules/{name} must say `obj-m := {name}.o`");
        }
        return new BuiltModule(name, ko);
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (string dir in Directory.GetDirectories(from)) CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)));
    }
}
