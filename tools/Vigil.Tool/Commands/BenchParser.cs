using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;

namespace Vigil.Tool.Commands;

/// <summary>One round-trip measurement: cycles (QEMU -icount: guest instructions) of one operation.</summary>
public sealed record RoundTrip(string Phase, string Op, long Min, long Median);

/// <summary>One timed part of the workload: count operations in Ns of CLOCK_MONOTONIC and Cycles of the TSC.</summary>
public sealed record WorkloadItem(string Phase, string Op, long Count, long Ns, long Cycles);

/// <summary>Exits per second of one CPU for one reason during an idle period (the cost of reading the counters taken off).</summary>
public sealed record IdleRate(string Phase, int Cpu, string Reason, double PerSecond);

/// <summary>Exits (summed over CPUs, per reason) counted between two status reads of a phase's step.</summary>
public sealed record StepExits(string Phase, string Step, Dictionary<string, long> Exits);

/// <summary>What one boot of the bench scenario measured.</summary>
public sealed record BenchRun(
    string Label, string Emulator, bool Hypervisor, string EmulatorDescription, int Cpus, bool Complete, string? Problem,
    double? WallToBanner, double? WallToLinux, double? WallToInit, double? UptimeAtInit, long? TscAtScenario, double WallTotal,
    long? ReservedKiB, long? PoolUsedKiB, List<RoundTrip> RoundTrips, List<WorkloadItem> Workload, List<IdleRate> Idle,
    Dictionary<string, double> IdleSeconds, List<StepExits> Steps);

/// <summary>The whole run.</summary>
public sealed record BenchResult(DateTime Date, bool Quick, string Host, int Cpus, Dictionary<string, long> Images, List<BenchRun> Runs);

/// <summary>Reads the bench scenario's lines (tests/guest/scenarios/bench.sh) out of a transcript.</summary>
public static partial class BenchParser
{
    [GeneratedRegex(@"^VIGIL-BENCH: roundtrip op=(\S+) samples=\d+ min=(\d+) median=(\d+)")]
    private static partial Regex RoundTripLine();

    [GeneratedRegex(@"^VIGIL-BENCH: workload op=(\S+) count=(\d+) ns=(\d+) cycles=(\d+)")]
    private static partial Regex WorkloadLine();

