using System;
using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// QEMU TCG (AMD EPYC with SVM + NPT), 2 CPUs, the "protect" scenario with page-table isolation forced on (pti=on: the
/// agent's CR3 is the user half of the PGD pair, which maps almost no kernel): vigild protects and locks the running
/// kernel, the hypervisor finds its text, rodata, sys_call_table and IDT itself, Protect and Lock are refused after
/// Lock, the guest keeps running and powers off.
/// </summary>
public sealed class GuardProtectBoot() : EmulatorBoot(
    "qemu-svm-protect-2cpu",
    new EspLayoutSpec(EspTarget.Qemu, "protect",
        EspLayout.DefaultConfig(EspTarget.Qemu, "protect").Replace(EspLayout.GuestOptions, EspLayout.GuestOptions + " pti=on", StringComparison.Ordinal)),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, Cpus: 2),
    TimeSpan.FromSeconds(240),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed partial class GuardProtectBootTests(GuardProtectBoot boot, ITestOutputHelper output) : IClassFixture<GuardProtectBoot>
{
    private Transcript T => boot.Transcript;

    [Fact]
    public void Protect_and_lock_guard_the_kernels_text_rodata_sys_call_table_and_idt_and_the_guest_powers_off()
    {
        Assert.False(T.TimedOut, $"QEMU did not finish in time; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "Kernel/User page tables isolation: enabled"), "pti=on did not take");
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild protect rc=0"), $"vigild protect failed; see {boot.TranscriptPath}");
        string line = T.On(EmulatorSetup.Com1).Select(l => l.Text).First(l => l.StartsWith("vigild: protected", StringComparison.Ordinal));
        output.WriteLine(line);
        Match m = Protected().Match(line);
        Assert.True(m.Success, line);
        foreach (string o in new[] { "kernel-text", "kernel-rodata", "sys-call-table", "idt" }) Assert.Contains(o + " ", line, StringComparison.Ordinal);
        Assert.True(long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) > 4096, "less than 4 MiB guarded");
        Assert.Contains("rejected none", line, StringComparison.Ordinal);
        Assert.True(T.Contains(EmulatorSetup.Com1, "vigild: protection: on, lock: on"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: secret mode 600"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild protect after lock rc=1"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild lock after lock rc=1"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "not permitted: the guard is locked"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: module hello loaded"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: scenario protect finished rc=0"));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown));
        Assert.False(T.Contains(EmulatorSetup.Com2, "vigil-hv: ERROR"), "the hypervisor reported an error");
    }

    [GeneratedRegex(@"^vigild: protected: (\d+) ranges, (\d+) KiB")]
    private static partial Regex Protected();
}
