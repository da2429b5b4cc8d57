using System;
using System.IO;
using Vigil.Tool.Images;

namespace Vigil.Tool.Commands;

/// <summary>`vigil esp`: a disk image with the EFI system partition for one emulator.</summary>
internal static class EspCommand
{
    public static int Run(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        EspTarget target = ParseTarget(options.Optional("--target") ?? "qemu");
        string? scenario = options.Optional("--scenario");
        string? configFile = options.Optional("--config");
        string output = options.Required("--out");
        options.EnsureAllUsed();

        var layout = new EspLayout
        {
            Root = root,
            Target = target,
            Scenario = scenario,
            Config = configFile == null ? null : File.ReadAllText(configFile),
        };
        layout.Build(output, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, Path.GetFileNameWithoutExtension(output) + ".esp"));
        Console.WriteLine($"esp: {output} ({new FileInfo(output).Length >> 20} MiB, {target.ToString().ToLowerInvariant()}, scenario {scenario ?? "none"})");
        return 0;
    }

    public static EspTarget ParseTarget(string text) => text switch
    {
        "qemu" or "kvm" => EspTarget.Qemu,
        "bochs" => EspTarget.Bochs,
        _ => throw new UsageException($"--target must be qemu, kvm or bochs, not '{text}'"),
    };
}
