using System;
using System.Collections.Generic;
using System.Linq;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// The kernel guard's boot (issue 10) on one back end: the guard scenario (tests/guest/scenarios/guard.sh) runs
/// `vigild protect --lock`, the attack suite (tests/guest/modules/attack, tests/guest/programs/forge.c), the benign
/// suite (tests/guest/programs/benign.sh), prints every event and powers off. Bounded by its timeout like every boot.
/// </summary>
public abstract class GuardBoot(string name, EspTarget target, EmulatorSpec emulator, TimeSpan timeout) : EmulatorBoot(
    name,
    new EspLayoutSpec(target, "guard"),
    emulator,
    timeout,
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuardMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"))
{
    private GuardReport? _parsed;

    public int Cpus { get; } = emulator.Cpus;

    /// <summary>The scenario's results, parsed once.</summary>
    public GuardReport Report => _parsed ??= new GuardReport(Transcript);
}

/// <summary>QEMU TCG (AMD EPYC with SVM + NPT), 2 CPUs: the SVM back end, CPU hotplug in the benign suite.</summary>
public sealed class GuardSvmBoot() : GuardBoot("qemu-svm-guard", EspTarget.Qemu,
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, Cpus: 2), TimeSpan.FromSeconds(600));

/// <summary>Bochs (Intel Skylake-X with VMX + EPT), 1 CPU: the VMX back end (slow: minutes).</summary>
public sealed class GuardVmxBoot() : GuardBoot("bochs-vmx-guard", EspTarget.Bochs,
    new EmulatorSpec(Tool.Emulators.Emulator.Bochs), TimeSpan.FromSeconds(1500));

internal static class GuardMarkers
{
    public const string PowerDown = GuestMarkers.PowerDown;
    public const string ScenarioDone = "VIGIL-GUEST: guard scenario done";
}

/// <summary>
/// Per technique of issue 10 item 7: it did not land, and the guard recorded an event for the object it went for
/// with a block verdict (block or block-and-fault), among the events of that technique's phase. Benign (item 8): every
/// check saw its effect, and none of the events recorded while the benign suite ran has a block verdict. The guest
/// powers off cleanly. Until the hypervisor side of the guard lands these fail, each saying what it saw.
/// </summary>
public abstract class GuardBootChecks(GuardBoot boot, ITestOutputHelper output)
{
    private GuardReport R => boot.Report;

    private Transcript T => boot.Transcript;

    [Fact]
    public void The_guard_boot_finishes_and_the_guest_powers_off_cleanly()
        => FinishesAndPowersOff(boot, output, GuardMarkers.ScenarioDone,
            ("protect", EmulatorSetup.Com1, "VIGIL-GUEST: guard protect --lock rc="),
            ("benign", EmulatorSetup.Com1, "VIGIL-GUEST: events-mark benign"));

