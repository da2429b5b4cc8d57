using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>QEMU TCG with an Intel model without VMX: the Intel back end says why and Linux boots unprotected.</summary>
public sealed class VmxAbsentBoot() : EmulatorBoot(
    "qemu-vmx-absent",
    new EspLayoutSpec(EspTarget.Qemu, "smoke"),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, CpuModel: EmulatorOptions.NoVmxCpuModel),
    TimeSpan.FromSeconds(240),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class VmxAbsentTests(VmxAbsentBoot boot) : IClassFixture<VmxAbsentBoot>
{
    private Transcript T => boot.Transcript;

    [Fact]
    public void No_vmx_is_reported_and_linux_boots_unprotected()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: ERROR: the hypervisor cannot run on this machine: this CPU has no VMX (CPUID.1:ECX.VMX = 0)"),
            $"no 'no VMX' message; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.Unprotected));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildNoVigil));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown));
    }
}
