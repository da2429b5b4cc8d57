using System;
using System.IO;
using Vigil.Boot.Loader;
using Vigil.Tool;
using Xunit;

namespace Vigil.Tests.Boot;

/// <summary>Vigil's PE loader, on a real image built by the no-runtime chain (vigil.efi).</summary>
public class PeImageTests
{
    private static byte[] RealImage()
    {
        string path = Path.Combine(Repository.Root(), "out", "efi", "vigil.efi");
        Assert.True(File.Exists(path), $"{path} is missing: `make test` builds it first");
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void Parses_the_headers_of_a_real_image()
    {
        byte[] file = RealImage();
        Assert.Equal(PeLoadError.None, PeImage.Parse(file, out PeImageInfo info));
        Assert.Equal(0x140000000UL, info.PreferredBase);
        Assert.True(info.SizeOfImage >= file.Length / 2 && info.SizeOfImage % 0x1000 == 0);
        Assert.InRange(info.EntryPointRva, 0x1000u, info.SizeOfImage - 1);
        Assert.True(info.RelocationSize > 0);
    }

    [Theory]
    [InlineData(0x10000000UL)]
    [InlineData(0x7FFF000000UL)]
    [InlineData(0x140000000UL)]
    public void Every_dir64_relocation_moves_by_the_load_delta(ulong loadAddress)
    {
        byte[] file = RealImage();
        Assert.Equal(PeLoadError.None, PeImage.Parse(file, out PeImageInfo info));
        var unrelocated = new byte[info.SizeOfImage];
        var relocated = new byte[info.SizeOfImage];
        Assert.Equal(PeLoadError.None, PeImage.Load(file, unrelocated, info.PreferredBase, out _));
        Assert.Equal(PeLoadError.None, PeImage.Load(file, relocated, loadAddress, out _));

        int count = 0;
        for (int block = (int)info.RelocationRva; block < info.RelocationRva + info.RelocationSize;)
        {
            uint page = BitConverter.ToUInt32(unrelocated, block);
            int size = BitConverter.ToInt32(unrelocated, block + 4);
            for (int e = block + 8; e < block + size; e += 2)
            {
                ushort entry = BitConverter.ToUInt16(unrelocated, e);
                if (entry >> 12 == 0) continue;
                Assert.Equal(10, entry >> 12);
                int at = (int)(page + (entry & 0xFFFu));
                ulong before = BitConverter.ToUInt64(unrelocated, at);
                ulong after = BitConverter.ToUInt64(relocated, at);
                Assert.Equal(loadAddress - info.PreferredBase, after - before);
                // Every pointer the linker recorded points into the image.
                Assert.InRange(before, info.PreferredBase, info.PreferredBase + info.SizeOfImage);
                count++;
            }
            block += size;
        }
        Assert.True(count > 10, $"only {count} relocations");
        // Outside relocated fields, the bytes are the same.
        int differing = 0;
        for (int i = 0; i < relocated.Length; i++) if (relocated[i] != unrelocated[i]) differing++;
        Assert.True(loadAddress == info.PreferredBase ? differing == 0 : differing > 0 && differing <= count * 8);
    }

    [Fact]
    public void Sections_land_at_their_virtual_addresses_and_bss_is_zero()
    {
        byte[] file = RealImage();
        Assert.Equal(PeLoadError.None, PeImage.Parse(file, out PeImageInfo info));
        var image = new byte[info.SizeOfImage];
        image.AsSpan().Fill(0xCC);
        Assert.Equal(PeLoadError.None, PeImage.Load(file, image, info.PreferredBase, out _));
        for (int i = 0; i < info.SectionCount; i++)
        {
            int s = info.SectionTable + (i * 40);
            uint virtualSize = BitConverter.ToUInt32(file, s + 8);
            uint rva = BitConverter.ToUInt32(file, s + 12);
            uint rawSize = BitConverter.ToUInt32(file, s + 16);
            uint raw = BitConverter.ToUInt32(file, s + 20);
            uint copied = Math.Min(rawSize, virtualSize);
            // Loaded at its preferred base nothing is rebased, so the section bytes are the file's.
            Assert.True(file.AsSpan((int)raw, (int)copied).SequenceEqual(image.AsSpan((int)rva, (int)copied)), $"section {i} differs");
            for (uint k = copied; k < virtualSize; k++) Assert.Equal(0, image[rva + k]);
        }
    }

    [Fact]
    public void Rejects_bad_input_with_a_reason()
    {
        byte[] file = RealImage();
        Assert.Equal(PeLoadError.TooSmall, PeImage.Parse(file.AsSpan(0, 16), out _));
        byte[] notMz = (byte[])file.Clone();
        notMz[0] = (byte)'X';
        Assert.Equal(PeLoadError.NotMz, PeImage.Parse(notMz, out _));
        byte[] notAmd64 = (byte[])file.Clone();
        int nt = BitConverter.ToInt32(file, 0x3C);
        notAmd64[nt + 4] = 0x4C;
        notAmd64[nt + 5] = 0x01;   // i386
        Assert.Equal(PeLoadError.NotAmd64, PeImage.Parse(notAmd64, out _));
        byte[] imports = (byte[])file.Clone();
        BitConverter.TryWriteBytes(imports.AsSpan(nt + 24 + 112 + 8 + 4), 40);
        Assert.Equal(PeLoadError.HasImports, PeImage.Parse(imports, out _));
        Assert.Equal(PeLoadError.None, PeImage.Parse(file, out PeImageInfo info));
        Assert.Equal(PeLoadError.DestinationTooSmall, PeImage.Load(file, new byte[info.SizeOfImage - 1], 0x1000000, out _));
        Assert.Equal("the image imports functions (Vigil's loader resolves none)", PeImage.Describe(PeLoadError.HasImports));
    }
}
