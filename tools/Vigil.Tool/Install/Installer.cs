using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Vigil.Tool.Install;

/// <summary>One change `vigil install`/`uninstall` makes; a plan is a list of them, printed by --dry-run.</summary>
public abstract record Change(string Description)
{
    public abstract void Apply(FirmwareEnvironment firmware);

    // Sealed: otherwise every derived record synthesizes its own ToString (all its properties) and plans print that.
    public sealed override string ToString() => Description;
}

public sealed record CopyFile(string Source, string Destination, string Shown) : Change($"copy {Source} -> {Shown}")
{
    public override void Apply(FirmwareEnvironment firmware)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Destination)!);
        File.Copy(Source, Destination, overwrite: true);
    }
}

public sealed record WriteText(string Destination, string Text, string Shown) : Change($"write {Shown}")
{
    public override void Apply(FirmwareEnvironment firmware)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Destination)!);
        File.WriteAllText(Destination, Text);
    }
}

public sealed record DeleteFile(string Target, string Shown) : Change($"delete {Shown}")
{
    public override void Apply(FirmwareEnvironment firmware)
    {
        File.Delete(Target);
        string dir = Path.GetDirectoryName(Target)!;
        if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
    }
}

public sealed record WriteBootEntry(ushort Number, LoadOption Option) : Change($"write {FirmwareEnvironment.BootName(Number)}: {Option}")
{
    public override void Apply(FirmwareEnvironment firmware) => firmware.Write(FirmwareEnvironment.BootName(Number), Option.Encode());
}

public sealed record DeleteBootEntry(ushort Number, LoadOption Option) : Change($"delete {FirmwareEnvironment.BootName(Number)}: {Option}")
{
    public override void Apply(FirmwareEnvironment firmware) => firmware.Delete(FirmwareEnvironment.BootName(Number));
}

public sealed record WriteBootOrder(IReadOnlyList<ushort> Order, IReadOnlyList<ushort> Was)
    : Change($"set BootOrder {Installer.Show(Order)} (was {Installer.Show(Was)})")
{
    public override void Apply(FirmwareEnvironment firmware) => firmware.Write("BootOrder", FirmwareEnvironment.EncodeBootOrder(Order));
}

/// <summary>
/// `vigil install` and `vigil uninstall` as plans: every check first (a refusal changes nothing), then the list of
/// changes, empty when the machine already is as asked (idempotent).
/// </summary>
public sealed class Installer
{
    public const string Directory = "EFI/vigil";
    public const string VigilOnEsp = Directory + "/vigil.efi";
    public const string Description = "Vigil";
    public const string VigilDevicePath = "\\EFI\\vigil\\vigil.efi";

    /// <summary>The files install copies from the EFI directory (out/efi or /usr/lib/vigil/efi).</summary>
    public static readonly string[] EfiFiles = ["vigil.efi", "vigil-hv.efi"];

    /// <summary>What install writes or copies into EFI/vigil: uninstall deletes these and nothing else.</summary>
    public static readonly string[] InstalledFiles = ["vigil.efi", "vigil-hv.efi", "vigil.conf", PolicyHook.FileName];

    /// <summary>Boot loaders recognised on an ESP, in the order they are preferred when the firmware says nothing.</summary>
    public static readonly string[] KnownLoaders =
        ["\\EFI\\debian\\shimx64.efi", "\\EFI\\debian\\grubx64.efi", "\\EFI\\systemd\\systemd-bootx64.efi", "\\EFI\\ubuntu\\shimx64.efi", "\\EFI\\BOOT\\BOOTX64.EFI"];

    public required FirmwareEnvironment Firmware { get; init; }

    public required string Esp { get; init; }

    public static string Show(IEnumerable<ushort> order) => order.Any() ? string.Join(",", order.Select(n => n.ToString("X4"))) : "(empty)";

