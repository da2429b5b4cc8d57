using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// The kernel guard under the built-in strict rules (issue 10 item 7(o), its blocked half): the guard-strict scenario
/// (tests/guest/scenarios/guard-strict.sh) runs `vigild protect --strict --lock`, then only technique o of the attack
/// module (an ftrace hook with IPMODIFY by a module loaded after Lock), prints every event and powers off.
/// QEMU TCG with SVM, 2 CPUs: ftrace patches through text_poke_bp, whose sync IPIs reach the other CPU.
/// </summary>
public sealed class GuardStrictSvmBoot() : EmulatorBoot(
    "qemu-svm-guard-strict",
    new EspLayoutSpec(EspTarget.Qemu, "guard-strict"),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, Cpus: 2),
    TimeSpan.FromSeconds(300),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuardMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"))
{
    public const string ScenarioDone = "VIGIL-GUEST: guard-strict scenario done";

    private GuardReport? _parsed;

    /// <summary>The scenario's results, parsed once (the guard scenario's lines).</summary>
    public GuardReport Report => _parsed ??= new GuardReport(Transcript);
}

/// <summary>
/// Technique o did not land (the hook never ran: the call site was not patched), and among its events is a kernel-text
/// event with verdict block and content jump-into-new-code. Under the default rules o lands and is only audited: both
/// checks fail then.
/// </summary>
[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class GuardStrictSvmBootTests(GuardStrictSvmBoot boot, ITestOutputHelper output) : IClassFixture<GuardStrictSvmBoot>
{
    private GuardReport R => boot.Report;

    private Transcript T => boot.Transcript;

    [Fact]
    public void The_strict_boot_finishes_and_the_guest_powers_off()
        => GuardBootChecks.FinishesAndPowersOff(boot, output, GuardStrictSvmBoot.ScenarioDone,
            ("protect", EmulatorSetup.Com1, "VIGIL-GUEST: guard protect --strict --lock rc="));

    [Fact]
    public void Vigild_protects_with_the_strict_rules_and_status_says_so()
    {
        Assert.True(R.Guarded, $"{R.GuardState}; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "vigild: rules: built-in strict"), $"`vigild status` did not report the strict rules; see {boot.TranscriptPath}");
    }

    [Fact]
    public void An_ftrace_ipmodify_hook_of_a_later_module_is_blocked()
    {
        List<AttackLine> lines = R.Attacks.Where(a => a.Technique == "o").ToList();
        Assert.True(lines.Count == 1, $"technique o reported {lines.Count} times; see {boot.TranscriptPath}");
        AttackLine line = lines[0];
        output.WriteLine($"o: landed={(line.Landed ? "yes" : "no")} {line.Text}");
        Assert.False(line.Text.Contains("setup-failed", StringComparison.Ordinal), $"technique o could not be tried: {line.Text}");
        Assert.False(line.Landed, $"technique o LANDED (the hook ran): {line.Text}; {R.GuardState}");
        Assert.DoesNotContain("hook RAN", line.Text, StringComparison.Ordinal);

        IReadOnlyList<GuardEventLine>? events = R.EventsOf("attack-o", out string why);
        Assert.True(events != null, $"cannot tell which events technique o caused: {why}; {R.GuardState}");
        foreach (GuardEventLine e in events!) output.WriteLine(e.Text);
        List<GuardEventLine> blocked = events.Where(e => e.Object == "kernel-text" && e.Verdict == "block"
            && e.Text.Contains("\"content\":\"jump-into-new-code\"", StringComparison.Ordinal)).ToList();
        Assert.True(blocked.Count > 0, $"no kernel-text event with verdict block and content jump-into-new-code among technique o's {events.Count} events: "
            + string.Join(" | ", events.Take(8).Select(e => e.Text)));

        // The refused write is the hooked function's call site (the bytes after the INT3 at its entry, or past an ENDBR64), not some other ftrace
        // site (the module's own symbol lookup once armed a kprobe through ftrace): within 16 bytes, by the page offset.
        Match target = Regex.Match(string.Join("\n", T.On(EmulatorSetup.Com1).Select(l => l.Text)), @"VIGIL-GUEST: ftrace target at 0x([0-9a-f]+)");
        Assert.True(target.Success, $"the scenario printed no ftrace target address; see {boot.TranscriptPath}");
        ulong site = ulong.Parse(target.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        Assert.Contains(blocked, e => Regex.Match(e.Text, "\"gpa\":\"0x([0-9a-fA-F]+)\"") is { Success: true } g
            && (ulong.Parse(g.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) - site) % 0x1000 < 16);
    }
}
