using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Vigil.Abi;
using Vigil.Tool;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>
/// The fail-safe boot counter (issue 13, hv/Abi/BootCounter.cs) across five QEMU boots (1 CPU) that share one
/// writable copy of OVMF's variable store: three boots whose guest powers off before any agent runs (scenario
/// failsafe with vigil_failsafe=crash), a fourth that vigil.efi starts without the hypervisor and says why (the
/// guest's `vigild status` too, then `vigild confirm --retry`), and a fifth, protected again, that
/// `vigild confirm` resets.
/// </summary>
public sealed class FailSafeBoots
{
    public const int Boots = 5;
    private readonly Lazy<IReadOnlyList<Transcript>> _transcripts;

    public FailSafeBoots()
    {
        Root = Repository.Root();
        Work = Path.Combine(Root, "out", "tests", "qemu-failsafe");
        _transcripts = new Lazy<IReadOnlyList<Transcript>>(BootAll, System.Threading.LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Root { get; }

    public string Work { get; }

    public IReadOnlyList<Transcript> Transcripts => _transcripts.Value;

    public string TranscriptPath(int boot) => Path.Combine(Work, $"boot{boot}", "transcript.txt");

    private IReadOnlyList<Transcript> BootAll()
    {
        if (Directory.Exists(Work)) Directory.Delete(Work, recursive: true);
        Directory.CreateDirectory(Work);
        string vars = Path.Combine(Work, "OVMF_VARS.fd");
        File.Copy(EmulatorSetup.OvmfVarsTemplate, vars);
        string crashDisk = Path.Combine(Work, "crash.img"), confirmDisk = Path.Combine(Work, "confirm.img");
        string crashConfig = EspLayout.DefaultConfig(EspTarget.Qemu, "failsafe").Replace("panic=-1", "panic=-1 vigil_failsafe=crash", StringComparison.Ordinal);
        new EspLayout { Root = Root, Target = EspTarget.Qemu, Scenario = "failsafe", Config = crashConfig }.Build(crashDisk, Path.Combine(Work, "crash-esp"));
        new EspLayout { Root = Root, Target = EspTarget.Qemu, Scenario = "failsafe" }.Build(confirmDisk, Path.Combine(Work, "confirm-esp"));
        var transcripts = new List<Transcript>();
        for (int boot = 1; boot <= Boots; boot++)
        {
            string work = Path.Combine(Work, $"boot{boot}");
            EmulatorCommand command = EmulatorSetup.Create(Root, new EmulatorOptions
            {
                Emulator = Tool.Emulators.Emulator.QemuTcg,
                Disk = boot <= 3 ? crashDisk : confirmDisk,
                WorkDirectory = work,
                VariableStore = vars,
            });
            Transcript t = EmulatorRun.RunToEnd(command, TimeSpan.FromSeconds(240),
                t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown) || t.Contains(EmulatorSetup.Com1, "Kernel panic"));
            transcripts.Add(t);
        }
        return transcripts;
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class FailSafeBootTests(FailSafeBoots boots) : IClassFixture<FailSafeBoots>
{
    private Transcript Boot(int n) => boots.Transcripts[n - 1];

    private string See(int n) => $"see {boots.TranscriptPath(n)}";

    [Fact]
    public void Three_unconfirmed_starts_are_counted_and_launch_the_hypervisor()
    {
        for (int n = 1; n <= 3; n++)
        {
            Assert.True(Boot(n).Contains(EmulatorSetup.Com2, $"vigil: boot counter: start {n} of 3 without confirmation"), $"boot {n}: no count {n}; {See(n)}");
            Assert.True(Boot(n).Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting), $"boot {n}: no hypervisor; {See(n)}");
            Assert.True(Boot(n).Contains(EmulatorSetup.Com1, "VIGIL-GUEST: failsafe: powering off before the agent confirms"), $"boot {n}; {See(n)}");
        }
    }

    [Fact]
    public void The_fourth_start_boots_unprotected_and_says_why_on_the_log_port_and_to_vigild_status()
    {
        Transcript t = Boot(4);
        Assert.True(t.Contains(EmulatorSetup.Com2, "vigil: ERROR: " + BootCounter.FailSafePrefix + "3 starts through the hypervisor in a row never reached"), See(4));
        Assert.True(t.Contains(EmulatorSetup.Com2, "vigil: WARNING: fail-safe boot: the OS boots UNPROTECTED"), See(4));
        Assert.False(t.Contains(EmulatorSetup.Com2, GuestMarkers.HypervisorStarting), $"the hypervisor was started; {See(4)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateUnprotected + BootCounter.FailSafePrefix + "3 starts"), $"vigild status does not say why; {See(4)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "vigild: boot counter: 3 of 3 unconfirmed starts"), See(4));
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild confirm rc=1"), $"confirm must refuse an unprotected boot; {See(4)}");
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild confirm --retry rc=0"), See(4));
        Assert.True(t.Contains(EmulatorSetup.Com1, "vigild: boot counter: 0 of 3 unconfirmed starts"), See(4));
        // vigild run (the service) says so at priority err, and stops: nothing to follow.
        Assert.True(t.Contains(EmulatorSetup.Com1, "<3>" + GuestMarkers.BootStateUnprotected + BootCounter.FailSafePrefix), See(4));
        Assert.True(t.Contains(EmulatorSetup.Com1, "<3>vigild: no Vigil hypervisor answers: nothing to follow"), See(4));
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild run rc=1"), See(4));
    }

    [Fact]
    public void After_a_retry_the_next_boot_is_protected_and_its_confirmation_resets_the_counter()
    {
        Transcript t = Boot(5);
        Assert.True(t.Contains(EmulatorSetup.Com2, "vigil: boot counter: start 1 of 3 without confirmation"), See(5));
        Assert.True(t.Contains(EmulatorSetup.Com1, GuestMarkers.BootStateProtected(1)), See(5));
        Assert.True(t.Contains(EmulatorSetup.Com1, "vigild: confirmed: the OS is up and protected; boot counter reset (was 1)"), See(5));
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild confirm rc=0"), See(5));
        Assert.True(t.Contains(EmulatorSetup.Com1, "vigild: boot counter: 0 of 3 unconfirmed starts"), See(5));
        // vigild run (the service) starts following, with journal priorities, until `timeout` stops it (SIGTERM: 143).
        Assert.True(t.Contains(EmulatorSetup.Com1, "<6>" + GuestMarkers.BootStateProtected(1)), See(5));
        Assert.True(t.Contains(EmulatorSetup.Com1, "<6>vigild: following the guard's events (also to /run/vigild-events.jsonl)"), See(5));
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: vigild run rc=143"), See(5));
    }
}
