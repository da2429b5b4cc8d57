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
            string source = Path.Combine(layout.PackageRoot, PackageRoot.KernelImageMember(packages.KernelRelease));
            if (!File.Exists(source)) throw new ToolException($"{source} is missing from the extracted {packages[GuestPackageRole.KernelImage].Package.Name}");
            Directory.CreateDirectory(layout.Output);
            byte[] image = File.ReadAllBytes(source);
            if (!File.Exists(layout.Kernel) || !File.ReadAllBytes(layout.Kernel).AsSpan().SequenceEqual(image)) WriteAtomically(layout.Kernel, image);
            return layout.Kernel;
        });

        var modules = Stage("modules", () =>
        {
            string headers = KernelHeaders.Prepare(layout.PackageRoot, packages.KernelRelease);
            // The headers a module is built against: the release and the versions of the three header packages.
            string headersIdentity = packages.KernelRelease + " " + string.Join(" ", packages.Packages
                .Where(p => p.Role is GuestPackageRole.KernelHeaders or GuestPackageRole.KernelHeadersCommon or GuestPackageRole.KernelBuild)
                .Select(p => p.Package.Name + "=" + p.Package.Version));
            var built = new List<BuiltModule>();
            var current = new List<string>();
            foreach (string name in ModuleBuilder.Discover(layout.ModuleSources))
            {
                var (module, rebuilt) = ModuleBuilder.Build(name, Path.Combine(layout.ModuleSources, name), Path.Combine(layout.ModuleBuilds, name), headers, headersIdentity, log);
                built.Add(module);
                if (!rebuilt) current.Add(name);
            }
            if (current.Count > 0) log.WriteLine($"guest: modules up to date (same sources and headers): {string.Join(", ", current)}");
            return built.ToArray();
        });

        var testPrograms = Stage("programs", () => ProgramBuilder.Build(layout, log));

        var initrds = Stage("initramfs", () =>
        {
            string busybox = Path.Combine(layout.PackageRoot, "bin", "busybox");
            byte[] busyboxBytes = File.ReadAllBytes(busybox);
            var applets = new Lazy<IReadOnlyList<string>>(() => Busybox.Applets(busybox));
            byte[] init = File.ReadAllBytes(layout.InitScript);
            var moduleBytes = modules.Select(m => (m.Name, File.ReadAllBytes(m.KoPath))).ToArray();
            string efivarfs = Path.Combine(layout.PackageRoot, PackageRoot.FirmwareVariablesModule(packages.KernelRelease));
            if (!File.Exists(efivarfs)) throw new ToolException($"{efivarfs} is missing from the extracted {packages[GuestPackageRole.KernelImage].Package.Name}");
            var espModules = PackageRoot.EspModules.Select(m =>
            {
                string path = Path.Combine(layout.PackageRoot, PackageRoot.EspModule(packages.KernelRelease, m));
                if (!File.Exists(path)) throw new ToolException($"{path} is missing from the extracted {packages[GuestPackageRole.KernelImage].Package.Name}");
                return ("lib/modules/" + Path.GetFileName(m), File.ReadAllBytes(path), false);
            });
            var programs = GuestPrograms.Collect(layout.Vigild).Concat(testPrograms)
                .Append(("lib/modules/efivarfs.ko", File.ReadAllBytes(efivarfs), false)).Concat(espModules)
                .Concat(TestPolicies(layout)).ToArray();
            var written = new List<(string Path, long CpioBytes)>();
            var current = new List<string>();
            foreach (string scenario in scenarios)
            {
                byte[] script = File.ReadAllBytes(Path.Combine(layout.ScenarioSources, scenario + ".sh"));
                string path = layout.Initrd(scenario);
                string stamp = path + ".inputs";
                string digest = InitramfsDigest(busyboxBytes, init, scenario, script, moduleBytes, programs);
                if (InputStamp.IsCurrent(stamp, digest, path))
                {
                    current.Add(scenario);
                    written.Add((path, -1));
                    continue;
                }
                var content = new InitramfsContent(busyboxBytes, applets.Value, init, scenario, script, moduleBytes, programs);
                byte[] cpio = Initramfs.Compose(content).ToArray();
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                WriteAtomically(path, Initramfs.Gzip(cpio));
                InputStamp.Record(stamp, digest);
                written.Add((path, cpio.Length));
            }
            if (current.Count > 0) log.WriteLine($"guest: initramfs up to date (same contents): {string.Join(", ", current)}");
            return written;
        });

        log.WriteLine($"guest: kernel {packages.KernelRelease} ({packages[GuestPackageRole.KernelImage].Package.Version}): {Show(kernel)}, {new FileInfo(kernel).Length:N0} bytes");
        foreach (BuiltModule module in modules) log.WriteLine($"guest: module {module.Name}: {Show(module.KoPath)}, {new FileInfo(module.KoPath).Length:N0} bytes");
        foreach (var (path, cpioBytes) in initrds)
        {
            log.WriteLine($"guest: initramfs {Show(path)}: {new FileInfo(path).Length:N0} bytes" + (cpioBytes >= 0 ? $" (cpio {cpioBytes:N0} bytes)" : ""));
        }
        log.WriteLine($"guest: done in {total.Elapsed.TotalSeconds:F1} s ({string.Join(", ", timings.Select(t => $"{t.Stage} {t.Seconds:F1} s"))})");
    }

    /// <summary>tests/guest/policies/*.policy compiled (`vigil policy compile`) for `vigild protect --policy` in the guest.</summary>
    private static IEnumerable<(string Path, byte[] Bytes, bool Executable)> TestPolicies(GuestLayout layout)
    {
        if (!Directory.Exists(layout.PolicySources)) yield break;
        foreach (string source in Directory.GetFiles(layout.PolicySources, "*.policy").Order(StringComparer.Ordinal))
        {
            yield return ("etc/vigil/policies/" + Path.GetFileNameWithoutExtension(source) + ".pol", Images.EspLayout.CompilePolicy(source), false);
        }
    }

    /// <summary>
    /// Everything an initramfs is made of, and the tool that lays it out (its module version changes with its
    /// code, so a change to <see cref="Initramfs"/> rebuilds every archive).
    /// </summary>
    private static string InitramfsDigest(byte[] busybox, byte[] init, string scenario, byte[] script,
        IReadOnlyList<(string Name, byte[] Ko)> modules, IReadOnlyList<(string Path, byte[] Bytes, bool Executable)> programs)
    {
        var stamp = new InputStamp()
            .Add("tool", typeof(Initramfs).Assembly.ManifestModule.ModuleVersionId.ToString())
            .Add("busybox", busybox).Add("init", init).Add("scenario", scenario).Add("script", script);
        foreach (var (name, ko) in modules) stamp.Add("module " + name, ko);
        foreach (var (path, bytes, executable) in programs) stamp.Add((executable ? "program " : "file ") + path, bytes);
        return stamp.Finish();
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
