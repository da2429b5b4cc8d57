using System;
using System.Linq;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// Issue #9: a machine with more CPUs than Vigil supports (64; LaunchParameters.MaxCpus). A hypervisor on some
/// CPUs only would leave the others unguarded, so vigil.efi boots the OS unprotected and says so on the console,
/// the log port and in its boot-state variable, which `vigild status` shows (that path is booted to the end by the
/// NoVirtualization classes). QEMU TCG with 65 CPUs, up to the moment vigil.efi starts the OS loader: Linux with
/// 65 emulated CPUs needs minutes to reach init on two host cores.
/// </summary>
public sealed class CpuLimitBoot() : EmulatorBoot(
    "qemu-65cpus",
    new EspLayoutSpec(EspTarget.Qemu, "smoke"),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, Cpus: Cpus),
    TimeSpan.FromSeconds(180),
    stopWhen: t => t.Contains(EmulatorSetup.Com2, "vigil: starting "))
{
    public const int Cpus = 65;
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class CpuLimitTests(CpuLimitBoot boot, ITestOutputHelper output) : IClassFixture<CpuLimitBoot>
{
    private const string Reason = "this machine has 65 CPUs; Vigil supports at most 64 (a hypervisor on some CPUs only would leave the others unguarded); booting unprotected";

    private Transcript T => boot.Transcript;

    [Fact]
    public void The_limit_is_stated_on_the_console_and_the_log_port_and_the_os_starts_unprotected()
    {
        output.WriteLine(boot.Timings(("loader", EmulatorSetup.Com2, "vigil: starting ")));
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: ERROR: " + Reason), $"no limit message on the log port; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com1, "vigil: ERROR: " + Reason), $"no limit message on the console (COM1 carries the firmware console); see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com2, GuestMarkers.Unprotected));
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: starting \\EFI\\vigil\\linux.efi"), "vigil.efi did not start the OS");
    }

    [Fact]
    public void The_boot_state_for_vigild_carries_the_reason()
        => Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: boot state for the OS (VigilBootState): unprotected: " + Reason),
            $"vigil.efi did not publish the reason for vigild status; see {boot.TranscriptPath}");
}
