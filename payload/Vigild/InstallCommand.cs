using System;
using System.Collections.Generic;
using Vigil.Tool;
using Vigil.Tool.Install;

namespace Vigil.Agent;

/// <summary>
/// `vigild install --esp DIR --efi DIR [--loader PATH] [--options TEXT] [--log-port PORT] [--dry-run]` and
/// `vigild uninstall --esp DIR [--dry-run]`: `vigil install`/`uninstall` (tools/Vigil.Tool/Install, compiled in) for a
/// system with the agent and no .NET, e.g. from an initramfs or the test guest. Without udev the ESP's partition comes
/// from sysfs and the disk's partition table (FirmwareEnvironment). Exit codes: 0 done, 1 refused, 2 bad usage.
/// </summary>
internal static class InstallCommand
{
    public static int Run(string verb, ReadOnlySpan<string> args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        bool dryRun = false;
        string[] allowed = verb == "install" ? ["--esp", "--efi", "--loader", "--options", "--log-port"] : ["--esp"];
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--dry-run")
            {
                dryRun = true;
                continue;
            }
            if (Array.IndexOf(allowed, args[i]) < 0 || i + 1 >= args.Length || values.ContainsKey(args[i]))
            {
                Console.Error.WriteLine($"vigild {verb}: unexpected '{args[i]}' (takes {string.Join(" VALUE, ", allowed)} VALUE, --dry-run; each once)");
                return 2;
            }
            values[args[i]] = args[++i];
        }
        if (!values.TryGetValue("--esp", out string? esp) || (verb == "install" && !values.ContainsKey("--efi")))
        {
            Console.Error.WriteLine($"vigild {verb}: needs --esp DIR{(verb == "install" ? " and --efi DIR (where vigil.efi and vigil-hv.efi are)" : "")}");
            return 2;
        }
        try
        {
            var installer = new Installer { Firmware = new FirmwareEnvironment(), Esp = esp };
            if (verb == "uninstall") return installer.Finish(installer.PlanUninstall(), dryRun, verb, "", Console.Out, "vigild");
            List<Change> plan = installer.PlanInstall(values["--efi"], values.GetValueOrDefault("--loader"), null, out string report,
                values.GetValueOrDefault("--options") ?? "", values.GetValueOrDefault("--log-port") ?? "none");
            return installer.Finish(plan, dryRun, verb, report, Console.Out, "vigild");
        }
        catch (ToolException e)
        {
            Console.Error.WriteLine($"vigild {verb}: {e.Message}");
            return 1;
        }
    }
}