    /// <summary>The boot's timings, then: in time, no panic, the scenario's <paramref name="done"/> line, power-off.</summary>
    public static void FinishesAndPowersOff(EmulatorBoot boot, ITestOutputHelper output, string done, params (string, string, string)[] phases)
    {
        output.WriteLine(boot.Timings([
            ("linux", EmulatorSetup.Com1, GuestMarkers.LinuxVersion),
            ("init", EmulatorSetup.Com1, GuestMarkers.InitStarted),
            .. phases,
            ("done", EmulatorSetup.Com1, done),
            ("power-off", EmulatorSetup.Com1, GuardMarkers.PowerDown)]));
        Transcript t = boot.Transcript;
        Assert.False(t.TimedOut, $"{boot.Name} did not finish in time; see {boot.TranscriptPath}");
        Assert.False(t.Contains(EmulatorSetup.Com1, "Kernel panic"), $"the guest kernel panicked; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, done), $"the scenario did not reach its end; see {boot.TranscriptPath}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuardMarkers.PowerDown), $"the guest did not power off; see {boot.TranscriptPath}");
    }

    [Fact]
    public void Vigild_protects_and_locks()
        => Assert.True(R.Guarded, $"{R.GuardState}; see {boot.TranscriptPath}");

    [Fact]
    public void Every_event_is_the_json_vigild_promises()
    {
        Assert.Empty(R.UnreadableEvents);
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild events rc=0"), $"`vigild events --json` failed; {R.GuardState}");
    }

    [Fact]
    public void A_cr0_wp_cleared_by_raw_mov_then_a_sys_call_table_write_is_blocked() => Blocked("a", "cr0", "sys-call-table");

    [Fact]
    public void A_sys_call_table_write_through_a_vmap_alias_is_blocked() => Blocked("b", "sys-call-table");

    [Fact]
    public void A_sys_call_table_write_after_set_memory_rw_is_blocked() => Blocked("c", "sys-call-table");

    [Fact]
    public void An_inline_hook_through_text_poke_is_blocked() => Blocked("d", "kernel-text");

    [Fact]
    public void An_inline_hook_through_the_direct_map_alias_is_blocked() => Blocked("e", "kernel-text");

    [Fact]
    public void An_idt_gate_overwrite_is_blocked() => Blocked("f", "idt");

    [Fact]
    public void A_lidt_to_a_module_owned_idt_is_blocked() => Blocked("g", "idtr");

    [Fact]
    public void A_lgdt_to_a_module_owned_gdt_is_blocked() => Blocked("h", "gdtr");

    [Fact]
    public void A_wrmsr_lstar_to_module_code_is_blocked() => Blocked("i", "syscall-msr");

    [Fact]
    public void Clearing_cr4_smep_is_blocked() => Blocked("j", "cr4");

    [Fact]
    public void Clearing_cr4_smap_is_blocked() => Blocked("k", "cr4");

    [Fact]
    public void A_const_operations_table_overwrite_is_blocked() => Blocked("l", "kernel-rodata");

    [Fact]
    public void A_write_to_the_hypervisors_memory_is_blocked() => Blocked("m", "hypervisor-memory");

    /// <summary>A call gate in the GDT's free slot: found by the descriptor check (not at the store) and put back.</summary>
    [Fact]
    public void A_call_gate_in_the_gdt_is_put_back() => Blocked("p", "gdt-descriptor");

    /// <summary>Forged hypercalls from ring 0 (the module) and ring 3 (forge): none succeeds. They touch no guarded object, so no event is required.</summary>
    [Fact]
    public void Forged_hypercalls_from_ring_0_and_ring_3_are_refused()
    {
        List<AttackLine> lines = R.Attacks.Where(a => a.Technique == "n").ToList();
        foreach (AttackLine line in lines) output.WriteLine($"n: landed={(line.Landed ? "yes" : "no")} {line.Text}");
        Assert.True(lines.Any(l => l.Text.StartsWith("ring0", StringComparison.Ordinal)), $"no ring-0 report for technique n; see {boot.TranscriptPath}");
        Assert.True(lines.Any(l => l.Text.StartsWith("ring3", StringComparison.Ordinal)), $"no ring-3 report for technique n (forge); see {boot.TranscriptPath}");
        Assert.All(lines, l => Assert.False(l.Text.Contains("setup-failed", StringComparison.Ordinal), $"technique n could not run: {l.Text}"));
        Assert.All(lines, l => Assert.False(l.Landed, $"a forged hypercall succeeded: {l.Text}; {R.GuardState}"));
        Assert.True(R.Guarded, $"the calls were refused, but {R.GuardState}: Protect/Lock/ReadEvents were not there to forge");
    }

    /// <summary>
    /// An ftrace hook (IPMODIFY) registered by a module loaded after Lock: its CALL leads into a trampoline that was not
    /// there at Protect. The default rules record it (audit, or block under a stricter set): an event for kernel text.
    /// </summary>
    [Fact]
    public void An_ftrace_ipmodify_hook_of_a_later_module_is_recorded()
    {
        AttackLine line = Single("o");
        IReadOnlyList<GuardEventLine> events = EventsOf("o");
        List<GuardEventLine> recorded = events.Where(e => e.Object == "kernel-text" && e.Verdict is "audit" or "block" or "block-and-fault").ToList();
        Assert.True(recorded.Count > 0, $"technique o (landed={(line.Landed ? "yes" : "no")}) left no audit or block event for kernel-text among its {events.Count} events: {Describe(events)}");
        if (recorded.Any(e => GuardReport.IsBlock(e.Verdict))) Assert.False(line.Landed, $"the hook was blocked but landed: {line.Text}");
    }

    [Fact]
    public void Every_benign_check_sees_its_effect()
    {
        string[] expected = ["static-key", "ftrace", "kprobe", "module", "patch-under-load", "cpu-hotplug", "bpf"];
        foreach (BenignLine line in R.Benign) output.WriteLine($"{line.Name}: ok={(line.Ok ? "yes" : "no")} {line.Text}");
        foreach (string name in expected)
        {
            BenignLine? line = R.Benign.FirstOrDefault(b => b.Name == name);
            Assert.True(line != null, $"the benign suite printed nothing for {name}; see {boot.TranscriptPath}");
            Assert.True(line!.Ok, $"benign {name} failed: {line.Text}; {R.GuardState}");
            if (name is "cpu-hotplug" or "patch-under-load" && boot.Cpus >= 2) Assert.DoesNotContain("skipped", line.Text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void No_block_verdict_among_the_events_of_the_benign_suite()
    {
        Assert.True(R.Guarded, $"{R.GuardState}: no events to judge");
        IReadOnlyList<GuardEventLine> events = EventsOf("benign");
        foreach (GuardEventLine e in events) output.WriteLine(e.Text);
        List<GuardEventLine> blocked = events.Where(e => GuardReport.IsBlock(e.Verdict)).ToList();
        Assert.True(blocked.Count == 0, $"{blocked.Count} block verdicts while the benign suite ran: {Describe(blocked)}");
    }

    /// <summary>The technique's one report line (setup failures are failures of the suite, not blocks).</summary>
    private AttackLine Single(string technique)
    {
        List<AttackLine> lines = R.Attacks.Where(a => a.Technique == technique).ToList();
        Assert.True(lines.Count > 0, $"technique {technique} printed no VIGIL-ATTACK line (the scenario did not get that far?); see {boot.TranscriptPath}");
        Assert.True(lines.Count == 1, $"technique {technique} reported {lines.Count} times: {string.Join(" | ", lines.Select(l => l.Text))}");
        output.WriteLine($"{technique}: landed={(lines[0].Landed ? "yes" : "no")} {lines[0].Text}");
        Assert.False(lines[0].Text.Contains("setup-failed", StringComparison.Ordinal), $"technique {technique} could not be tried: {lines[0].Text}");
        return lines[0];
    }

    /// <summary>The events of one technique (phase attack-X) or of the benign suite (phase benign), by the scenario's marks.</summary>
    private IReadOnlyList<GuardEventLine> EventsOf(string technique)
    {
        string phase = technique == "benign" ? "benign" : "attack-" + technique;
        IReadOnlyList<GuardEventLine>? events = R.EventsOf(phase, out string why);
        Assert.True(events != null, $"cannot tell which events {phase} caused: {why}; {R.GuardState}");
        return events!;
    }

    /// <summary>Not landed, and an event for one of <paramref name="objects"/> with a block verdict among the technique's events.</summary>
    private void Blocked(string technique, params string[] objects)
    {
        AttackLine line = Single(technique);
        Assert.False(line.Landed, $"technique {technique} LANDED: {line.Text}; {R.GuardState}");
        IReadOnlyList<GuardEventLine> events = EventsOf(technique);
        foreach (GuardEventLine e in events) output.WriteLine(e.Text);
        Assert.True(events.Any(e => objects.Contains(e.Object) && GuardReport.IsBlock(e.Verdict)),
            $"technique {technique} did not land, but no block event for {string.Join(" or ", objects)} among its {events.Count} events: {Describe(events)}");
    }

    private static string Describe(IEnumerable<GuardEventLine> events)
    {
        string text = string.Join(" | ", events.Take(8).Select(e => $"seq {e.Seq} {e.Object} {e.Verdict}"));
        return text.Length == 0 ? "(none)" : text;
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class GuardSvmBootTests(GuardSvmBoot boot, ITestOutputHelper output) : GuardBootChecks(boot, output), IClassFixture<GuardSvmBoot>;

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class GuardVmxBootTests(GuardVmxBoot boot, ITestOutputHelper output) : GuardBootChecks(boot, output), IClassFixture<GuardVmxBoot>;