    /// <summary>The firmware checks both commands share; a ToolException names what is wrong.</summary>
    private void CheckMachine()
    {
        if (!System.IO.Directory.Exists(Firmware.FirmwareDirectory))
            throw new ToolException($"this machine was not booted through UEFI (no {Firmware.FirmwareDirectory}): there is no boot manager to add Vigil to; nothing changed");
        if (!System.IO.Directory.Exists(Esp))
            throw new ToolException($"no ESP at {Esp}: mount the EFI system partition (usually /boot/efi) and pass it with --esp; nothing changed");
        if (!System.IO.Directory.EnumerateDirectories(Esp).Any(d => string.Equals(Path.GetFileName(d), "EFI", StringComparison.OrdinalIgnoreCase)))
            throw new ToolException($"{Esp} has no EFI directory: is it the EFI system partition? nothing changed");
        var mount = Firmware.Mount(Firmware.EfivarsDirectory);
        if (mount == null || !System.IO.Directory.Exists(Firmware.EfivarsDirectory))
            throw new ToolException($"efivarfs is not mounted at {Firmware.EfivarsDirectory} (mount -t efivarfs efivarfs {Firmware.EfivarsDirectory}); nothing changed");
        if (mount.Value.Options.Contains("ro"))
            throw new ToolException($"efivarfs at {Firmware.EfivarsDirectory} is mounted read-only (mount -o remount,rw {Firmware.EfivarsDirectory}); nothing changed");
    }

    private HardDrive EspPartition()
    {
        var mount = Firmware.Mount(Esp) ?? throw new ToolException($"{Esp} is not a mount point (see {Firmware.MountInfo}): pass the ESP's mount point; nothing changed");
        return Firmware.Partition(mount.Device, out string why) ?? throw new ToolException($"cannot tell which partition the ESP is: {why}; nothing changed");
    }

    private string OnEsp(string espPath) => Path.Combine(Esp, espPath.TrimStart('\\', '/').Replace('\\', '/'));

    /// <summary>A path on the ESP as the firmware sees it, or null when no such file exists (FAT: any case).</summary>
    private string? FindOnEsp(string devicePath)
    {
        string current = Esp;
        foreach (string part in devicePath.Split('\\', '/', StringSplitOptions.RemoveEmptyEntries))
        {
            string? next = System.IO.Directory.Exists(current)
                ? System.IO.Directory.EnumerateFileSystemEntries(current).FirstOrDefault(e => string.Equals(Path.GetFileName(e), part, StringComparison.OrdinalIgnoreCase))
                : null;
            if (next == null) return null;
            current = next;
        }
        return File.Exists(current) ? current : null;
    }

    /// <summary>
    /// The loader vigil.conf should start: --loader if given (it must exist on the ESP), else what the firmware
    /// booted (BootCurrent, or the first of BootOrder) when it is a file on this ESP other than vigil.efi, else the
    /// loader an earlier install chose, else the first known loader present. Says how it was found.
    /// </summary>
    public string FindLoader(string? requested, out string how)
    {
        if (requested != null)
        {
            string path = requested.Replace('/', '\\');
            if (!path.StartsWith('\\')) path = "\\" + path;
            if (FindOnEsp(path) == null) throw new ToolException($"--loader {requested}: no such file on the ESP {Esp}; nothing changed");
            how = "--loader";
            return path;
        }
        var entries = Firmware.BootEntries();
        var candidates = new List<(ushort, string)>();
        if (Firmware.BootCurrent is ushort current) candidates.Add((current, "BootCurrent"));
        foreach (ushort n in Firmware.BootOrder) candidates.Add((n, "BootOrder"));
        foreach (var (n, source) in candidates)
        {
            if (!entries.TryGetValue(n, out LoadOption? option) || option.FilePath is not string file) continue;
            if (IsVigil(file) || FindOnEsp(file) == null) continue;
            how = $"{source} {FirmwareEnvironment.BootName(n)} '{option.Description}'";
            return file;
        }
        string? earlier = PreviousLoader();
        if (earlier != null && FindOnEsp(earlier) != null)
        {
            how = "the earlier install's vigil.conf";
            return earlier;
        }
        foreach (string known in KnownLoaders)
        {
            if (FindOnEsp(known) != null)
            {
                how = "found on the ESP";
                return known;
            }
        }
        throw new ToolException($"no boot loader to chain: the firmware's entries point at nothing on {Esp}, and none of {string.Join(", ", KnownLoaders)} is there; pass --loader; nothing changed");
    }

