using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace Vigil.Tool.Guest;

/// <summary>
/// `vigil guest`: the Linux test guest from Debian's packages. out/guest/linux.efi is the Debian
/// kernel (an EFI stub PE, so firmware and Vigil can start it directly) and out/guest/SCENARIO/initrd.img
/// a busybox initramfs per scenario with /init (tests/guest/init.sh), the scenario script and the
/// guest modules built from tests/guest/modules. Nothing is installed on the host and nothing needs
/// root: the packages are only downloaded and extracted, and the archive is written in C#.
/// </summary>
internal static partial class GuestCommand
{
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]*$")]
    private static partial Regex ScenarioName();

    public static int Run(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        IReadOnlyList<string> requested = options.Multiple("--scenario");
        bool refresh = options.Flag("--refresh");
        options.EnsureAllUsed();

        var layout = new GuestLayout(root);
        IReadOnlyList<string> scenarios = SelectScenarios(layout, requested);
        Build(layout, scenarios, refresh, Console.Out);
        return 0;
    }

    /// <summary>The requested scenarios (checked before anything slow starts), or all of tests/guest/scenarios.</summary>
    private static IReadOnlyList<string> SelectScenarios(GuestLayout layout, IReadOnlyList<string> requested)
    {
        string[] available = Directory.Exists(layout.ScenarioSources)
            ? Directory.GetFiles(layout.ScenarioSources, "*.sh").Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal).ToArray()
            : [];
        foreach (string name in available)
        {
            if (!ScenarioName().IsMatch(name)) throw new ToolException($"scenario file '{name}.sh': names are lower-case letters, digits, '-' and '_'");
            // Each scenario's initrd goes to out/guest/NAME/, next to these folders of the build.
            if (name is "pkgroot" or "modules") throw new ToolException($"scenario name '{name}' is reserved (out/guest/{name} is used by the build)");
        }
        if (available.Length == 0) throw new ToolException($"no scenarios in {layout.ScenarioSources}");
        foreach (string name in requested)
        {
            if (!available.Contains(name)) throw new UsageException($"no scenario '{name}'; available: {string.Join(", ", available)}");
        }
        return requested.Count > 0 ? requested.Distinct(StringComparer.Ordinal).ToArray() : available;
    }

    private static void Build(GuestLayout layout, IReadOnlyList<string> scenarios, bool refresh, TextWriter log)
    {
        var total = Stopwatch.StartNew();
        var timings = new List<(string Stage, double Seconds)>();
        T Stage<T>(string name, Func<T> action)
        {
            var watch = Stopwatch.StartNew();
            T result = action();
            timings.Add((name, watch.Elapsed.TotalSeconds));
            log.WriteLine($"guest: {name}: {watch.Elapsed.TotalSeconds:F1} s");
            return result;
        }

        ResolvedPackages packages = Stage("packages", () => PackageCache.Ensure(layout.DebCache, refresh, log));

        var extracted = Stage("extract", () => PackageRoot.Populate(layout.PackageRoot, layout.DebCache, packages, log));
        if (extracted.Count > 0) log.WriteLine($"guest: extracted {string.Join(", ", extracted.Select(p => p.Name))} into {Show(layout.PackageRoot)}");

        string kernel = Stage("kernel", () =>
        {
            string source = Path.Combine(layout.PackageRoot, "boot", "vmlinuz-" + packages.KernelRelease);
            if (!File.Exists(source)) throw new ToolException($"{source} is missing from the extracted {packages[GuestPackageRole.KernelImage].Package.Name}");
            Directory.CreateDirectory(layout.Output);
            WriteAtomically(layout.Kernel, File.ReadAllBytes(source));
            return layout.Kernel;
        });

        var modules = Stage("modules", () =>
        {
            string headers = KernelHeaders.Prepare(layout.PackageRoot, packages.KernelRelease);
            return ModuleBuilder.Discover(layout.ModuleSources)
                .Select(name => ModuleBuilder.Build(name, Path.Combine(layout.ModuleSources, name), Path.Combine(layout.ModuleBuilds, name), headers, log))
                .ToArray();
        });

        var testPrograms = Stage("programs", () => ProgramBuilder.Build(layout, log));

        var initrds = Stage("initramfs", () =>
        {
            string busybox = Path.Combine(layout.PackageRoot, "bin", "busybox");
            byte[] busyboxBytes = File.ReadAllBytes(busybox);
            IReadOnlyList<string> applets = Busybox.Applets(busybox);
            byte[] init = File.ReadAllBytes(layout.InitScript);
            var moduleBytes = modules.Select(m => (m.Name, File.ReadAllBytes(m.KoPath))).ToArray();
            var programs = GuestPrograms.Collect(layout.Vigild).Concat(testPrograms).ToArray();
            var written = new List<(string Path, long CpioBytes)>();
            foreach (string scenario in scenarios)
            {
                var content = new InitramfsContent(busyboxBytes, applets, init, scenario,
                    File.ReadAllBytes(Path.Combine(layout.ScenarioSources, scenario + ".sh")), moduleBytes, programs);
                byte[] cpio = Initramfs.Compose(content).ToArray();
                string path = layout.Initrd(scenario);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                WriteAtomically(path, Initramfs.Gzip(cpio));
                written.Add((path, cpio.Length));
            }
            return written;
        });

        log.WriteLine($"guest: kernel {packages.KernelRelease} ({packages[GuestPackageRole.KernelImage].Package.Version}): {Show(kernel)}, {new FileInfo(kernel).Length:N0} bytes");
        foreach (BuiltModule module in modules) log.WriteLine($"guest: module {module.Name}: {Show(module.KoPath)}, {new FileInfo(module.KoPath).Length:N0} bytes");
        foreach (var (path, cpioBytes) in initrds)
        {
            log.WriteLine($"guest: initramfs {Show(path)}: {new FileInfo(path).Length:N0} bytes (cpio {cpioBytes:N0} bytes)");
        }
        log.WriteLine($"guest: done in {total.Elapsed.TotalSeconds:F1} s ({string.Join(", ", timings.Select(t => $"{t.Stage} {t.Seconds:F1} s"))})");
    }

    // The emulator runs read these files; a build interrupted halfway must not leave a truncated one.
    private static void WriteAtomically(string path, byte[] bytes)
    {
        string temporary = path + ".tmp";
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, path, overwrite: true);
    }

    private static string Show(string path) => Path.GetRelativePath(Environment.CurrentDirectory, path);
}
