using System.IO;
using System.Linq;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Tool.Emulators;
using Vigil.Tool.Logs;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// What the log UART (COM2) of a smoke boot must carry besides text: the hypervisor's binary records,
/// decoded with `vigil log`'s decoder, intact (no corrupt or cut-off frame, no gap in any CPU's sequence),
/// one "cpu virtualized" per CPU, the Status hypercall answered and, where a read of the hidden memory
/// exits (SVM: nested page fault; VMX maps a decoy page instead), the hvpeek module's reads reported.
/// No error record.
/// </summary>
internal static class BinaryLogChecks
{
    public static void RecordsArriveIntact(EmulatorBoot boot, int cpus, Vendor vendor, ITestOutputHelper output)
    {
        Assert.False(boot.Transcript.TimedOut, $"the boot did not finish; see {boot.TranscriptPath}");
        string capture = Path.Combine(boot.Root, "out", "tests", boot.Name, EmulatorSetup.Com2 + ".log");
        LogDecoding log = LogDecoder.Decode(File.ReadAllBytes(capture));
        var records = log.Entries.Where(e => e.Kind == LogEntryKind.Record).Select(e => e.Record).ToList();
        output.WriteLine($"{capture}: {log.Records} records, {log.TextLines} text lines, {log.CorruptFrames} corrupt frames");
        foreach (var group in records.GroupBy(r => r.Event).OrderBy(g => g.Key)) output.WriteLine($"  {group.Key}: {group.Count()}");
        foreach (LogEntry entry in log.Entries.Where(e => e.Kind == LogEntryKind.Record && e.Record.Event != LogEvent.HiddenMemoryRead)) output.WriteLine("  " + entry.Text);

        Assert.Equal(0, log.CorruptFrames);
        Assert.DoesNotContain(log.Entries, e => e.Kind is LogEntryKind.Incomplete or LogEntryKind.Missing);
        Assert.Empty(log.Dropped);
        Assert.Single(records, r => r.Event == LogEvent.HypervisorStarted && r.Arg0 == (ulong)cpus);
        for (int cpu = 0; cpu < cpus; cpu++)
        {
            Assert.True(records.Count(r => r.Event == LogEvent.CpuVirtualized && r.Cpu == cpu && r.Arg1 == (ulong)vendor) == 1,
                $"no single 'cpu virtualized' record from cpu {cpu}");
        }
        Assert.Contains(records, r => r.Event == LogEvent.StatusReported && r.Arg2 == (ulong)cpus);
        // Every AP was started by Linux (and the firmware) through a start-up IPI caught at the sender.
        for (int cpu = 1; cpu < cpus; cpu++)
            Assert.True(records.Any(r => r.Event == LogEvent.ApStarted && r.Cpu == cpu), $"no 'cpu started' record from cpu {cpu}");
        if (vendor == Vendor.AmdSvm) Assert.Contains(records, r => r.Event == LogEvent.HiddenMemoryRead);
        Assert.DoesNotContain(records, r => r.Severity == LogSeverity.Error);
    }
}
