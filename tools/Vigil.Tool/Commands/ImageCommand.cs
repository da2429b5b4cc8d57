using System;
using System.IO;
using Vigil.Tool.Images;
using Vigil.Tool.Install;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil image --out FILE [--size MIB] [--loader FILE [--options TEXT]] [--scenario NAME] [--policy FILE] [--for-bochs]`: a
/// raw GPT disk image for a USB stick, without root (mtools): an ESP with \EFI\BOOT\BOOTX64.EFI = vigil.efi, vigil-hv.efi,
/// vigil.conf, and a loader to chain: the test guest (scenario interactive, a shell on the screen and COM1) or --loader.
/// --for-bochs is an emulator-only aid: OVMF under Bochs has no ACPI tables, so \EFI\BOOT\BOOTX64.EFI becomes the test
/// harness acpitables.efi, which installs them and starts \EFI\vigil\vigil.efi (as every Bochs boot of the tests does);
/// everything else on the image is the same. Never for a real PC, whose firmware has its own tables.
/// </summary>
internal static class ImageCommand
{
    public const string LoaderOnEsp = "EFI/vigil/loader.efi";

    /// <summary>The guest on a real machine: its console on the screen and on COM1.</summary>
    public const string UsbGuestOptions = "console=tty0 console=ttyS0,115200 initrd=\\EFI\\vigil\\initrd.img";

    public static int Run(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        string output = options.Required("--out");
        int sizeMib = options.OptionalInt("--size", 0);
        string? loader = options.Optional("--loader");
        string? loaderOptions = options.Optional("--options");
        string? scenario = options.Optional("--scenario");
        string? policy = options.Optional("--policy");
        string? logPort = options.Optional("--log-port");
        bool forBochs = options.Flag("--for-bochs");
        options.EnsureAllUsed();
        if (sizeMib < 0) throw new UsageException("--size must be a positive number of MiB");
        if (loader != null && scenario != null) throw new UsageException("--loader and --scenario exclude each other: the image chains one loader");
        if (loader == null && loaderOptions != null) throw new UsageException("--options goes with --loader (the test guest's options are fixed)");
        if (loader != null && !File.Exists(loader)) throw new ToolException($"--loader {loader}: no such file");
        if (policy != null && !File.Exists(policy)) throw new ToolException($"--policy {policy}: no such file");

        var extra = new System.Collections.Generic.List<(string, string)>();
        if (loader != null) extra.Add((loader, LoaderOnEsp));
        string config = Config(loader != null ? "\\" + LoaderOnEsp.Replace('/', '\\') : EspLayout.KernelOnEsp.Replace('/', '\\').Insert(0, "\\"),
            loader != null ? loaderOptions ?? "" : UsbGuestOptions, logPort ?? "com1");
        var layout = new EspLayout
        {
            Root = root,
            // vigil.efi is \EFI\BOOT\BOOTX64.EFI: what a PC's firmware starts from a removable disk; for Bochs the harness
            // acpitables.efi is, and it starts \EFI\vigil\vigil.efi (EspLayout).
            Target = forBochs ? EspTarget.Bochs : EspTarget.Qemu,
            Scenario = loader == null ? scenario ?? "interactive" : null,
            Config = config,
            Partitioning = DiskPartitioning.Gpt,
            MinimumBytes = (long)sizeMib << 20,
            ExtraFiles = extra,
            Policy = policy != null ? File.ReadAllBytes(policy) : null,   // else policy/default.policy compiled
        };
        string work = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, Path.GetFileNameWithoutExtension(output) + ".esp");
        layout.Build(output, work);
        long bytes = new FileInfo(output).Length;
        Console.WriteLine($"image: {output} ({bytes >> 20} MiB, GPT, one EFI system partition; loader {(loader ?? $"the test guest, scenario {layout.Scenario}")})");
        if (forBochs)
        {
            Console.WriteLine("image: --for-bochs: \\EFI\\BOOT\\BOOTX64.EFI is the test harness acpitables.efi (ACPI tables for OVMF under Bochs), then vigil.efi;"
                + " for an emulator only, not for a USB stick");
            return 0;
        }
        Console.WriteLine($"""
            To write it to a USB stick (everything on the stick is lost; check the device with lsblk first):
              sudo dd if={output} of=/dev/sdX bs=4M conv=fsync status=progress
            then boot the machine from the stick (the firmware's boot menu, often F12, Esc or F9; Secure Boot off,
            vigil.efi is not signed). Vigil's log goes to {logPort ?? "com1"}; the guest's console to the screen and COM1.
            Try it in QEMU first: qemu-system-x86_64 -machine q35 -cpu EPYC-v3,+svm,+npt -m 512 -bios {EmulatorsOvmf()} -drive file={output},format=raw -serial stdio
            """);
        return 0;
    }

    public static string Config(string loader, string options, string logPort) =>
        $"""
        # vigil.conf written by `vigil image`: vigil.efi (\EFI\BOOT\BOOTX64.EFI) starts the hypervisor, then this loader.
        loader = {loader}
        options = {options}
        log_port = {logPort}
        hypervisor = on
        policy = \EFI\vigil\default.pol
        """ + "\n";

    private static string EmulatorsOvmf() => Emulators.EmulatorSetup.Ovmf;
}
