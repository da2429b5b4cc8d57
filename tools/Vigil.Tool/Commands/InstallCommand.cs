using System;
using System.Collections.Generic;
using System.IO;
using Vigil.Tool.Install;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil install --esp DIR [--loader PATH] [--policy FILE] [--efi DIR] [--dry-run]` and
/// `vigil uninstall --esp DIR [--dry-run]`, run as root on the machine to protect (Install/Installer.cs).
/// </summary>
internal static class InstallCommand
{
    /// <summary>Where the .deb puts the EFI images (packaging/deb).</summary>
    public const string PackagedEfi = "/usr/lib/vigil/efi";

    public static int Install(Options options, FirmwareEnvironment? firmware = null, TextWriter? output = null)
    {
        output ??= Console.Out;
        string esp = options.Required("--esp");
        string? loader = options.Optional("--loader");
        string? policy = options.Optional("--policy");
        string efi = options.Optional("--efi") ?? DefaultEfiDirectory();
        bool dryRun = options.Flag("--dry-run");
        options.EnsureAllUsed();
        if (policy != null && !File.Exists(policy)) throw new ToolException($"--policy {policy}: no such file; nothing changed");
        var installer = new Installer { Firmware = firmware ?? new FirmwareEnvironment(), Esp = esp };
        List<Change> plan = installer.PlanInstall(efi, loader, policy, out string report);
        return Finish(installer, plan, dryRun, "install", report, output);
    }

    public static int Uninstall(Options options, FirmwareEnvironment? firmware = null, TextWriter? output = null)
    {
        output ??= Console.Out;
        string esp = options.Required("--esp");
        bool dryRun = options.Flag("--dry-run");
        options.EnsureAllUsed();
        var installer = new Installer { Firmware = firmware ?? new FirmwareEnvironment(), Esp = esp };
        return Finish(installer, installer.PlanUninstall(), dryRun, "uninstall", "", output);
    }

    private static int Finish(Installer installer, List<Change> plan, bool dryRun, string verb, string report, TextWriter output)
    {
        if (report.Length > 0) output.WriteLine($"{verb}: {report}");
        if (plan.Count == 0)
        {
            output.WriteLine($"{verb}: nothing to change");
            return 0;
        }
        if (dryRun)
        {
            output.WriteLine($"{verb}: --dry-run: would make {plan.Count} changes:");
            foreach (Change c in plan) output.WriteLine("  " + c);
            return 0;
        }
        output.WriteLine($"{verb}: {plan.Count} changes:");
        installer.Apply(plan, output);
        if (verb == "install")
        {
            output.WriteLine("install: done. The way back: `vigil uninstall --esp DIR`, or pick the previous entry in the firmware's boot menu;"
                + " after 3 boots that never confirm (vigild), vigil.efi boots the OS without the hypervisor by itself.");
        }
        return 0;
    }

    private static string DefaultEfiDirectory()
    {
        try
        {
            string built = Path.Combine(Repository.Root(), "out", "efi");
            if (Directory.Exists(built)) return built;
        }
        catch (UsageException)
        {
            // Not run from a checkout: the packaged images.
        }
        return PackagedEfi;
    }
}
