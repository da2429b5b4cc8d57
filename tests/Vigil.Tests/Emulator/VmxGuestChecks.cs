using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// What a boot under Vigil's VMX back end must show, for any CPU count: every CPU launched before Linux,
/// every guest CPU sees Vigil's CPUID leaf and no VMX, `vigild status` reports every CPU virtualized with
/// exits counted, and the guest cannot read the hypervisor's pages.
/// </summary>
internal static partial class VmxGuestChecks
{
    public static void EveryCpuLaunched(Transcript t, int cpus)
    {
        for (int i = 0; i < cpus; i++) Assert.True(t.Contains(EmulatorSetup.Com2, $"vigil-hv: CPU {i} (APIC ID "), $"CPU {i} was never launched");
        Assert.True(t.Contains(EmulatorSetup.Com1, $"vigil: all {cpus} CPUs run under the hypervisor (Intel VMX + EPT)"), "not every CPU is protected");
        Assert.Equal(0, t.Count(EmulatorSetup.Com2, "VMLAUNCH failed"));
        Assert.Equal(0, t.Count(EmulatorSetup.Com2, "vigil-hv: ERROR"));
    }

    public static void LinuxUsesEveryCpu(Transcript t, int cpus)
    {
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted), "Linux never reached /init");
        Assert.True(t.Contains(EmulatorSetup.Com1, $"nproc={cpus}"), $"Linux does not run on {cpus} CPUs");
    }

    public static void GuestSeesVigilNotVmx(Transcript t, int cpus)
    {
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.VigildCpuidOk), "vigild cpuid failed");
        Assert.True(t.Contains(EmulatorSetup.Com1, $"vigild: {cpus} of {cpus} CPUs see Vigil's CPUID leaf"), "a CPU does not see Vigil's CPUID leaf");
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: cpu flag vmx no"), "VMX is visible to the guest");
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: cpu flag hypervisor yes"), "the hypervisor bit is not set");
    }

    public static void StatusReportsEveryCpuWithExits(Transcript t, int cpus, ITestOutputHelper output)
    {
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusOk), "vigild status failed");
        Assert.True(t.Contains(EmulatorSetup.Com1, $"{cpus} of {cpus} CPUs virtualized"), "vigild status does not report every CPU virtualized");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(cpus)), "vigild status does not show vigil.efi's boot state (efivarfs)");
        var lines = t.On(EmulatorSetup.Com1).Select(l => l.Text).Where(l => CpuLine().IsMatch(l)).ToList();
        foreach (string line in lines) output.WriteLine(line);
        for (int i = 0; i < cpus; i++)
        {
            Match m = lines.Select(l => CpuLine().Match(l)).FirstOrDefault(m => m.Groups[1].Value == i.ToString(System.Globalization.CultureInfo.InvariantCulture))
                ?? Match.Empty;
            Assert.True(m.Success, $"no status line for cpu {i}");
            Assert.Equal("virtualized", m.Groups[2].Value);
            Assert.True(ulong.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, $"cpu {i} counted no exits");
        }
    }

    public static void HypervisorPagesUnreadable(Transcript t)
    {
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.HvpeekNothingReadable), "the guest read the hypervisor's memory (or hvpeek did not run)");
        Assert.False(t.Contains(EmulatorSetup.Com1, GuestMarkers.HvpeekLeaked));
    }

    [GeneratedRegex(@"vigild: cpu (\d+) \(apic \d+\): (virtualized|NOT virtualized), (\d+) exits")]
    private static partial Regex CpuLine();
}
