namespace Vigil.Tests.Emulator;

/// <summary>Lines the firmware, Vigil, Linux and the test guest's /init print, as the tests look for them.</summary>
public static class GuestMarkers
{
    public const string FirmwareStartsBootOption = "BdsDxe: starting Boot";
    public const string VigilBanner = "vigil: Vigil " + ExpectedVersion + " - thin security hypervisor";
    public const string ExpectedVersion = "0.1.0";
    public const string ConfigRead = "vigil: read \\EFI\\vigil\\vigil.conf";
    public const string StartingLoader = "vigil: starting \\EFI\\vigil\\linux.efi with options \"console=ttyS0 initrd=\\EFI\\vigil\\initrd.img panic=-1\"";
    public const string HypervisorPlaced = "vigil: hypervisor image placed at 0x";
    public const string HypervisorStarting = "vigil-hv: hypervisor " + ExpectedVersion + " starting: ";
    public const string Unprotected = "vigil: WARNING: no CPU runs under the hypervisor: the OS boots UNPROTECTED";
    public const string LinuxVersion = "Linux version 6.1.";
    public const string KernelCommandLine = "Command line: console=ttyS0 initrd=\\EFI\\vigil\\initrd.img panic=-1";
    public const string InitStarted = "VIGIL-GUEST: init started";
    public const string HelloModuleLoaded = "VIGIL-GUEST: module hello loaded";
    public const string PoweringOff = "VIGIL-GUEST: powering off";
    public const string PowerDown = "reboot: Power down";

    // Printed by the smoke scenario (tests/guest/scenarios/smoke.sh) through vigild and hvpeek.
    public const string AllCpusProtected = "CPUs run under the hypervisor (";
    public const string VigildCpuidOk = "VIGIL-GUEST: vigild cpuid rc=0";
    public const string VigildStatusOk = "VIGIL-GUEST: vigild status rc=0";
    public const string VigildNoVigil = "vigild: no Vigil hypervisor here";

    /// <summary>vigild status: what vigil.efi published about this boot (hv/Abi/BootState.cs, read through efivarfs).</summary>
    public static string BootStateProtected(int cpus) => $"vigild: boot: protected cpus={cpus} of {cpus}";

    public const string BootStateUnprotected = "vigild: PROTECTION OFF: vigil.efi booted this OS unprotected: ";
    public const string VigildStatusFailed = "VIGIL-GUEST: vigild status rc=1";
    public const string HvpeekNothingReadable = "VIGIL-GUEST: hvpeek nothing-readable";
    public const string HvpeekLeaked = "VIGIL-GUEST: hvpeek LEAKED";
}
