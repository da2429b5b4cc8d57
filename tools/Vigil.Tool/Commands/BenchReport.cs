using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text;

namespace Vigil.Tool.Commands;

/// <summary>The bench result as a page a person reads at a glance (Markdown) and a chart of the ratios (SVG).</summary>
public static class BenchReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Markdown(BenchResult r, string chart)
    {
        var md = new StringBuilder();
        md.AppendLine("# Vigil benchmarks");
        md.AppendLine();
        md.AppendLine($"Written by `vigil bench{(r.Quick ? " --quick" : "")}` (`make bench`) on {r.Date.ToString("yyyy-MM-dd HH:mm", Inv)} UTC; not edited by hand.");
        md.AppendLine($"Machine: {r.Host}. Guest: {r.Cpus} CPUs, the `bench` scenario (tests/guest/scenarios/bench.sh, tests/guest/programs/benchload.c).");
        md.AppendLine("Each emulator boots the same guest twice in this run: with Vigil (`on`; `guarded` after `vigild protect --lock`) and with `hypervisor = off` in vigil.conf (`off`).");
        md.AppendLine("QEMU boots twice more per setting: with 1 CPU and `-icount shift=0` (no idle periods), where the guest's TSC counts guest instructions: those cycle figures are");
        md.AppendLine("instruction counts that do not depend on the host's load, i.e. what the hypervisor executes; they leave out what an exit costs the hardware itself (on a real CPU the VM exit/entry");
        md.AppendLine("latency, cache and TLB effects). Without -icount QEMU's TSC follows the host's clock, and the ratios are dominated by TCG's software emulation of nested paging");
        md.AppendLine("(every guest TLB miss walks two sets of tables in C), which real hardware does in its page walker: read those as the emulator's cost, not Vigil's. Bochs' TSC follows its instruction count.");
        if (r.Quick) md.AppendLine("**Quick mode** (CI): short idle periods and a small workload; the figures are noisy, only completion matters.");
        md.AppendLine();
        md.AppendLine($"![ratios]({chart})");
        md.AppendLine();
        foreach (var run in r.Runs.Where(x => !x.Complete)) md.AppendLine($"**{run.Label} did not complete**: {run.Problem} (out/bench/{run.Label}/transcript.txt).\n");

        md.AppendLine("## Against the goals (issue 12)");
        md.AppendLine();
        md.AppendLine("| figure | goal | " + string.Join(" | ", Emulators(r).Select(e => Describe(r, e))) + " |");
        md.AppendLine("|---|---|" + string.Concat(Emulators(r).Select(_ => "---|")));
        Row(md, r, "idle exits per second per CPU, unguarded (worst CPU)", "≤ 1", e => Fmt(WorstIdle(r, e, "plain")));
        Row(md, r, "idle exits per second per CPU, guarded (worst CPU)", "≤ 1", e => Fmt(WorstIdle(r, e, "guarded")));
        Row(md, r, "CPUID round trip, hypervisor instructions (on − off, median)", "≤ 400", e => FmtL(Hv(r, e, "plain", "cpuid")));
        Row(md, r, "VMCALL round trip (Status, counters copied out), instructions (median − RDTSCP pair)", "-", e => FmtL(Vmcall(r, e, "plain")));
        Row(md, r, "workload slowdown, Vigil on (total cycles on/off − 1)", "≤ 1 %", e => Pct(Ratio(r, e, "plain", "total") - 1));
        Row(md, r, "workload slowdown, guarded", "≤ 1 %", e => Pct(Ratio(r, e, "guarded", "total") - 1));
        Row(md, r, "Vigil's share of boot-to-scenario (TSC from reset; icount: instructions)", "≤ 2 %", e => Pct(Run(r, e, true)?.TscAtScenario is long on && TscDelta(r, e) is long d && on > 0 ? (double)d / on : null));
        Row(md, r, "Vigil's share of boot-to-init (wall)", "≤ 2 %", e => Pct(BootShare(r, e)));
        md.AppendLine();

        foreach (string e in Emulators(r))
        {
            BenchRun? on = Run(r, e, true), off = Run(r, e, false);
            md.AppendLine($"## {Describe(r, e)}");
            md.AppendLine();
            md.AppendLine("### Idle: exits per second per CPU, per reason");
            md.AppendLine();
            if (on == null || on.Idle.Count == 0) md.AppendLine("(no idle figures in this boot)");
            else
            {
                md.AppendLine($"Guest idle at a shell for {string.Join(", ", on.IdleSeconds.Select(kv => $"{kv.Value.ToString("F1", Inv)} s ({kv.Key})"))} of its own time; `vigild status` before and after, the cost of one status read taken off. Without the hypervisor there are no exits.");
                md.AppendLine();
                md.AppendLine("| phase | CPU | total | by reason |");
                md.AppendLine("|---|---|---|---|");
                foreach (var g in on.Idle.GroupBy(i => (i.Phase, i.Cpu)))
                {
                    double total = g.Where(i => i.Reason == "total").Sum(i => i.PerSecond);
                    string reasons = string.Join(", ", g.Where(i => i.Reason != "total" && i.PerSecond > 0).OrderByDescending(i => i.PerSecond).Select(i => $"{i.Reason} {i.PerSecond.ToString("F2", Inv)}"));
                    md.AppendLine($"| {g.Key.Phase} | {g.Key.Cpu} | {total.ToString("F2", Inv)} | {(reasons.Length == 0 ? "-" : reasons)} |");
                }
            }
            md.AppendLine();

            md.AppendLine("### Exit round trips (cycles on CPU 0, median of the samples; min in brackets)");
            md.AppendLine();
            md.AppendLine("| operation | off | on | guarded | hypervisor's share (on − off) |");
            md.AppendLine("|---|---|---|---|---|");
            foreach (string op in new[] { "rdtscp-pair", "cpuid", "vmcall" })
            {
                RoundTrip? a = Trip(off, "plain", op), b = Trip(on, "plain", op), c = Trip(on, "guarded", op);
                string share = op == "vmcall" ? FmtL(Vmcall(r, e, "plain")) + " (against the RDTSCP pair: VMCALL faults without a hypervisor)" : FmtL(Hv(r, e, "plain", op));
                md.AppendLine($"| {op} | {T(a)} | {T(b)} | {T(c)} | {share} |");
            }
            md.AppendLine();

            WorkloadItem? tOff = Work(off, "plain", "static-key-toggle"), tOn = Work(on, "plain", "static-key-toggle"), tG = Work(on, "guarded", "static-key-toggle");
            if (tOff != null || tOn != null)
            {
                md.AppendLine("### Allowed guarded-page writes: static-key flips (sysctl; the kernel patches its own text)");
                md.AppendLine();
                md.AppendLine("| | off | on | guarded |");
                md.AppendLine("|---|---|---|---|");
                md.AppendLine($"| cycles per flip | {PerOp(tOff)} | {PerOp(tOn)} | {PerOp(tG)} |");
                long? exitsOn = StepTotal(on, "plain", "toggle"), exitsG = StepTotal(on, "guarded", "toggle");
                md.AppendLine($"| exits per flip (all CPUs) | 0 | {PerFlip(exitsOn, tOn)} | {PerFlip(exitsG, tG)} |");
                if (tG != null && tOn != null && exitsG is long eg && exitsOn is long eo && eg > eo)
                {
                    double perExit = (double)(tG.Cycles - tOn.Cycles) / (eg - eo);
                    md.AppendLine();
                    md.AppendLine($"Cycles the guard adds per extra exit: {perExit.ToString("F0", Inv)} (guarded − on cycles over guarded − on exits; the exits on other CPUs, e.g. for the patching's IPIs, are in both).");
                }
                md.AppendLine();
            }

            md.AppendLine("### Workload (cycles per operation; ratio against off)");
            md.AppendLine();
            md.AppendLine("| operation | count | off | on | guarded | on/off | guarded/off | exits on (guarded) |");
            md.AppendLine("|---|---|---|---|---|---|---|---|");
            foreach (string op in (off ?? on)?.Workload.Where(w => w.Op != "static-key-toggle").Select(w => w.Op).Distinct() ?? [])
            {
                WorkloadItem? a = Work(off, "plain", op), b = Work(on, "plain", op), c = Work(on, "guarded", op);
                string exits = op == "total" ? $"{FmtL(StepTotal(on, "plain", "workload"))} ({FmtL(StepTotal(on, "guarded", "workload"))})" : "";
                md.AppendLine($"| {op} | {a?.Count ?? b?.Count} | {PerOp(a)} | {PerOp(b)} | {PerOp(c)} | {Rat(Ratio(r, e, "plain", op))} | {Rat(Ratio(r, e, "guarded", op))} | {exits} |");
            }
            md.AppendLine();

            md.AppendLine("### Boot and memory");
            md.AppendLine();
            md.AppendLine("| | off | on |");
            md.AppendLine("|---|---|---|");
            md.AppendLine($"| wall seconds to vigil.efi's banner | {S(off?.WallToBanner)} | {S(on?.WallToBanner)} |");
            md.AppendLine($"| wall seconds to the Linux banner | {S(off?.WallToLinux)} | {S(on?.WallToLinux)} |");
            md.AppendLine($"| wall seconds to init (boot-to-init) | {S(off?.WallToInit)} | {S(on?.WallToInit)} |");
            md.AppendLine($"| kernel's own uptime at init (guest clock) | {S(off?.UptimeAtInit)} | {S(on?.UptimeAtInit)} |");
            md.AppendLine($"| TSC when the scenario starts (from reset) | {FmtL(off?.TscAtScenario)} | {FmtL(on?.TscAtScenario)} |");
            md.AppendLine($"| hypervisor memory reserved (KiB; per CPU) | - | {FmtL(on?.ReservedKiB)}{(on?.ReservedKiB is long k ? $"; {k / Math.Max(1, on.Cpus)}" : "")} |");
            md.AppendLine($"| of it used by the hypervisor's pool at launch (KiB; per CPU) | - | {FmtL(on?.PoolUsedKiB)}{(on?.PoolUsedKiB is long u ? $"; {u / Math.Max(1, on.Cpus)}" : "")} |");
            md.AppendLine();
        }

        md.AppendLine("## Images");
        md.AppendLine();
        md.AppendLine("| file | bytes |");
        md.AppendLine("|---|---|");
        foreach (var (name, size) in r.Images) md.AppendLine($"| {name} | {size.ToString("N0", Inv)} |");
        md.AppendLine();
        md.AppendLine("The raw figures: out/bench/report.json; each boot's transcript: out/bench/LABEL/transcript.txt.");
        return md.ToString();
    }

    /// <summary>A horizontal bar chart of the ratios against `off` (1.0 = no cost).</summary>
    public static string Svg(BenchResult r)
    {
        var bars = new List<(string Label, double Value)>();
        foreach (string e in Emulators(r))
        {
            BenchRun? off = Run(r, e, false);
            foreach (string op in off?.Workload.Where(w => w.Op != "static-key-toggle").Select(w => w.Op).Distinct() ?? [])
            {
                if (Ratio(r, e, "plain", op) is double a) bars.Add(($"{e} {op} on/off", a));
                if (Ratio(r, e, "guarded", op) is double b) bars.Add(($"{e} {op} guarded/off", b));
            }
            BenchRun? on = Run(r, e, true);
            if (on?.WallToInit is double i1 && off?.WallToInit is double i0 && i0 > 0) bars.Add(($"{e} boot-to-init on/off", i1 / i0));
        }
        const int left = 290, width = 420, rowHeight = 18, top = 40;
        double max = Math.Max(1.5, bars.Count == 0 ? 1.5 : bars.Max(b => b.Value) * 1.05);
        int height = top + (bars.Count * rowHeight) + 30;
        var svg = new StringBuilder();
        svg.AppendLine(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{left + width + 70}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        svg.AppendLine(Inv, $"<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Vigil: cost against no hypervisor (ratio, 1.0 = none), {r.Date:yyyy-MM-dd}{(r.Quick ? ", quick mode" : "")}</text>");
        double x1 = left + (width / max);
        svg.AppendLine(Inv, $"<line x1=\"{x1:F1}\" y1=\"{top - 5}\" x2=\"{x1:F1}\" y2=\"{height - 25}\" stroke=\"#444\" stroke-dasharray=\"4 3\"/>");
        svg.AppendLine(Inv, $"<text x=\"{x1 - 8:F1}\" y=\"{height - 10}\">1.0</text>");
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, value) = bars[i];
            int y = top + (i * rowHeight);
            double w = width * value / max;
            string color = label.Contains("guarded", StringComparison.Ordinal) ? "#c0504d" : label.Contains("boot", StringComparison.Ordinal) ? "#9bbb59" : "#4f81bd";
            svg.AppendLine(Inv, $"<text x=\"{left - 6}\" y=\"{y + 13}\" text-anchor=\"end\">{WebUtility.HtmlEncode(label)}</text>");
            svg.AppendLine(Inv, $"<rect x=\"{left}\" y=\"{y + 2}\" width=\"{w:F1}\" height=\"{rowHeight - 4}\" fill=\"{color}\"/>");
            svg.AppendLine(Inv, $"<text x=\"{left + w + 4:F1}\" y=\"{y + 13}\">{value:F3}</text>");
        }
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static IEnumerable<string> Emulators(BenchResult r) => r.Runs.Select(x => x.Emulator).Distinct();

    private static string Describe(BenchResult r, string e) => r.Runs.First(x => x.Emulator == e).EmulatorDescription;

    private static BenchRun? Run(BenchResult r, string e, bool hypervisor) => r.Runs.FirstOrDefault(x => x.Emulator == e && x.Hypervisor == hypervisor);

    private static RoundTrip? Trip(BenchRun? run, string phase, string op) => run?.RoundTrips.FirstOrDefault(t => t.Phase == phase && t.Op == op);

    private static WorkloadItem? Work(BenchRun? run, string phase, string op) => run?.Workload.FirstOrDefault(t => t.Phase == phase && t.Op == op);

    private static long? StepTotal(BenchRun? run, string phase, string step) => run?.Steps.FirstOrDefault(s => s.Phase == phase && s.Step == step)?.Exits.GetValueOrDefault("total");

    public static double? WorstIdle(BenchResult r, string e, string phase)
    {
        var rates = Run(r, e, true)?.Idle.Where(i => i.Phase == phase && i.Reason == "total").ToList();
        return rates == null || rates.Count == 0 ? null : rates.Max(i => i.PerSecond);
    }

    public static long? Hv(BenchResult r, string e, string phase, string op)
        => Trip(Run(r, e, true), phase, op) is RoundTrip on && Trip(Run(r, e, false), "plain", op) is RoundTrip off ? on.Median - off.Median : null;

    public static long? Vmcall(BenchResult r, string e, string phase)
        => Trip(Run(r, e, true), phase, "vmcall") is RoundTrip v && Trip(Run(r, e, true), phase, "rdtscp-pair") is RoundTrip p ? v.Median - p.Median : null;

    public static double? Ratio(BenchResult r, string e, string phase, string op)
        => Work(Run(r, e, true), phase, op) is WorkloadItem on && Work(Run(r, e, false), "plain", op) is WorkloadItem off && off.Cycles > 0 && off.Count > 0
            ? ((double)on.Cycles / on.Count) / ((double)off.Cycles / off.Count) : null;

    public static long? TscDelta(BenchResult r, string e)
        => Run(r, e, true)?.TscAtScenario is long on && Run(r, e, false)?.TscAtScenario is long off ? on - off : null;

    public static double? BootShare(BenchResult r, string e)
        => Run(r, e, true)?.WallToInit is double on && Run(r, e, false)?.WallToInit is double off && on > 0 ? (on - off) / on : null;

    private static void Row(StringBuilder md, BenchResult r, string name, string goal, Func<string, string> value)
        => md.AppendLine($"| {name} | {goal} | {string.Join(" | ", Emulators(r).Select(value))} |");

    private static string Fmt(double? v) => v is double d ? d.ToString("F2", Inv) : "-";

    private static string FmtL(long? v) => v is long l ? l.ToString("N0", Inv) : "-";

    private static string Pct(double? v) => v is double d ? (d * 100).ToString("+0.00;-0.00", Inv) + " %" : "-";

    private static string Rat(double? v) => v is double d ? d.ToString("F3", Inv) : "-";

    private static string S(double? v) => v is double d ? d.ToString("F1", Inv) : "-";

    private static string T(RoundTrip? t) => t == null ? "-" : $"{t.Median.ToString("N0", Inv)} ({t.Min.ToString("N0", Inv)})";

    private static string PerOp(WorkloadItem? w) => w == null || w.Count == 0 ? "-" : ((double)w.Cycles / w.Count).ToString("N0", Inv);

    private static string PerFlip(long? exits, WorkloadItem? w) => exits is long e && w != null && w.Count > 0 ? ((double)e / w.Count).ToString("F1", Inv) : "-";
}
