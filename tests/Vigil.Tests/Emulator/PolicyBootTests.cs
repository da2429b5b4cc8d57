using System;
using System.Collections.Generic;
using System.Linq;
using Vigil.Tests.Hypervisor.Guard;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// Delivering the policy (issue 11 item 4), QEMU TCG with SVM, 2 CPUs, two boots of the policy scenario
/// (tests/guest/scenarios/policy.sh) that differ only in the ESP's \EFI\vigil\default.pol:
/// <see cref="PolicyAuditSvmBoot"/> carries a policy that audits syscall-MSR writes the built-in rules block, and
/// <see cref="PolicyCorruptSvmBoot"/> a damaged file. Both try `vigild protect --policy` before and after Lock.
/// </summary>
public abstract class PolicyBoot(string name, byte[] policy) : EmulatorBoot(
    name,
    new EspLayoutSpec(EspTarget.Qemu, "policy", Policy: policy),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, Cpus: 2),
    TimeSpan.FromSeconds(300),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuardMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"))
{
    public const string ScenarioDone = "VIGIL-GUEST: policy scenario done";

    private GuardReport? _parsed;

    public GuardReport Report => _parsed ??= new GuardReport(Transcript);

    /// <summary>Technique i's report in a phase (attack-i-first, attack-i-handed), or null.</summary>
    public AttackLine? AttackI(int occurrence)
    {
        List<AttackLine> lines = Report.Attacks.Where(a => a.Technique == "i").ToList();
        return occurrence < lines.Count ? lines[occurrence] : null;
    }
}

/// <summary>The ESP's policy audits what the built-in rules block (WRMSR LSTAR by a module).</summary>
public sealed class PolicyAuditSvmBoot() : PolicyBoot("qemu-svm-policy-audit", TestPolicies.AuditSyscallMsrs());

/// <summary>The ESP's policy file is damaged (one byte of a rule changed): vigil.efi must refuse it and say why.</summary>
public sealed class PolicyCorruptSvmBoot() : PolicyBoot("qemu-svm-policy-corrupt", TestPolicies.Damaged());

/// <summary>Checks both boots make.</summary>
public abstract class PolicyBootChecks(PolicyBoot boot, ITestOutputHelper output)
{
    protected PolicyBoot Boot => boot;

    protected ITestOutputHelper Output => output;

    protected GuardReport R => boot.Report;

    protected Transcript T => boot.Transcript;

    protected string See => $"see {boot.TranscriptPath}";

    [Fact]
    public void The_boot_finishes_and_the_guest_powers_off()
        => GuardBootChecks.FinishesAndPowersOff(boot, output, PolicyBoot.ScenarioDone,
            ("protect", EmulatorSetup.Com1, "VIGIL-GUEST: policy protect rc="),
            ("lock", EmulatorSetup.Com1, "VIGIL-GUEST: lock rc="));

    [Fact]
    public void Vigild_protects() => Assert.True(R.Guarded, $"{R.GuardState}; {See}");