    private static bool IsVigil(string file) => string.Equals(file.Replace('/', '\\'), VigilDevicePath, StringComparison.OrdinalIgnoreCase);

    private string? PreviousLoader()
    {
        string conf = OnEsp(Directory + "/vigil.conf");
        if (!File.Exists(conf)) return null;
        foreach (string line in File.ReadLines(conf))
        {
            string[] kv = line.Split('=', 2);
            if (kv.Length == 2 && kv[0].Trim() == "loader") return kv[1].Trim();
        }
        return null;
    }

    /// <param name="options">The loader's load options (a Linux kernel's command line); shim and GRUB take none.</param>
    /// <param name="logPort">Vigil's log port (com1-com4 or an I/O port), or none.</param>
    public static string Config(string loader, string options = "", string logPort = "none") =>
        $"""
        # vigil.conf written by `vigil install`: vigil.efi starts the hypervisor, then the boot loader that was
        # booted before Vigil was installed. `vigil uninstall` removes Vigil again.
        loader = {loader}
        # {(options.Length == 0 ? "shim and GRUB read their own configuration; nothing to pass." : "The loader's options (install --options).")}
        options = {options}
        # A serial port for Vigil's log (com1-com4, or an I/O port); none on machines without one.
        log_port = {logPort}
        hypervisor = on
        # The compiled policy (vigil policy compile); a missing or bad file: the built-in rules, said loudly.
        policy = \EFI\vigil\default.pol
        """ + "\n";

    public List<Change> PlanInstall(string efiDirectory, string? loader, string? policyFile, out string report, string loaderOptions = "", string logPort = "none")
    {
        CheckMachine();
        foreach (string f in EfiFiles)
        {
            if (!File.Exists(Path.Combine(efiDirectory, f))) throw new ToolException($"missing {Path.Combine(efiDirectory, f)}: build with `make build` or pass --efi DIR; nothing changed");
        }
        if (Firmware.SecureBootEnabled && !PeSignature.IsSigned(Path.Combine(efiDirectory, "vigil.efi")))
            throw new ToolException("Secure Boot is enabled and vigil.efi is not signed: the firmware would refuse to start it. Sign vigil.efi and vigil-hv.efi"
                + " with a key the firmware trusts (sbsign; enroll the key with mokutil) or turn Secure Boot off; nothing changed");
        string chain = FindLoader(loader, out string how);
        HardDrive partition = EspPartition();
        var changes = new List<Change>();
        foreach (string f in EfiFiles) AddCopy(changes, Path.Combine(efiDirectory, f), Directory + "/" + f);
        // The compiled default policy beside the EFI images when no other is given (`make build`: out/efi/default.pol).
        if (policyFile == null && File.Exists(Path.Combine(efiDirectory, PolicyHook.FileName))) policyFile = Path.Combine(efiDirectory, PolicyHook.FileName);
        if (policyFile != null) AddCopy(changes, policyFile, Directory + "/" + PolicyHook.FileName);
        if (loaderOptions.Contains('\n') || logPort.Contains('\n')) throw new ToolException("--options and --log-port are one line each; nothing changed");
        string conf = Config(chain, loaderOptions, logPort);
        string confPath = OnEsp(Directory + "/vigil.conf");
        if (!File.Exists(confPath) || File.ReadAllText(confPath) != conf) changes.Add(new WriteText(confPath, conf, Directory + "/vigil.conf"));

        var entries = Firmware.BootEntries();
        var wanted = LoadOption.ForFile(Description, partition, VigilDevicePath);
        ushort number;
        var existing = entries.Where(e => IsVigil(e.Value.FilePath ?? "") && e.Value.Partition == partition).Select(e => e.Key).ToList();
        if (existing.Count > 0)
        {
            number = existing[0];
            if (!entries[number].Encode().AsSpan().SequenceEqual(wanted.Encode())) changes.Add(new WriteBootEntry(number, wanted));
        }
        else
        {
            number = 0;
            while (entries.ContainsKey(number)) number = checked((ushort)(number + 1));
            changes.Add(new WriteBootEntry(number, wanted));
        }
        List<ushort> order = Firmware.BootOrder;
        var newOrder = new List<ushort> { number };
        newOrder.AddRange(order.Where(n => n != number));
        if (!newOrder.SequenceEqual(order)) changes.Add(new WriteBootOrder(newOrder, order));
        report = $"loader = {chain} ({how}); boot entry {FirmwareEnvironment.BootName(number)} on {partition}";
        return changes;
    }

