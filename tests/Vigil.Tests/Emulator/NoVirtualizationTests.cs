using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>
/// QEMU TCG with a CPU model lacking hardware virtualization: the back end for the vendor says why,
/// vigil.efi says the boot is unprotected, Linux boots, and vigild finds no Vigil.
/// </summary>
public abstract class NoVirtualizationBoot(string name, string cpuModel) : EmulatorBoot(
    name,
    new EspLayoutSpec(EspTarget.Qemu, "smoke"),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, CpuModel: cpuModel),
    TimeSpan.FromSeconds(240),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));

/// <summary>An AMD model without SVM (issue #3).</summary>
public sealed class SvmAbsentBoot() : NoVirtualizationBoot("qemu-svm-absent", EmulatorOptions.NoSvmCpuModel);

/// <summary>An Intel model without VMX (issue #4): TCG emulates no VMX.</summary>
public sealed class VmxAbsentBoot() : NoVirtualizationBoot("qemu-vmx-absent", EmulatorOptions.NoVmxCpuModel);

public abstract class NoVirtualizationChecks(NoVirtualizationBoot boot, string reason, string bootStateReason)
{
    private Transcript T => boot.Transcript;

    [Fact]
    public void The_reason_is_reported_and_linux_boots_unprotected()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, reason), $"no '{reason}'; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.Unprotected));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildNoVigil));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown));
    }

    [Fact]
    public void A_start_without_virtualization_does_not_count_towards_the_fail_safe_boot()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: boot counter back to 0: the hypervisor did not start, so this start does not count"),
            $"the boot counter was not put back; see {boot.TranscriptPath}");
    }

    [Fact]
    public void Vigild_status_says_protection_is_off_and_why()
    {
        string? line = System.Linq.Enumerable.FirstOrDefault(System.Linq.Enumerable.Select(T.On(EmulatorSetup.Com1), l => l.Text),
            t => t.Contains(GuestMarkers.BootStateUnprotected, StringComparison.Ordinal));
        Assert.True(line != null, $"vigild status does not say the boot is unprotected; see {boot.TranscriptPath}");
        Assert.Contains(bootStateReason, line, StringComparison.Ordinal);
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class SvmAbsentTests(SvmAbsentBoot boot)
    : NoVirtualizationChecks(boot, "vigil-hv: ERROR: this AMD CPU has no SVM (AMD-V)", "the hypervisor cannot run on this machine: this AMD CPU has no SVM (AMD-V)"), IClassFixture<SvmAbsentBoot>;

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class VmxAbsentTests(VmxAbsentBoot boot)
    : NoVirtualizationChecks(boot, "vigil: ERROR: the hypervisor cannot run on this machine: this CPU has no VMX (CPUID.1:ECX.VMX = 0)",
        "the hypervisor cannot run on this machine: this CPU has no VMX (CPUID.1:ECX.VMX = 0)"), IClassFixture<VmxAbsentBoot>;