    [Fact]
    public void Protect_policy_after_lock_is_refused_and_vigild_says_why()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: lock rc=0"), $"`vigild lock` failed; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: protect --policy after-lock rc=1"), $"`vigild protect --policy` after Lock did not fail with 1; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "REFUSED: the guard is locked, so the policy in force cannot be replaced until reset (NotPermitted)"),
            $"vigild did not say the locked guard refused the policy; {See}");
    }

    /// <summary>The events of <paramref name="phase"/> for syscall-MSR LSTAR (0xc0000082) writes with the verdict <paramref name="verdict"/>.</summary>
    protected List<GuardEventLine> LstarEvents(string phase, string verdict)
    {
        IReadOnlyList<GuardEventLine>? events = R.EventsOf(phase, out string why);
        Assert.True(events != null, $"cannot tell which events {phase} caused: {why}; {R.GuardState}");
        foreach (GuardEventLine e in events!) output.WriteLine(e.Text);
        return events.Where(e => e.Object == "syscall-msr" && e.Verdict == verdict && e.Text.Contains("\"detail\":\"0xc0000082\"", StringComparison.Ordinal)).ToList();
    }

    protected void Landed(int occurrence, bool expected)
    {
        AttackLine? line = boot.AttackI(occurrence);
        Assert.True(line != null, $"technique i (#{occurrence + 1}) printed no report; {See}");
        output.WriteLine($"i: landed={(line!.Landed ? "yes" : "no")} {line.Text}");
        Assert.False(line.Text.Contains("setup-failed", StringComparison.Ordinal), $"technique i could not be tried: {line.Text}");
        Assert.True(line.Landed == expected, $"technique i {(line.Landed ? "LANDED" : "did not land")} ({line.Text}); {R.GuardState}");
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class PolicyAuditSvmBootTests(PolicyAuditSvmBoot boot, ITestOutputHelper output) : PolicyBootChecks(boot, output), IClassFixture<PolicyAuditSvmBoot>
{
    [Fact]
    public void Vigil_efi_checks_the_policy_and_the_hypervisor_has_it_in_force_from_launch()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: policy \\EFI\\vigil\\default.pol: "), $"vigil.efi did not report the policy file it read; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil-hv: policy \\EFI\\vigil\\default.pol in force from launch: "), $"the hypervisor did not put the policy in force at launch; {See}");
        Assert.False(T.Contains(EmulatorSetup.Com2, "REJECTED"), $"the policy was rejected; {See}");
    }

    [Fact]
    public void Status_names_the_policy_file_before_and_after_protect()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: status-at-start: vigild: policy: \\EFI\\vigil\\default.pol, source hash "), $"`vigild status` did not name the ESP's policy before Protect; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: status-at-start: vigild: rules: compiled policy"), $"the rules in force before Protect are not the compiled policy; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "rules: compiled policy (\\EFI\\vigil\\default.pol"), $"`vigild protect` did not keep the ESP's policy; {See}");
        Assert.False(T.Contains(EmulatorSetup.Com1, "vigild: policy file rejected"), $"Status says the policy file was rejected; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "vigild: boot: protected cpus=2 of 2; policy: \\EFI\\vigil\\default.pol (source hash "), $"the boot state (efivarfs) does not name the policy; {See}");
    }

    [Fact]
    public void A_wrmsr_lstar_the_built_in_rules_block_lands_and_is_recorded_as_audit()
    {
        Landed(0, expected: true);
        List<GuardEventLine> audited = LstarEvents("attack-i-first", "audit");
        Assert.True(audited.Count > 0, $"no syscall-msr LSTAR event with verdict audit among technique i's events; {See}");
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class PolicyCorruptSvmBootTests(PolicyCorruptSvmBoot boot, ITestOutputHelper output) : PolicyBootChecks(boot, output), IClassFixture<PolicyCorruptSvmBoot>
{
    [Fact]
    public void Vigil_efi_rejects_the_damaged_file_with_its_reason_on_the_log_port_and_uses_the_built_in_policy()
    {
        string said = T.On(EmulatorSetup.Com2).Select(l => l.Text).FirstOrDefault(l => l.Contains("policy \\EFI\\vigil\\default.pol REJECTED (not a valid compiled policy: ", StringComparison.Ordinal)) ?? "";
        Assert.True(said.Length > 0, $"vigil.efi did not say on its log port that it rejected the policy file; {See}");
        Output.WriteLine(said);
        Assert.Contains("the BUILT-IN default policy is used instead", said, StringComparison.Ordinal);
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil-hv: WARNING: policy file \\EFI\\vigil\\default.pol not used ("), $"the hypervisor did not say the file is not used; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "policy \\EFI\\vigil\\default.pol REJECTED"), $"vigil.efi did not say it on the console; {See}");
    }

    [Fact]
    public void Status_says_the_policy_file_was_rejected_and_the_built_in_rules_are_in_force()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: status-at-start: vigild: policy file rejected: not a valid compiled policy: "), $"`vigild status` did not say the policy file was rejected; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: status-at-start: vigild: policy: built-in (policy/default.policy, source hash "), $"`vigild status` did not say the built-in rules are in force; {See}");
    }

    [Fact]
    public void The_attack_the_built_in_rules_block_is_blocked()
    {
        Landed(0, expected: false);
        Assert.True(LstarEvents("attack-i-first", "block").Count > 0, $"no syscall-msr LSTAR event with verdict block among technique i's events; {See}");
    }

    [Fact]
    public void Protect_policy_before_lock_replaces_the_rules()
    {
        if (T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: no /etc/vigil/policies/audit.pol in this guest"))
        {
            Assert.Fail("the guest has no compiled audit.pol (tests/guest/policies): protect --policy before Lock was not tried");
        }
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: protect --policy before-lock rc=0"), $"`vigild protect --policy` before Lock failed; {See}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: status-after-handover: vigild: policy: handed over by vigild protect --policy"), $"Status does not name the handed-over policy; {See}");
        Landed(1, expected: true);
        Assert.True(LstarEvents("attack-i-handed", "audit").Count > 0, $"no syscall-msr LSTAR event with verdict audit after the handover; {See}");
    }
}
