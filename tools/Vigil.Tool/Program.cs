using System.Linq;
using System;
using System.IO;
using Vigil.Tool.Stubs;

namespace Vigil.Tool;

/// <summary>`vigil`: the host command line. Each verb is one class; this file only dispatches.</summary>
internal static class Program
{
    private const string Usage = """
        usage: vigil <command> [options]

          stubs --coff FILE           assemble the machine-code stubs (Iced) into a COFF object
          generate                    rewrite every generated source file in the repository
          guest [--scenario NAME]... [--refresh]
                                      the Linux test guest: out/guest/linux.efi, out/guest/NAME/initrd.img
                                      (default: every tests/guest/scenarios/*.sh; --refresh asks apt again)
          esp --target qemu|bochs --out IMG [--scenario NAME] [--config FILE]
                                      a disk image with the EFI system partition for an emulator
          run [--emulator qemu|bochs|kvm] [--scenario NAME] [--cpus N] [--headless] [--timeout S] [--hypervisor on|off]
                                      [--cpu-model QEMU-CPU] [--qemu-arg ARG]... [--append KERNEL-OPTIONS]
                                      build the ESP and boot it (interactive: the guest console here)
          symbolize MAP +0xRVA...      name the methods behind a fail-fast report's caller addresses
          bench [--quick] [--no-bochs] [--cpus N] [--idle S]   Vigil on vs off: idle exits, round trips, workload, boot (out/bench/)
          log FILE [--tsc]            decode a log UART capture: text lines and the hypervisor's binary records
          policy check FILE           check a *.policy (docs/policy.md): every error with file:line:column, the line,
                                      a caret, what was expected and the nearest known name
          policy compile FILE -o OUT  compile it into the binary vigil.efi loads and the hypervisor validates
          policy show OUT             a compiled policy back as text, each rule with its source line
          policy test FILE EVENTS.jsonl [--before-lock]
                                      replay `vigild events --json` output through a policy (text or compiled): the
                                      verdict each event would get and which rule (line) gives it; as after Lock
          install --esp DIR [--loader PATH] [--options TEXT] [--log-port PORT] [--policy FILE] [--efi DIR] [--dry-run]
                                      (root, on the machine to protect) vigil.efi into EFI/vigil on the ESP and
                                      first in BootOrder, chaining the loader booted before (with --options; Vigil's
                                      log to --log-port, default none)
          image --out FILE [--size MIB] [--loader EFI-FILE [--options TEXT]] [--scenario NAME] [--log-port PORT] [--for-bochs]
                                      a GPT disk image for a USB stick: vigil.efi as \EFI\BOOT\BOOTX64.EFI, chaining
                                      the test guest (scenario interactive) or --loader; prints the dd command;
                                      --for-bochs (emulators only): acpitables.efi first, for OVMF under Bochs
          uninstall --esp DIR [--dry-run]
                                      undo install: its boot entry and BootOrder place, EFI/vigil's files
        """;

    private static int Main(string[] args)
    {
        // `vigil help`, `vigil --help`, and `--help`/`-h` after any verb: the usage, exit 0.
        if (args.Length == 0 || System.Array.Exists(args, a => a is "-h" or "--help") || args[0] == "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            var options = new Options(args[0] is "symbolize" or "policy" ? [] : args[1..]);
            return args[0] switch
            {
                "stubs" => StubsCommand(options),
                "generate" => GenerateCommand(options),
                "guest" => Guest.GuestCommand.Run(options),
                "esp" => Commands.EspCommand.Run(options),
                "run" => Commands.RunCommand.Run(options),
                "bench" => Commands.BenchCommand.Run(options),
                "log" => Commands.LogCommand.Run(options),
                "symbolize" => Commands.SymbolizeCommand.Run(args[1..]),
                "policy" => Commands.PolicyCommand.Run(args[1..], Console.Out, Console.Error),
                "install" => Commands.InstallCommand.Install(options),
                "image" => Commands.ImageCommand.Run(options),
                "uninstall" => Commands.InstallCommand.Uninstall(options),
                _ => Fail($"unknown command '{args[0]}'\n{Usage}"),
            };
        }
        catch (UsageException e)
        {
            return Fail(e.Message);
        }
        catch (ToolException e)
        {
            Console.Error.WriteLine("vigil: " + e.Message);
            return 1;
        }
    }

    private static int StubsCommand(Options options)
    {
        string coff = options.Required("--coff");
        string? imageName = options.Optional("--image");
        options.EnsureAllUsed();
        // Hypervisor stubs call into the hypervisor's C# (exit handlers): only its image links them.
        var stubs = imageName is null or "vigil-hv" ? StubCatalog.Stubs : [.. StubCatalog.Stubs.Where(s => s.Binding != StubBinding.Hypervisor)];
        StubImage image = StubImage.Build(stubs, StubCatalog.Data);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(coff))!);
        File.WriteAllBytes(coff, image.ToCoff());
        return 0;
    }

    private static int GenerateCommand(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        options.EnsureAllUsed();
        StubImage image = StubImage.Build(StubCatalog.Stubs, StubCatalog.Data);
        var changed = StubSources.WriteAll(root, image);
        changed.AddRange(Policy.DefaultRulesSource.WriteAll(root));
        Console.WriteLine(changed.Count == 0 ? "generate: everything up to date" : "generate: rewrote " + string.Join(", ", changed));
        return 0;
    }

    internal static int Fail(string message)
    {
        Console.Error.WriteLine("vigil: " + message);
        return 2;
    }
}
