using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Vigil.Tool.Emulators;

public enum Emulator
{
    /// <summary>QEMU in TCG mode: AMD SVM with nested paging (qemu/tcg-svm.args).</summary>
    QemuTcg,

    /// <summary>QEMU/KVM with nested VT-x on a real Intel host (qemu/kvm-vmx.args).</summary>
    QemuKvm,

    /// <summary>Bochs 2.7: Intel VMX with EPT (qemu/bochs/bochsrc.template).</summary>
    Bochs,
}

/// <summary>What to run: the emulator's program, arguments, and the files its serial ports go to.</summary>
public sealed record EmulatorCommand(string Program, IReadOnlyList<string> Arguments, string WorkDirectory, IReadOnlyDictionary<string, string> SerialFiles)
{
    /// <summary>The emulator's own log file (Bochs writes one), or null.</summary>
    public string? LogFile { get; init; }

    /// <summary>Where a headless run keeps what the emulator printed on stdout and stderr.</summary>
    public string OutputFile => Path.Combine(WorkDirectory, "emulator-output.txt");
}

public sealed class EmulatorOptions
{
    /// <summary>The AMD model with SVM and nested paging QEMU's TCG can emulate.</summary>
    public const string SvmCpuModel = "EPYC-v3,+svm,+npt";

    /// <summary>The same model without SVM: a machine that cannot be virtualized.</summary>
    public const string NoSvmCpuModel = "EPYC-v3,-svm";

    /// <summary>An Intel model without VMX (TCG emulates no VMX): the Intel back end's "no VMX" path.</summary>
    public const string NoVmxCpuModel = "Nehalem,-vmx";

    public required Emulator Emulator { get; init; }

    public required string Disk { get; init; }

    public required string WorkDirectory { get; init; }

    public int Cpus { get; init; } = 1;

    public int MemoryMb { get; init; } = 512;

    /// <summary>QEMU TCG's -cpu.</summary>
    public string CpuModel { get; init; } = SvmCpuModel;

    /// <summary>Bochs instructions per emulated second (its notion of time; not a speed limit).</summary>
    public long BochsIps { get; init; } = 20_000_000;

    /// <summary>COM1 on this terminal instead of a file.</summary>
    public bool Interactive { get; init; }

    /// <summary>
    /// Added to the configuration: QEMU arguments, or bochsrc lines (a later bochsrc line overrides an
    /// earlier one of the same option). For boots that need a device or a setting of their own.
    /// </summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>
    /// QEMU only: a writable OVMF variable store (a copy of <see cref="EmulatorSetup.OvmfVarsTemplate"/>) kept
    /// across boots, with the firmware code as a read-only flash (<see cref="EmulatorSetup.OvmfCode"/>) instead
    /// of -bios (whose variables live in memory and die with the emulator). Null: -bios.
    /// </summary>
    public string? VariableStore { get; init; }
}

/// <summary>Turns the configurations in qemu/ into emulator command lines.</summary>
public static class EmulatorSetup
{
    public const string Com1 = "com1";
    public const string Com2 = "com2";

    public static string Ovmf => Environment.GetEnvironmentVariable("VIGIL_OVMF") ?? "/usr/share/ovmf/OVMF.fd";

    /// <summary>OVMF's code alone, for a boot with a separate variable store (<see cref="EmulatorOptions.VariableStore"/>).</summary>
    public static string OvmfCode => Environment.GetEnvironmentVariable("VIGIL_OVMF_CODE") ?? "/usr/share/OVMF/OVMF_CODE.fd";

    /// <summary>The empty variable store that goes with <see cref="OvmfCode"/>; copy it, never boot it.</summary>
    public static string OvmfVarsTemplate => Environment.GetEnvironmentVariable("VIGIL_OVMF_VARS") ?? "/usr/share/OVMF/OVMF_VARS.fd";