    private void AddCopy(List<Change> changes, string source, string espPath)
    {
        string destination = OnEsp(espPath);
        if (File.Exists(destination) && File.ReadAllBytes(destination).AsSpan().SequenceEqual(File.ReadAllBytes(source))) return;
        changes.Add(new CopyFile(source, destination, espPath));
    }

    public List<Change> PlanUninstall()
    {
        CheckMachine();
        var changes = new List<Change>();
        var entries = Firmware.BootEntries();
        var ours = entries.Where(e => IsVigil(e.Value.FilePath ?? "") && e.Value.Description == Description).ToList();
        List<ushort> order = Firmware.BootOrder;
        var newOrder = order.Where(n => !ours.Any(o => o.Key == n)).ToList();
        if (!newOrder.SequenceEqual(order)) changes.Add(new WriteBootOrder(newOrder, order));
        foreach (var (n, option) in ours) changes.Add(new DeleteBootEntry(n, option));
        foreach (string f in InstalledFiles)
        {
            string path = OnEsp(Directory + "/" + f);
            if (File.Exists(path)) changes.Add(new DeleteFile(path, Directory + "/" + f));
        }
        return changes;
    }

    /// <summary>Prints the plan (--dry-run) or applies it, as `vigil install`/`uninstall` and `vigild install` do.</summary>
    public int Finish(List<Change> plan, bool dryRun, string verb, string report, TextWriter output, string toolName)
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
        Apply(plan, output);
        if (verb == "install")
        {
            output.WriteLine($"install: done. The way back: `{toolName} uninstall --esp DIR`, or pick the previous entry in the firmware's boot menu;"
                + " after 3 boots that never confirm (vigild), vigil.efi boots the OS without the hypervisor by itself.");
        }
        return 0;
    }

    /// <summary>Applies a plan in order; a failure part-way says what was done and what was not.</summary>
    public void Apply(IReadOnlyList<Change> changes, TextWriter log)
    {
        for (int i = 0; i < changes.Count; i++)
        {
            try
            {
                changes[i].Apply(Firmware);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ToolException($"{changes[i]}: {e.Message} ({i} of {changes.Count} changes were made; run the command again, or `vigil uninstall`)");
            }
            log.WriteLine("  " + changes[i]);
        }
    }
}

/// <summary>
/// Where the compiled policy goes (issue 11, docs/policy-delivery.md): \EFI\vigil\default.pol, which vigil.conf's
/// `policy =` names. Install copies --policy FILE there, else the compiled default policy beside the EFI images
/// (`make build` writes out/efi/default.pol); images carry it through <see cref="Images.EspLayout"/>.
/// </summary>
public static class PolicyHook
{
    public const string FileName = "default.pol";
}
