using System;
using System.Collections.Generic;
using System.IO;
using Vigil.Tool.Install;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil install --esp DIR [--loader PATH] [--options TEXT] [--log-port PORT] [--policy FILE] [--efi DIR] [--dry-run]` and
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
        string loaderOptions = options.Optional("--options") ?? "";
        string logPort = options.Optional("--log-port") ?? "none";
        bool dryRun = options.Flag("--dry-run");
        options.EnsureAllUsed();
        if (policy != null && !File.Exists(policy)) throw new ToolException($"--policy {policy}: no such file; nothing changed");
        var installer = new Installer { Firmware = firmware ?? new FirmwareEnvironment(), Esp = esp };
        List<Change> plan = installer.PlanInstall(efi, loader, policy, out string report, loaderOptions, logPort);
        return installer.Finish(plan, dryRun, "install", report, output, "vigil");
    }

    public static int Uninstall(Options options, FirmwareEnvironment? firmware = null, TextWriter? output = null)
    {
        output ??= Console.Out;
        string esp = options.Required("--esp");
        bool dryRun = options.Flag("--dry-run");
        options.EnsureAllUsed();
        var installer = new Installer { Firmware = firmware ?? new FirmwareEnvironment(), Esp = esp };
        return installer.Finish(installer.PlanUninstall(), dryRun, "uninstall", "", output, "vigil");
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