    public static EmulatorCommand Create(string root, EmulatorOptions o)
    {
        Directory.CreateDirectory(o.WorkDirectory);
        string com1 = Path.Combine(o.WorkDirectory, "com1.log");
        string com2 = Path.Combine(o.WorkDirectory, "com2.log");
        var serial = new Dictionary<string, string> { [Com2] = com2 };
        if (!o.Interactive) serial[Com1] = com1;
        var values = new Dictionary<string, string>
        {
            ["CPUS"] = o.Cpus.ToString(),
            ["MEMORY_MB"] = o.MemoryMb.ToString(),
            ["OVMF"] = Ovmf,
            ["DISK"] = Path.GetFullPath(o.Disk),
            ["CPU_MODEL"] = o.CpuModel,
            ["SERIAL1"] = com1,
            ["SERIAL2"] = com2,
            ["IPS"] = o.BochsIps.ToString(),
            ["LOG"] = Path.Combine(o.WorkDirectory, "bochs.log"),
        };

        if (o.Emulator == Emulator.Bochs)
        {
            string template = File.ReadAllText(Path.Combine(root, "qemu", "bochs", "bochsrc.template"));
            if (o.Interactive)
            {
                // COM1 on the controlling terminal (Bochs "term" mode) instead of a file.
                template = template.Replace("mode=file, dev=@SERIAL1@", "mode=term, dev=/dev/tty", StringComparison.Ordinal);
            }
            string bochsrc = Path.Combine(o.WorkDirectory, "bochsrc");
            string extra = string.Concat(o.ExtraArguments.Select(line => line + "\n"));
            File.WriteAllText(bochsrc, Fill(template, values) + extra);
            string commands = Path.Combine(o.WorkDirectory, "bochs-commands");
            File.WriteAllText(commands, "c\n");
            // A Bochs that was killed leaves DISK.lock behind and the next one refuses the disk.
            File.Delete(values["DISK"] + ".lock");
            return new EmulatorCommand("bochs", ["-q", "-f", bochsrc, "-rc", commands], o.WorkDirectory, serial) { LogFile = values["LOG"] };
        }

        string argsFile = Path.Combine(root, "qemu", o.Emulator == Emulator.QemuKvm ? "kvm-vmx.args" : "tcg-svm.args");
        var args = File.ReadAllLines(argsFile)
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => Fill(l, values))
            .ToList();
        if (o.VariableStore != null)
        {
            int bios = args.IndexOf("-bios");
            if (bios < 0 || bios + 1 >= args.Count) throw new ToolException($"{argsFile} has no -bios to replace with a variable store");
            args.RemoveRange(bios, 2);
            args.InsertRange(bios, ["-drive", $"if=pflash,format=raw,unit=0,readonly=on,file={OvmfCode}",
                "-drive", $"if=pflash,format=raw,unit=1,file={Path.GetFullPath(o.VariableStore)}"]);
        }
        args.AddRange(o.ExtraArguments);
        args.AddRange(["-display", "none"]);
        if (o.Interactive)
        {
            args.AddRange(["-serial", "mon:stdio", "-serial", "file:" + com2]);
        }
        else
        {
            args.AddRange(["-monitor", "none", "-serial", "file:" + com1, "-serial", "file:" + com2]);
        }
        return new EmulatorCommand("qemu-system-x86_64", args, o.WorkDirectory, serial);
    }

    /// <summary>Replaces every @NAME@; an unknown placeholder is an error, not left in place.</summary>
    internal static string Fill(string template, IReadOnlyDictionary<string, string> values)
    {
        string result = template;
        foreach (var (name, value) in values) result = result.Replace("@" + name + "@", value, StringComparison.Ordinal);
        int at = result.IndexOf('@', StringComparison.Ordinal);
        while (at >= 0)
        {
            int end = result.IndexOf('@', at + 1);
            if (end > at + 1 && result[(at + 1)..end].All(c => char.IsAsciiLetterUpper(c) || char.IsAsciiDigit(c) || c == '_'))
            {
                throw new ToolException($"emulator configuration uses unknown placeholder {result[at..(end + 1)]}");
            }
            at = result.IndexOf('@', at + 1);
        }
        return result;
    }
}
