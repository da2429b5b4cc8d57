using System;
using System.Collections.Generic;
using System.IO;
using Vigil.Tool;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;

namespace Vigil.Tests.Emulator;

/// <summary>
/// One emulator boot shared by all the facts of a test class (emulators are slow: one boot, many
/// checks). The boot happens when a fact first reads <see cref="Transcript"/>, so a class whose facts
/// are all skipped boots nothing. Builds its own ESP from the outputs of `make build` and
/// `make guest`; missing inputs fail the tests (they are never skipped), since `make test` builds them.
/// An emulator that ends on its own before the boot is over (a crash, a configuration it refuses) fails
/// every fact of the class with the same <see cref="EmulatorFailedException"/>: the emulator, its exit
/// status, how long it ran and its last output, instead of checks that could not run (the boot is not
/// retried: the exception is kept).
/// </summary>
public abstract class EmulatorBoot
{
    private readonly Lazy<Transcript> _transcript;

    protected EmulatorBoot(string name, EspLayoutSpec esp, EmulatorSpec emulator, TimeSpan timeout, Func<Transcript, bool>? stopWhen = null)
    {
        Name = name;
        Root = Repository.Root();
        TranscriptPath = Path.Combine(Root, "out", "tests", name, "transcript.txt");
        _transcript = new Lazy<Transcript>(() => Boot(esp, emulator, timeout, stopWhen), System.Threading.LazyThreadSafetyMode.ExecutionAndPublication);
    }

    private Transcript Boot(EspLayoutSpec esp, EmulatorSpec emulator, TimeSpan timeout, Func<Transcript, bool>? stopWhen)
    {
        string work = Path.Combine(Root, "out", "tests", Name);
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        string disk = Path.Combine(work, "disk.img");
        new EspLayout { Root = Root, Target = esp.Target, Scenario = esp.Scenario, Config = esp.Config, Policy = esp.Policy }.Build(disk, Path.Combine(work, "esp"));
        EmulatorCommand command = EmulatorSetup.Create(Root, new EmulatorOptions
        {
            Emulator = emulator.Emulator,
            Disk = disk,
            WorkDirectory = work,
            Cpus = emulator.Cpus,
            CpuModel = emulator.CpuModel,
            BochsIps = emulator.Cpus == 1 ? 20_000_000 : 10_000_000,
            ExtraArguments = emulator.ExtraArguments ?? [],
        });
        return EmulatorRun.RunToEnd(command, timeout, stopWhen);
    }

    public string Name { get; }

    public string Root { get; }

    public Transcript Transcript => _transcript.Value;

    public string TranscriptPath { get; }

    /// <summary>A one-line timing summary; also appended to out/test-results/timings.txt for the notes.</summary>
    public string Timings(params (string Label, string Port, string Text)[] marks)
    {
        var line = $"{Name}: total {Transcript.Seconds:F1} s";
        foreach (var (label, port, text) in marks)
        {
            double? t = Transcript.FirstSeen(port, text);
            line += t is double seconds ? $", {label} {seconds:F1} s" : $", {label} never";
        }
        string results = Path.Combine(Root, "out", "test-results");
        Directory.CreateDirectory(results);
        File.AppendAllText(Path.Combine(results, "timings.txt"), $"{DateTime.UtcNow:u} {line}\n");
        return line;
    }
}

/// <param name="Policy">The bytes of \EFI\vigil\default.pol; null: policy/default.policy compiled (<see cref="EspLayout.Policy"/>).</param>
public sealed record EspLayoutSpec(EspTarget Target, string? Scenario, string? Config = null, byte[]? Policy = null);

/// <param name="ExtraArguments">QEMU arguments or bochsrc lines added to the configuration (<see cref="EmulatorOptions.ExtraArguments"/>).</param>
public sealed record EmulatorSpec(Tool.Emulators.Emulator Emulator, int Cpus = 1, string CpuModel = EmulatorOptions.SvmCpuModel, IReadOnlyList<string>? ExtraArguments = null);
