using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// QEMU TCG (AMD EPYC with SVM + NPT), the smoke scenario under the SVM back end on N CPUs; a variant may name
/// another CPU model (e.g. with +la57) and add QEMU arguments (devices), under its own name.
/// </summary>
public abstract class SvmBoot(int cpus, string? name = null, string cpuModel = EmulatorOptions.SvmCpuModel, IReadOnlyList<string>? extraArguments = null) : EmulatorBoot(
    name ?? $"qemu-svm-{cpus}cpu",
    new EspLayoutSpec(EspTarget.Qemu, "smoke"),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, Cpus: cpus, CpuModel: cpuModel, ExtraArguments: extraArguments),
    TimeSpan.FromSeconds(240),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"))
{
    public int Cpus { get; } = cpus;

    /// <summary>The guest's page-table depth: 5 when the CPU model has LA57 (Debian's kernel then uses it), else 4.</summary>
    public int PagingLevels { get; } = cpuModel.Contains("+la57", StringComparison.Ordinal) ? 5 : 4;
}

public sealed class SvmBoot1() : SvmBoot(1);

public sealed class SvmBoot2() : SvmBoot(2);

public sealed class SvmBoot4() : SvmBoot(4);

/// <summary>What every SVM boot must show: Linux to init under Vigil, every CPU virtualized and seeing the leaf, nothing of the hypervisor readable.</summary>
public abstract class SvmBootChecks(SvmBoot boot, ITestOutputHelper output)
{
    private Transcript T => boot.Transcript;

    /// <summary>The boot, for the checks of derived classes.</summary>
    protected SvmBoot Boot => boot;

    protected ITestOutputHelper Output => output;

    [Fact]
    public void Linux_boots_to_init_under_vigil_and_powers_off()
    {
        output.WriteLine(boot.Timings(
            ("hv", EmulatorSetup.Com2, GuestMarkers.HypervisorStarting),
            ("linux", EmulatorSetup.Com1, GuestMarkers.LinuxVersion),
            ("init", EmulatorSetup.Com1, GuestMarkers.InitStarted),
            ("power-off", EmulatorSetup.Com1, GuestMarkers.PowerDown)));
        Assert.False(T.TimedOut, $"QEMU did not finish in time; see {boot.TranscriptPath}");
        Assert.True(T.Contains(EmulatorSetup.Com2, $"vigil: all {boot.Cpus} CPUs run under the hypervisor (AMD SVM + NPT)"));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.InitStarted));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown));
        Assert.False(T.Contains(EmulatorSetup.Com2, "vigil-hv: ERROR"), "the hypervisor reported an error");
    }

    [Fact]
    public void The_os_brings_up_every_cpu()
        => Assert.True(T.Contains(EmulatorSetup.Com1, $"VIGIL-GUEST: cpus online={(boot.Cpus == 1 ? "0" : "0-" + (boot.Cpus - 1))} nproc={boot.Cpus}"));

    [Fact]
    public void Every_cpu_sees_vigils_cpuid_leaf_and_no_svm()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, $"vigild: {boot.Cpus} of {boot.Cpus} CPUs see Vigil's CPUID leaf"));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildCpuidOk));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: cpu flag svm no"));
        Assert.True(T.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: cpu flag hypervisor yes"));
    }

    [Fact]
    public void Vigild_status_reports_every_cpu_virtualized_with_exits()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.VigildStatusOk));
        Assert.True(T.Contains(EmulatorSetup.Com1, $"on AMD SVM + NPT: {boot.Cpus} of {boot.Cpus} CPUs virtualized"));
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(boot.Cpus)), "vigild status does not show vigil.efi's boot state (efivarfs)");
        for (int cpu = 0; cpu < boot.Cpus; cpu++)
        {
            string? line = System.Linq.Enumerable.FirstOrDefault(System.Linq.Enumerable.Select(T.On(EmulatorSetup.Com1), l => l.Text), t => t.Contains($"vigild: cpu {cpu} (apic ", StringComparison.Ordinal));
            Assert.NotNull(line);
            output.WriteLine(line);
            Match m = Regex.Match(line!, @"virtualized, (\d+) exits: .*cpuid (\d+)");
            Assert.True(m.Success, line);
            Assert.True(long.Parse(m.Groups[1].Value) > 0);
            Assert.True(long.Parse(m.Groups[2].Value) > 0);
        }
    }

    [Fact]
    public void A_debugger_single_stepping_over_cpuid_gets_its_trap_at_the_next_instruction() => GuestProgramChecks.SingleStepOverCpuid(T);

    [Fact]
    public void User_space_sees_osxsave_and_the_avx_state_and_runs_avx() => GuestProgramChecks.AvxWorks(T, output);

    [Fact]
    public void Binary_log_records_arrive_intact_on_the_log_port() => BinaryLogChecks.RecordsArriveIntact(boot, boot.Cpus, Abi.Vendor.AmdSvm, output);

    [Fact]
    public void The_guest_pages_with_the_depth_the_cpu_model_allows()
        => Assert.True(T.Contains(EmulatorSetup.Com1, $"VIGIL-GUEST: paging levels={boot.PagingLevels} la57={(boot.PagingLevels == 5 ? "yes" : "no")}"),
            $"expected {boot.PagingLevels}-level paging in the guest; see {boot.TranscriptPath}");

    [Fact]
    public void A_nested_map_change_at_start_up_is_acknowledged_by_every_cpu() => KickChecks.NestedMapChangeAcknowledgedByEveryCpu(T, output);

    [Fact]
    public void A_guest_module_reading_the_hypervisors_pages_gets_nothing()
    {
        Assert.True(T.Contains(EmulatorSetup.Com1, GuestMarkers.HvpeekNothingReadable));
        Assert.False(T.Contains(EmulatorSetup.Com1, GuestMarkers.HvpeekLeaked));
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class SvmBoot1Tests(SvmBoot1 boot, ITestOutputHelper output) : SvmBootChecks(boot, output), IClassFixture<SvmBoot1>;

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class SvmBoot2Tests(SvmBoot2 boot, ITestOutputHelper output) : SvmBootChecks(boot, output), IClassFixture<SvmBoot2>
{
    /// <summary>Linux takes CPU 1 offline and brings it back (the SVM NMI kick: hv/Svm/SvmNmi, hv/Host/NmiKick).</summary>
    [Fact]
    public void A_cpu_taken_offline_comes_back_online_and_runs_work() => KickChecks.CpuComesBackOnline(Boot.Transcript, Boot.Cpus, Output);

    /// <summary>The guest's own NMIs (sysrq 'l' backtraces) exit and are injected back into it.</summary>
    [Fact]
    public void A_guest_nmi_to_the_other_cpu_is_delivered() => KickChecks.GuestNmisReachTheOtherCpus(Boot.Transcript, Boot.Cpus);
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class SvmBoot4Tests(SvmBoot4 boot, ITestOutputHelper output) : SvmBootChecks(boot, output), IClassFixture<SvmBoot4>;
