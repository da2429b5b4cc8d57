using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil bench`: Vigil against no hypervisor, measured in one run on the same emulator and guest (issue 12),
/// never asserted. Each emulator boots the `bench` scenario (tests/guest/scenarios/bench.sh, its program
/// tests/guest/programs/benchload.c) twice: under Vigil, and with `hypervisor = off` in vigil.conf. QEMU runs
/// with `-icount shift=0`: the guest's TSC then counts guest instructions, so the round trips and the workload
/// are instruction counts that do not depend on the host's load. Out: out/bench/report.md, report.json and
/// ratios.svg; a full run (not --quick) also writes docs/benchmarks.md and docs/benchmarks.svg.
/// </summary>
internal static partial class BenchCommand
{
    private sealed record Sizes(int IdleSeconds, int Scale, int Samples, int Toggles);

    public static int Run(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        bool quick = options.Flag("--quick");
        bool bochs = !quick && !options.Flag("--no-bochs");
        int cpus = options.OptionalInt("--cpus", 2);
        int? idle = options.Optional("--idle") is string s ? int.Parse(s, CultureInfo.InvariantCulture) : null;
        options.EnsureAllUsed();
        if (cpus < 1 || cpus > 8) throw new UsageException("--cpus must be 1..8");

        var qemuSizes = quick ? new Sizes(idle ?? 5, 1, 200, 2) : new Sizes(idle ?? 60, 5, 2000, 20);
        // Bochs runs some 20 million guest instructions per host second: the same idle minute, a smaller workload.
        var bochsSizes = new Sizes(idle ?? 60, 1, 200, 4);
        string outDir = Path.Combine(root, "out", "bench");
        Directory.CreateDirectory(outDir);

        // QEMU 7.2's -icount hangs a 2-CPU guest at the AP's start-up (seen without Vigil): the instruction counts
        // come from a 1-CPU boot of their own (no idle periods: an idle guest's clock is not instructions).
        var icountSizes = qemuSizes with { IdleSeconds = 0 };
        var runs = new List<BenchRun>();
        foreach (bool hypervisor in new[] { false, true })
        {
            runs.Add(Boot(root, outDir, "qemu-icount", EspTarget.Qemu, Emulator.QemuTcg, hypervisor, 1, icountSizes));
        }
        foreach (bool hypervisor in new[] { false, true })
        {
            runs.Add(Boot(root, outDir, "qemu", EspTarget.Qemu, Emulator.QemuTcg, hypervisor, cpus, qemuSizes));
        }
        if (bochs)
        {
            foreach (bool hypervisor in new[] { false, true })
            {
                runs.Add(Boot(root, outDir, "bochs", EspTarget.Bochs, Emulator.Bochs, hypervisor, cpus, bochsSizes));
            }
        }

        var images = Directory.Exists(Path.Combine(root, "out", "efi"))
            ? Directory.GetFiles(Path.Combine(root, "out", "efi"), "*.efi").Order(StringComparer.Ordinal)
                .ToDictionary(f => Path.GetFileName(f), f => new FileInfo(f).Length)
            : new Dictionary<string, long>();
        var result = new BenchResult(DateTime.UtcNow, quick, HostDescription(), cpus, images, runs);

        string md = BenchReport.Markdown(result, "ratios.svg");
        File.WriteAllText(Path.Combine(outDir, "report.md"), md);
        File.WriteAllText(Path.Combine(outDir, "ratios.svg"), BenchReport.Svg(result));
        File.WriteAllText(Path.Combine(outDir, "report.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(md);
        Console.WriteLine($"bench: report in {Path.Combine(outDir, "report.md")} (and report.json, ratios.svg)");
        if (!quick)
        {
            string docs = Path.Combine(root, "docs");
            File.WriteAllText(Path.Combine(docs, "benchmarks.md"), BenchReport.Markdown(result, "benchmarks.svg"));
            File.WriteAllText(Path.Combine(docs, "benchmarks.svg"), BenchReport.Svg(result));
            Console.WriteLine($"bench: a full run: docs/benchmarks.md and docs/benchmarks.svg rewritten");
        }
        bool complete = runs.All(r => r.Complete);
        if (!complete) Console.WriteLine("bench: some boots did not complete (see the report): exit 1");
        return complete ? 0 : 1;
    }

    private static string HostDescription()
    {
        string cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException)
        {
        }
        string qemu = FirstLine("qemu-system-x86_64", "--version");
        string bochs = "Bochs " + FirstLine("dpkg-query", "-W", "-f=${Version}", "bochs");
        return $"{Environment.ProcessorCount} host CPUs ({cpu}); {qemu}; {bochs}";
    }

    private static string FirstLine(string program, params string[] args)
    {
        try
        {
            ProcessResult r = HostProcess.Run(program, args);
            return r.ExitCode == 0 ? r.StandardOutput.Split('\n')[0].Trim() : program + " (unknown)";
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or ToolException)
        {
            return program + " (not found)";
        }
    }

    private static BenchRun Boot(string root, string outDir, string name, EspTarget target, Emulator emulator, bool hypervisor, int cpus, Sizes sizes)
    {
        string label = name + (hypervisor ? "-on" : "-off");
        string work = Path.Combine(outDir, label);
        string disk = Path.Combine(work, "disk.img");
        string parameters = FormattableString.Invariant($" bench_idle={sizes.IdleSeconds} bench_scale={sizes.Scale} bench_samples={sizes.Samples} bench_toggles={sizes.Toggles}");
        string config = EspLayout.DefaultConfig(target, "bench").Replace(EspLayout.GuestOptions, EspLayout.GuestOptions + parameters, StringComparison.Ordinal)
            + (hypervisor ? "" : "hypervisor = off\n");
        new EspLayout { Root = root, Target = target, Scenario = "bench", Config = config }.Build(disk, Path.Combine(work, "esp"));
        bool icount = name == "qemu-icount";
        var extra = icount ? new[] { "-icount", "shift=0" } : Array.Empty<string>();
        var command = EmulatorSetup.Create(root, new EmulatorOptions { Emulator = emulator, Disk = disk, WorkDirectory = work, Cpus = cpus, ExtraArguments = extra });
        Console.WriteLine($"bench: {label}: booting ({cpus} CPUs, idle {sizes.IdleSeconds} s, scale {sizes.Scale}){(extra.Length > 0 ? " with -icount shift=0" : "")}");
        // Stops at the power-off, and at the first sign the run will not get there (a panic, a CPU the
        // hypervisor stopped, an RCU stall): the report then says the boot did not complete.
        Transcript t = EmulatorRun.Run(command, TimeSpan.FromMinutes(emulator == Emulator.Bochs ? 90 : 25),
            stopWhen: x => x.Contains(EmulatorSetup.Com1, "reboot: Power down") || x.Contains(EmulatorSetup.Com1, "Kernel panic")
                || x.Contains(EmulatorSetup.Com1, "detected stalls on CPUs") || x.Contains(EmulatorSetup.Com2, "the guest stops on this CPU"));
        t.Save(Path.Combine(work, "transcript.txt"));
        BenchRun run = BenchParser.Parse(label, name, hypervisor, icount ? "QEMU TCG (AMD SVM), 1 CPU, -icount shift=0" : emulator == Emulator.QemuTcg ? "QEMU TCG (AMD SVM)" : "Bochs (Intel VMX)", cpus, t);
        Console.WriteLine($"bench: {label}: {(run.Complete ? "complete" : "INCOMPLETE: " + run.Problem)} after {t.Seconds:F0} s");
        return run;
    }
}
