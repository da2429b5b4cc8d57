using System;
using System.IO;
using System.Linq;
using Vigil.Tool;
using Xunit;

namespace Vigil.Tests.Tools;

/// <summary>`make deb` (packaging/deb/build.sh): the package holds what a machine needs, owned by root.</summary>
public class DebPackageTests
{
    private static readonly string[] Expected =
    [
        "./usr/sbin/vigild",
        "./usr/lib/systemd/system/vigild.service",
        "./usr/share/initramfs-tools/hooks/vigild",
        "./usr/share/initramfs-tools/scripts/init-premount/vigild",
        "./usr/lib/vigil/efi/vigil.efi",
        "./usr/lib/vigil/efi/vigil-hv.efi",
        "./usr/lib/vigil/tool/vigil.dll",
        "./usr/bin/vigil",
    ];

    [SkippableFact]
    public void The_package_holds_the_agent_its_unit_the_initramfs_hook_the_tool_and_the_efi_images()
    {
        string root = Repository.Root();
        Skip.If(!HostProcess.OnPath("dpkg-deb"), "dpkg-deb is not installed (Debian package dpkg): the .deb cannot be built or read here");
        string[] inputs = [Path.Combine(root, "out", "payload", "vigild"), Path.Combine(root, "out", "efi", "vigil.efi")];
        Skip.If(inputs.Any(f => !File.Exists(f)), $"no {string.Join(" or ", inputs.Where(f => !File.Exists(f)))}: run `make payload` (the .deb packs the built agent and images)");
        string output = Directory.CreateTempSubdirectory("vigil-deb-").FullName;
        try
        {
            var build = HostProcess.Run(Path.Combine(root, "packaging", "deb", "build.sh"), [output], root);
            Assert.True(build.ExitCode == 0, build.Tail());
            string deb = Directory.GetFiles(output, "vigil_*_amd64.deb").Single();
            string listing = HostProcess.RunChecked("dpkg-deb", "-c", deb);
            var lines = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (string member in Expected)
            {
                string? line = lines.FirstOrDefault(l => l.EndsWith(" " + member, StringComparison.Ordinal));
                Assert.True(line != null, $"{member} is not in the .deb:\n{listing}");
                Assert.Contains("root/root", line, StringComparison.Ordinal);
            }
            Assert.StartsWith("-rwxr-xr-x", lines.First(l => l.EndsWith(" ./usr/sbin/vigild", StringComparison.Ordinal)), StringComparison.Ordinal);
            string control = HostProcess.RunChecked("dpkg-deb", "-f", deb, "Package", "Architecture");
            Assert.Contains("Package: vigil", control, StringComparison.Ordinal);
            Assert.Contains("Architecture: amd64", control, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }
}
