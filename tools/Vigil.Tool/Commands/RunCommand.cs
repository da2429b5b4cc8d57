using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil run`: builds the ESP for an emulator and boots it — interactively (the guest's console on
/// this terminal) or headless with a time limit, printing the serial output as it arrives.
/// </summary>
internal static class RunCommand
{
    public static int Run(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        string emulatorName = options.Optional("--emulator") ?? "qemu";
        string scenario = options.Optional("--scenario") ?? "interactive";
        int cpus = options.OptionalInt("--cpus", 1);
        bool headless = options.Flag("--headless");
        int timeout = options.OptionalInt("--timeout", 600);
        string hypervisor = options.Optional("--hypervisor") ?? "on";
        string? chosenCpuModel = options.Optional("--cpu-model");
        string cpuModel = chosenCpuModel ?? EmulatorOptions.SvmCpuModel;
        IReadOnlyList<string> extra = options.Multiple("--qemu-arg");
        string? append = options.Optional("--append");
        options.EnsureAllUsed();
        if (hypervisor is not ("on" or "off")) throw new UsageException($"--hypervisor must be on or off, not '{hypervisor}'");

        Emulator emulator = emulatorName switch
        {
            "qemu" => Emulator.QemuTcg,
            "kvm" => Emulator.QemuKvm,
            "bochs" => Emulator.Bochs,
            _ => throw new UsageException($"--emulator must be qemu, kvm or bochs, not '{emulatorName}'"),
        };
        if (emulator == Emulator.Bochs && (extra.Count > 0 || chosenCpuModel != null))
        {
            throw new UsageException("--cpu-model and --qemu-arg are for QEMU; Bochs takes its CPU from qemu/bochs/bochsrc.template");
        }
        if (cpus is < 1 or > 64) throw new UsageException("--cpus must be between 1 and 64");
        if (emulator == Emulator.QemuKvm && KvmSupport.Problem() is string problem)
        {
            Console.Error.WriteLine($"vigil run: QEMU/KVM with nested VT-x is not available here: {problem}");
            return 1;
        }

        string work = Path.Combine(root, "out", "run", emulatorName);
        string disk = Path.Combine(work, "disk.img");
        EspTarget target = EspCommand.ParseTarget(emulatorName);
        // `--hypervisor off` boots the same chain with `hypervisor = off` in vigil.conf (unprotected, said loudly).
        // `--append` adds kernel options (e.g. pti=on: page-table isolation on an AMD model, which has it off by default).
        string? config = hypervisor == "off" || append != null
            ? EspLayout.DefaultConfig(target, scenario).Replace(EspLayout.GuestOptions, EspLayout.GuestOptions + (append != null ? " " + append : ""), StringComparison.Ordinal)
                + (hypervisor == "off" ? "hypervisor = off\n" : "")
            : null;
        new EspLayout { Root = root, Target = target, Scenario = scenario, Config = config }
            .Build(disk, Path.Combine(work, "esp"));
        var command = EmulatorSetup.Create(root, new EmulatorOptions
        {
            Emulator = emulator,
            Disk = disk,
            WorkDirectory = work,
            Cpus = cpus,
            CpuModel = cpuModel,
            ExtraArguments = extra,
            BochsIps = cpus == 1 ? 20_000_000 : 10_000_000,
            Interactive = !headless,
        });

        Console.WriteLine(Explanation(emulator, cpus, scenario, command.SerialFiles[EmulatorSetup.Com2], headless));
        if (headless)
        {
            // The run is over when Linux says it powers off (Bochs then exits with status 1, as on a panic).
            Transcript transcript;
            try
            {
                transcript = EmulatorRun.RunToEnd(command, TimeSpan.FromSeconds(timeout), t => t.Contains(EmulatorSetup.Com1, PowerDown), Console.Out);
            }
            catch (EmulatorFailedException e)
            {
                Console.Error.WriteLine("vigil run: " + e.Message);
                return 1;
            }
            Console.WriteLine(transcript.TimedOut ? $"vigil run: stopped after the {timeout} s limit"
                : transcript.EndedOnItsOwn ? $"vigil run: the guest powered off; emulator exited ({transcript.ExitCode}) after {transcript.Seconds:F1} s"
                : $"vigil run: the guest powered off after {transcript.Seconds:F1} s");
            return transcript.TimedOut ? 1 : 0;
        }

        var info = new ProcessStartInfo(command.Program) { UseShellExecute = false, WorkingDirectory = command.WorkDirectory };
        foreach (string arg in command.Arguments) info.ArgumentList.Add(arg);
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(info) ?? throw new ToolException($"cannot start {command.Program}");
        process.WaitForExit();
        Console.WriteLine($"\nvigil run: {command.Program} exited ({process.ExitCode}) after {stopwatch.Elapsed.TotalSeconds:F1} s. Vigil's log (COM2): {command.SerialFiles[EmulatorSetup.Com2]}");
        // Its stderr was on this terminal; Bochs explains itself in its log file (it also ends with status 1
        // when the guest powers off through ACPI, so the log's last lines tell which it was).
        if (process.ExitCode != 0 && command.LogFile != null)
        {
            Console.Error.WriteLine($"vigil run: {EmulatorFailure.NameOf(command)} ended {EmulatorFailure.Status(process.ExitCode)}; last lines of its log ({command.LogFile}):");
            foreach (string line in EmulatorFailure.Tail(command.LogFile)) Console.Error.WriteLine("    | " + line);
        }
        return 0;
    }

    /// <summary>What Linux prints last when it powers the machine off.</summary>
    private const string PowerDown = "reboot: Power down";

    private static string Explanation(Emulator emulator, int cpus, string scenario, string log, bool headless)
    {
        string machine = emulator switch
        {
            Emulator.QemuTcg => "QEMU, software emulation (TCG) of an AMD EPYC with SVM + nested paging",
            Emulator.QemuKvm => "QEMU/KVM on this host's Intel CPU with nested VT-x",
            _ => "Bochs 2.7 emulating an Intel Skylake-X with VMX + EPT (slow: minutes to the shell)",
        };
        string chain = emulator == Emulator.Bochs
            ? "OVMF firmware -> acpitables.efi (test harness: ACPI tables Bochs lacks) -> vigil.efi -> Linux"
            : "OVMF firmware -> vigil.efi -> Linux";
        string leave = headless
            ? "Headless: the serial output follows; the run ends when the guest powers off or the time limit passes."
            : emulator == Emulator.Bochs
                ? "Leave: type `poweroff -f` in the guest shell (or close Bochs with Ctrl-C here)."
                : "Leave: type `poweroff -f` in the guest shell, or press Ctrl-A then X to quit QEMU.";
        return $"""
            ------------------------------------------------------------------------------
             Vigil test machine: {machine}, {cpus} CPU(s)
             Boot chain: {chain}
             Guest: Debian kernel + busybox initramfs, scenario "{scenario}"; this terminal is
             COM1: the firmware console, Vigil's banner, then the Linux console and a shell.
             Vigil's own log goes to COM2: {log}
             {leave}
            ------------------------------------------------------------------------------
            """;
    }
}
