using System;
using System.IO;
using Vigil.Tool;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Boot;

/// <summary>The built vigil.efi is a PE32+ EFI application with no imports (built by `make build`).</summary>
public class VigilEfiImageTests(ITestOutputHelper output)
{
    private static byte[] Image()
    {
        string path = Path.Combine(Repository.Root(), "out", "efi", "vigil.efi");
        Assert.True(File.Exists(path), $"{path} is missing: `make test` builds it first (make build)");
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void Is_an_x64_efi_application_without_imports()
    {
        byte[] pe = Image();
        output.WriteLine($"vigil.efi: {pe.Length} bytes");
        Assert.Equal((byte)'M', pe[0]);
        Assert.Equal((byte)'Z', pe[1]);
        int nt = BitConverter.ToInt32(pe, 0x3C);
        Assert.Equal(0x00004550u, BitConverter.ToUInt32(pe, nt));         // "PE\0\0"
        Assert.Equal(0x8664, BitConverter.ToUInt16(pe, nt + 4));           // AMD64
        int optional = nt + 24;
        Assert.Equal(0x20B, BitConverter.ToUInt16(pe, optional));          // PE32+
        Assert.Equal(10, BitConverter.ToUInt16(pe, optional + 68));        // IMAGE_SUBSYSTEM_EFI_APPLICATION
        int directories = optional + 112;
        Assert.Equal(0u, BitConverter.ToUInt32(pe, directories + 8 + 4)); // import directory size: nothing imported
        Assert.NotEqual(0u, BitConverter.ToUInt32(pe, directories + (5 * 8) + 4)); // base relocations: loadable anywhere
    }
}