    [GeneratedRegex(@"^VIGIL-GUEST: bench-status (\S+): vigild: cpu (\d+) \(apic \d+\): \S+, (\d+) exits(?:: (.*))?$")]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"^VIGIL-GUEST: bench-idle (\S+)-(start|end) uptime=([\d.]+)")]
    private static partial Regex IdleLine();

    [GeneratedRegex(@"^VIGIL-GUEST: init started uptime=([\d.]+)")]
    private static partial Regex InitLine();

    [GeneratedRegex(@"^VIGIL-GUEST: bench tsc-at-scenario=(\d+)")]
    private static partial Regex TscLine();

    [GeneratedRegex(@"(\d+) KiB reserved at")]
    private static partial Regex ReservedLine();

    [GeneratedRegex(@"pool used (\d+) KiB")]
    private static partial Regex PoolLine();

    public static BenchRun Parse(string label, string emulator, bool hypervisor, string description, int cpus, Transcript t)
    {
        string phase = "plain";
        var roundTrips = new List<RoundTrip>();
        var workload = new List<WorkloadItem>();
        // tag -> cpu -> reason -> count ("total" for the sum).
        var status = new Dictionary<string, Dictionary<int, Dictionary<string, long>>>();
        var idleUptime = new Dictionary<string, double>();
        double? uptimeAtInit = null;
        long? tscAtScenario = null;
        long? reserved = null, pool = null;
        string? problem = null;
        foreach (SerialLine line in t.Lines)
        {
            string text = line.Text.TrimEnd('\r');
            if (line.Port == EmulatorSetup.Com2)
            {
                if (pool == null && PoolLine().Match(text) is { Success: true } pm) pool = Long(pm.Groups[1].Value);
                if (reserved == null && ReservedLine().Match(text) is { Success: true } rm) reserved = Long(rm.Groups[1].Value);
                if (text.Contains("the guest stops on this CPU", StringComparison.Ordinal)) problem ??= "hypervisor: " + text.Trim();
                continue;
            }
            if (text.StartsWith("VIGIL-GUEST: bench-phase ", StringComparison.Ordinal)) phase = text["VIGIL-GUEST: bench-phase ".Length..].Trim();
            else if (RoundTripLine().Match(text) is { Success: true } r)
            {
                roundTrips.Add(new RoundTrip(phase, r.Groups[1].Value, Long(r.Groups[2].Value), Long(r.Groups[3].Value)));
            }
            else if (WorkloadLine().Match(text) is { Success: true } w)
            {
                workload.Add(new WorkloadItem(phase, w.Groups[1].Value, Long(w.Groups[2].Value), Long(w.Groups[3].Value), Long(w.Groups[4].Value)));
            }
            else if (StatusLine().Match(text) is { Success: true } s)
            {
                var cpusOfTag = status.TryGetValue(s.Groups[1].Value, out var c) ? c : status[s.Groups[1].Value] = [];
                var reasons = new Dictionary<string, long> { ["total"] = Long(s.Groups[3].Value) };
                if (s.Groups[4].Success)
                {
                    foreach (string part in s.Groups[4].Value.Split(", ", StringSplitOptions.RemoveEmptyEntries))
                    {
                        int space = part.LastIndexOf(' ');
                        if (space > 0 && long.TryParse(part[(space + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out long n)) reasons[part[..space]] = n;
                    }
                }
                cpusOfTag[int.Parse(s.Groups[2].Value, CultureInfo.InvariantCulture)] = reasons;
            }
            else if (IdleLine().Match(text) is { Success: true } i)
            {
                idleUptime[i.Groups[1].Value + "-" + i.Groups[2].Value] = double.Parse(i.Groups[3].Value, CultureInfo.InvariantCulture);
            }
            else if (InitLine().Match(text) is { Success: true } init) uptimeAtInit ??= double.Parse(init.Groups[1].Value, CultureInfo.InvariantCulture);
            else if (TscLine().Match(text) is { Success: true } tsc) tscAtScenario ??= Long(tsc.Groups[1].Value);
            else if (text.Contains("detected stalls on CPUs", StringComparison.Ordinal) || text.Contains("Kernel panic", StringComparison.Ordinal)) problem ??= "guest: " + text.Trim();
            else if (text.Contains("VIGIL-BENCH: workload FAILED", StringComparison.Ordinal)) problem ??= text;
        }

        // Idle: (end - start2) - (start2 - start) per CPU and reason, over the uptime between the marks.
        var idle = new List<IdleRate>();
        var idleSeconds = new Dictionary<string, double>();
        foreach (string p in new[] { "plain", "guarded" })
        {
            if (!status.TryGetValue($"{p}-idle-start", out var a) || !status.TryGetValue($"{p}-idle-start2", out var b)
                || !status.TryGetValue($"{p}-idle-end", out var e)
                || !idleUptime.TryGetValue($"{p}-start", out double u0) || !idleUptime.TryGetValue($"{p}-end", out double u1) || u1 <= u0)
            {
                continue;
            }
            idleSeconds[p] = u1 - u0;
            foreach (int cpu in e.Keys.Order())
            {
                if (!a.TryGetValue(cpu, out var ca) || !b.TryGetValue(cpu, out var cb)) continue;
                foreach (var (reason, end) in e[cpu])
                {
                    long readCost = cb.GetValueOrDefault(reason) - ca.GetValueOrDefault(reason);
                    long exits = end - cb.GetValueOrDefault(reason) - readCost;
                    idle.Add(new IdleRate(p, cpu, reason, Math.Max(0, exits) / (u1 - u0)));
                }
            }
        }

        // Steps: exits summed over CPUs between TAG-start and TAG-end.
        var steps = new List<StepExits>();
        foreach (string startTag in status.Keys.Where(k => k.EndsWith("-start", StringComparison.Ordinal) && !k.Contains("-idle-", StringComparison.Ordinal)))
        {
            string stem = startTag[..^"-start".Length];
            if (!status.TryGetValue(stem + "-end", out var end)) continue;
            var sums = new Dictionary<string, long>();
            foreach (var (cpu, reasons) in end)
            {
                status[startTag].TryGetValue(cpu, out var begin);
                foreach (var (reason, n) in reasons) sums[reason] = sums.GetValueOrDefault(reason) + n - (begin?.GetValueOrDefault(reason) ?? 0);
            }
            int dash = stem.IndexOf('-');
            steps.Add(new StepExits(stem[..dash], stem[(dash + 1)..], sums));
        }

        bool done = t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: bench done");
        if (!done) problem ??= t.TimedOut ? "timed out before 'bench done'" : "ended before 'bench done'";
        if (hypervisor && !t.Contains(EmulatorSetup.Com2, "CPUs run under the hypervisor")) problem ??= "the hypervisor did not report running";
        if (hypervisor && !t.Contains(EmulatorSetup.Com1, "bench vigil=yes")) problem ??= "the guest did not see Vigil";
        return new BenchRun(label, emulator, hypervisor, description, cpus, problem == null, problem,
            t.FirstSeen(EmulatorSetup.Com2, "vigil: Vigil "), t.FirstSeen(EmulatorSetup.Com1, "Linux version"),
            t.FirstSeen(EmulatorSetup.Com1, "VIGIL-GUEST: init started"), uptimeAtInit, tscAtScenario, t.Seconds,
            reserved, pool, roundTrips, workload, idle, idleSeconds, steps);
    }

    private static long Long(string s) => long.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture);
}
