using System;
using System.IO;
using System.Text.RegularExpressions;

namespace Vigil.Tool.Guest;

/// <summary>
/// Makes the kernel headers extracted into the package root usable for out-of-tree module builds
/// without installing linux-headers on the host.
/// </summary>
internal static partial class KernelHeaders
{
    // Debian's flavour Makefile is one line, "include /usr/src/linux-headers-R-common/Makefile": an
    // absolute path into the host's /usr/src. The included Makefile finds the source tree from its own
    // location, so including it relative to this Makefile builds entirely from the extracted copy.
    private const string AbsoluteInclude = "include /usr/src/";
    private const string RelativeInclude = "include $(dir $(lastword $(MAKEFILE_LIST)))../";

    [GeneratedRegex(@"\bgcc-\d+\b")]
    private static partial Regex VersionedGcc();

    /// <summary>The headers folder (the directory for make -C), after fixing it up and checking it is complete.</summary>
    public static string Prepare(string packageRoot, string release)
    {
        string srcDir = Path.Combine(packageRoot, "usr", "src");
        string headers = Path.Combine(srcDir, "linux-headers-" + release);
        string makefile = Path.Combine(headers, "Makefile");
        if (!File.Exists(makefile)) throw new ToolException($"{makefile} is missing: the linux-headers package was not extracted");

        string text = File.ReadAllText(makefile);
        string fixedText = text.Replace(AbsoluteInclude, RelativeInclude, StringComparison.Ordinal);
        if (fixedText != text) File.WriteAllText(makefile, fixedText);
        foreach (string line in fixedText.Split('\n'))
        {
            if (!line.StartsWith(RelativeInclude, StringComparison.Ordinal)) continue;
            string included = Path.Combine(srcDir, line[RelativeInclude.Length..].Trim());
            if (!File.Exists(included)) throw new ToolException($"{makefile} includes {included}, which is missing: the linux-headers-…-common package was not extracted");
        }

        // scripts/ and tools/ are relative symlinks into the extracted linux-kbuild package.
        foreach (string needed in new[] { "scripts/Makefile.build", "scripts/mod/modpost", "scripts/basic/fixdep" })
        {
            if (!File.Exists(Path.Combine(headers, needed)))
            {
                throw new ToolException($"{Path.Combine(headers, needed)} does not resolve: the linux-kbuild package was not extracted");
            }
        }

        // The kernel must be built with the compiler it was built with (.kernelvariables says CC = gcc-12).
        string variables = Path.Combine(headers, ".kernelvariables");
        string compiler = File.Exists(variables) ? VersionedGcc().Match(File.ReadAllText(variables)).Value : "";
        foreach (string tool in new[] { "make", compiler.Length > 0 ? compiler : "gcc" })
        {
            if (!HostProcess.OnPath(tool)) throw new ToolException($"'{tool}' is not installed; the module build needs the host packages in tools/debian-packages.txt");
        }
        return headers;
    }
}
