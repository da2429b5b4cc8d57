using System.Linq;
using Vigil.Tool.Emulators;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// What the NMI kick (hv/Host/NmiKick) and its users must show on both back ends: the nested-map service kicked
/// every CPU out of its guest and got every acknowledgement before Linux started
/// (hv/Core/Paging/NestedMapService.StartupCheck); a CPU Linux took offline came back online and ran work
/// (tests/guest/scenarios/smoke.sh: the kick gets the offline CPU out of its halt, it waits in the host for the
/// start-up IPI); and NMIs meant for the guest still reach it (they exit now, and are injected back).
/// </summary>
internal static class KickChecks
{
    public const string StartupCheckDone = "vigil-hv: nested map: start-up check split the ";
    public const string EveryCpuAcknowledged = ": every CPU acknowledged";

    public static void NestedMapChangeAcknowledgedByEveryCpu(Transcript t, ITestOutputHelper output)
    {
        string? line = t.On(EmulatorSetup.Com2).Select(l => l.Text).FirstOrDefault(l => l.Contains(StartupCheckDone, System.StringComparison.Ordinal));
        Assert.NotNull(line);
        output.WriteLine(line);
        Assert.Contains(EveryCpuAcknowledged, line, System.StringComparison.Ordinal);
    }

    /// <summary>CPU 1 offline (the others stay), then back: all <paramref name="cpus"/> online, a process pinned to CPU 1 ran there, its timer ticks.</summary>
    public static void CpuComesBackOnline(Transcript t, int cpus, ITestOutputHelper output)
    {
        string? line = t.On(EmulatorSetup.Com1).Select(l => l.Text).FirstOrDefault(l => l.Contains("VIGIL-GUEST: hotplug cpu1 ", System.StringComparison.Ordinal));
        Assert.True(line != null, "the smoke scenario printed no hotplug line (it did not get that far, or saw fewer than 2 CPUs)");
        output.WriteLine(line);
        string offline = cpus == 2 ? "0" : cpus == 3 ? "0,2" : $"0,2-{cpus - 1}";
        Assert.Contains($"hotplug cpu1 off={offline} on=0-{cpus - 1} ran=1 ticks=growing", line, System.StringComparison.Ordinal);
    }

    /// <summary>sysrq 'l': every CPU but the sender printed its backtrace from an NMI the guest sent it.</summary>
    public static void GuestNmisReachTheOtherCpus(Transcript t, int cpus)
        => Assert.True(t.Contains(EmulatorSetup.Com1, $"VIGIL-GUEST: nmi backtraces from other cpus={cpus - 1}"),
            "not every other CPU answered the guest's NMI (the hypervisor did not inject it back)");
}
