using System.Linq;
using Vigil.Tests.Emulator;
using Vigil.Tool.Emulators;
using Xunit;

namespace Vigil.Tests.Guest;

/// <summary>How the guard boots' checks read the guard scenario's console (tests/guest/scenarios/guard.sh).</summary>
public sealed class GuardReportTests
{
    private static Transcript Console(params string[] lines)
    {
        var transcript = new Transcript();
        double t = 0;
        foreach (string line in lines) transcript.Add(new SerialLine(t += 0.1, EmulatorSetup.Com1, line));
        return transcript;
    }

    private static string Event(long seq, string obj, string verdict)
        => $$"""VIGIL-EVENT: {"seq":{{seq}},"tsc":"0x1","cpu":0,"object":"{{obj}}","access":"write","verdict":"{{verdict}}","rule":4,"region":"module-area","cpl":0,"rip":"0xffffffffc0001000","cr3":"0x1000","gpa":"0x2000","linear":"0xffffffff82000000","detail":"","content":"","old":"00","new":"e9"}""";

    [Fact]
    public void Attack_lines_with_a_kernel_timestamp_and_benign_lines_are_read()
    {
        var report = new GuardReport(Console(
            "[    7.656886] VIGIL-ATTACK: technique=a landed=no mov-cr0 0x80050033->0x80050033 (wp still set, err 0)",
            "VIGIL-ATTACK: technique=n landed=no ring3 vmmcall: 23 calls: 0 succeeded",
            "VIGIL-BENIGN: name=cpu-hotplug ok=yes skipped: 1 CPU (no CPU 1 to take offline)",
            "VIGIL-GUEST: guard active=yes"));
        Assert.True(report.Guarded);
        Assert.Equal(["a", "n"], report.Attacks.Select(a => a.Technique));
        Assert.False(report.Attacks[0].Landed);
        Assert.StartsWith("mov-cr0", report.Attacks[0].Text, System.StringComparison.Ordinal);
        Assert.StartsWith("ring3", report.Attacks[1].Text, System.StringComparison.Ordinal);
        Assert.Equal("cpu-hotplug", report.Benign.Single().Name);
        Assert.True(report.Benign.Single().Ok);
    }

    [Fact]
    public void A_phases_events_lie_between_its_mark_and_the_next()
    {
        var report = new GuardReport(Console(
            "VIGIL-GUEST: events-mark attack-a seq=none",
            "VIGIL-GUEST: events-mark attack-b seq=2",
            "VIGIL-GUEST: events-mark benign seq=3",
            "VIGIL-GUEST: events-mark end seq=3",
            Event(1, "cr0", "block"),
            Event(2, "sys-call-table", "block"),
            Event(3, "sys-call-table", "block-and-fault"),
            "VIGIL-EVENT: not json"));
        Assert.Equal([1L, 2L], report.EventsOf("attack-a", out _)!.Select(e => e.Seq));
        Assert.Equal([3L], report.EventsOf("attack-b", out _)!.Select(e => e.Seq));
        Assert.Empty(report.EventsOf("benign", out _)!);
        Assert.Null(report.EventsOf("end", out string why));
        Assert.Contains("no events-mark after", why, System.StringComparison.Ordinal);
        Assert.Single(report.UnreadableEvents);
        Assert.True(GuardReport.IsBlock(report.Events[2].Verdict));
        Assert.False(GuardReport.IsBlock("audit"));
    }

    [Fact]
    public void Without_vigild_events_no_phase_can_be_told()
    {
        var report = new GuardReport(Console(
            "VIGIL-GUEST: guard active=no",
            "VIGIL-GUEST: events-mark attack-a seq=none",
            "VIGIL-GUEST: events-mark attack-b seq=none"));
        Assert.False(report.Guarded);
        Assert.Null(report.EventsOf("attack-a", out string why));
        Assert.Contains("seq=none", why, System.StringComparison.Ordinal);
        Assert.Null(report.EventsOf("attack-x", out why));
        Assert.Contains("no events-mark for", why, System.StringComparison.Ordinal);
    }
}
