using System.Collections.Generic;
using System.IO;

namespace Vigil.Tool.Images;

/// <summary>Which emulator an ESP is made for: it decides what the firmware starts first.</summary>
public enum EspTarget
{
    /// <summary>QEMU (TCG or KVM): OVMF has ACPI tables; vigil.efi is \EFI\BOOT\BOOTX64.EFI.</summary>
    Qemu,

    /// <summary>Bochs: OVMF has no ACPI tables; the harness tool acpitables.efi starts first and chains to vigil.efi.</summary>
    Bochs,
}

/// <summary>What goes on a test ESP, built from the outputs of `make build` and `vigil guest`.</summary>
public sealed class EspLayout
{
    public const string VigilOnEsp = "EFI/vigil/vigil.efi";
    public const string HypervisorOnEsp = "EFI/vigil/vigil-hv.efi";
    public const string ConfigOnEsp = "EFI/vigil/vigil.conf";
    public const string KernelOnEsp = "EFI/vigil/linux.efi";
    public const string InitrdOnEsp = "EFI/vigil/initrd.img";
    public const string PolicyOnEsp = "EFI/vigil/default.pol";

    /// <summary>The largest compiled policy vigil.efi hands over: PolicyStatus.MaxImageBytes (hv/Abi/StatusReport.cs; a unit test checks they agree).</summary>
    public const int MaxPolicyBytes = 64 * 1024;

    /// <summary>The default policy's source in the repository, compiled onto every ESP.</summary>
    public const string DefaultPolicySource = "policy/default.policy";

    /// <summary>The kernel command line of the test guest: its console on COM1, reboot (= exit) on panic.</summary>
    public const string GuestOptions = "console=ttyS0 initrd=\\EFI\\vigil\\initrd.img panic=-1";

    public required string Root { get; init; }

    public required EspTarget Target { get; init; }

    /// <summary>Scenario whose initrd is used; null for an ESP without a guest.</summary>
    public string? Scenario { get; init; }

    /// <summary>vigil.conf content; null writes the default one for the test guest.</summary>
    public string? Config { get; init; }

    /// <summary>
    /// The bytes put on the ESP as \EFI\vigil\default.pol; null: policy/default.policy compiled now (every ESP the tools
    /// build carries the default policy as the repository has it). Tests put other policies, or damaged ones, there.
    /// </summary>
    public byte[]? Policy { get; init; }

    /// <summary>MBR for the emulator images; GPT for the USB image (`vigil image`).</summary>
    public DiskPartitioning Partitioning { get; init; } = DiskPartitioning.Mbr;

    /// <summary>The least size of the disk image in bytes (0: just big enough).</summary>
    public long MinimumBytes { get; init; }

    /// <summary>
    /// More (host file, ESP path) pairs: `vigil image --loader`'s loader. The policy file of issue 11 goes in here
    /// too when this layout does not add it itself (see Install/PolicyHook.cs).
    /// </summary>
    public IReadOnlyList<(string Source, string EspPath)> ExtraFiles { get; init; } = [];

    public string VigilEfi => Path.Combine(Root, "out", "efi", "vigil.efi");

    public string HypervisorImage => Path.Combine(Root, "out", "efi", "vigil-hv.efi");

    public string AcpiTablesEfi => Path.Combine(Root, "out", "efi", "acpitables.efi");

    public string Kernel => Path.Combine(Root, "out", "guest", "linux.efi");

    public string Initrd => Path.Combine(Root, "out", "guest", Scenario ?? "", "initrd.img");

    public static string DefaultConfig(EspTarget target, string? scenario) =>
        $"""
        # vigil.conf written by `vigil esp` for the {target.ToString().ToLowerInvariant()} test guest (scenario {scenario ?? "none"}).
        loader = \EFI\vigil\linux.efi
        options = {GuestOptions}
        log_port = com2
        policy = \EFI\vigil\default.pol
        """ + "\n";

    /// <summary>Writes the image; <paramref name="work"/> receives the generated vigil.conf.</summary>
    public void Build(string image, string work)
    {
        Directory.CreateDirectory(work);
        string config = Path.Combine(work, "vigil.conf");
        File.WriteAllText(config, Config ?? DefaultConfig(Target, Scenario));
        string policy = Path.Combine(work, "default.pol");
        File.WriteAllBytes(policy, Policy ?? CompileDefaultPolicy(Root));
        var files = new List<(string, string)>
        {
            (Target == EspTarget.Bochs ? AcpiTablesEfi : VigilEfi, "EFI/BOOT/BOOTX64.EFI"),
            (VigilEfi, VigilOnEsp),
            (HypervisorImage, HypervisorOnEsp),
            (config, ConfigOnEsp),
            (policy, PolicyOnEsp),
        };
        if (Scenario != null)
        {
            files.Add((Kernel, KernelOnEsp));
            files.Add((Initrd, InitrdOnEsp));
        }
        files.AddRange(ExtraFiles);
        foreach (var (source, _) in files)
        {
            if (!File.Exists(source))
            {
                throw new ToolException($"missing {source}: run `make build` (images) and `make guest` (test guest) first, or simply `make image`");
            }
        }
        DiskImage.Build(image, files, Partitioning, MinimumBytes);
    }

    /// <summary>policy/default.policy compiled with `vigil policy compile`'s compiler (a bad source fails the build, with its errors).</summary>
    public static byte[] CompileDefaultPolicy(string root) => CompilePolicy(Path.Combine(root, DefaultPolicySource));

    /// <summary>
    /// A policy source compiled and checked as the hypervisor will check it; a source with errors, or a result larger than a
    /// delivered policy may be (PolicyStatus.MaxImageBytes), fails with the compiler's findings.
    /// </summary>
    public static byte[] CompilePolicy(string source)
    {
        if (!File.Exists(source)) throw new ToolException($"missing {source}: the policy every ESP carries");
        Tool.Policy.PolicyCompilation c = Tool.Policy.PolicyCompiler.Compile(Path.GetFileName(source), File.ReadAllBytes(source));
        if (c.Policy == null || c.HasErrors) throw new ToolException($"{source} does not compile:\n{c.Format(source)}");
        byte[] blob = c.Policy.ToBlob();
        Hypervisor.Core.Guard.GuardPolicyError e = Hypervisor.Core.Guard.GuardPolicyImage.Validate(blob, out _);
        if (e != Hypervisor.Core.Guard.GuardPolicyError.None) throw new ToolException($"{source}: the compiled policy does not validate: {Hypervisor.Core.Guard.GuardPolicyImage.Describe(e)}");
        if (blob.Length > MaxPolicyBytes) throw new ToolException($"{source}: compiled it has {blob.Length} bytes; vigil.efi hands over at most {MaxPolicyBytes}");
        return blob;
    }
}
