using System.IO;

namespace Vigil.Tool.Guest;

/// <summary>Where the guest's sources are in the repository and where `vigil guest` puts what it makes.
/// The outputs are what <see cref="Images.EspLayout"/> picks up.</summary>
internal sealed class GuestLayout(string root)
{
    public string Sources => Path.Combine(root, "tests", "guest");

    public string InitScript => Path.Combine(Sources, "init.sh");

    public string ScenarioSources => Path.Combine(Sources, "scenarios");

    public string ModuleSources => Path.Combine(Sources, "modules");

    /// <summary>Test policies (*.policy), compiled into every initramfs as /etc/vigil/policies/NAME.pol.</summary>
    public string PolicySources => Path.Combine(Sources, "policies");

    /// <summary>Downloaded .debs and resolved.txt; kept by `make clean` so rebuilding needs no network.</summary>
    public string DebCache => Path.Combine(Repository.Out(root), "cache", "debs");

    public string Output => Path.Combine(Repository.Out(root), "guest");

    public string PackageRoot => Path.Combine(Output, "pkgroot");

    public string ModuleBuilds => Path.Combine(Output, "modules");

    public string Kernel => Path.Combine(Output, "linux.efi");

    /// <summary>vigild as `dotnet publish payload/Vigild -o out/payload` leaves it.</summary>
    public string Vigild => Path.Combine(Repository.Out(root), "payload", "vigild");

    public string Initrd(string scenario) => Path.Combine(Output, scenario, "initrd.img");
}
