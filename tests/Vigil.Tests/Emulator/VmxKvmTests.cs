using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// QEMU/KVM with nested VT-x (real Intel hardware): the VMX back end under a real CPU's checks. Runs only
/// where /dev/kvm offers VMX; elsewhere it is reported as skipped with the reason (never as passed).
/// </summary>
[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class VmxKvmTests(ITestOutputHelper output)
{
    [SkippableFact]
    public void Linux_boots_under_vigil_on_nested_vt_x()
    {
        string? problem = KvmSupport.Problem();
        Skip.If(problem != null, "QEMU/KVM with nested VT-x is not available here: " + problem);

        var boot = new KvmBoot();
        Transcript t = boot.Transcript;
        output.WriteLine(boot.Timings(
            ("launched", EmulatorSetup.Com1, GuestMarkers.AllCpusProtected),
            ("init", EmulatorSetup.Com1, GuestMarkers.InitStarted),
            ("power-off", EmulatorSetup.Com1, GuestMarkers.PowerDown)));
        VmxGuestChecks.EveryCpuLaunched(t, 1);
        VmxGuestChecks.LinuxUsesEveryCpu(t, 1);
        VmxGuestChecks.GuestSeesVigilNotVmx(t, 1);
        VmxGuestChecks.StatusReportsEveryCpuWithExits(t, 1, output);
        VmxGuestChecks.HypervisorPagesUnreadable(t);
    }

    private sealed class KvmBoot() : EmulatorBoot(
        "kvm-vmx",
        new EspLayoutSpec(EspTarget.Qemu, "smoke"),
        new EmulatorSpec(Tool.Emulators.Emulator.QemuKvm),
        TimeSpan.FromSeconds(300),
        stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));
}
