using System;
using System.IO;
using System.Linq;
using Vigil.Tool.Images;
using Xunit;

namespace Vigil.Tests.Tools;

/// <summary>The USB image's partition table (UEFI 2.10 §5.3), checked field by field and against sfdisk when present.</summary>
public class GptDiskTests
{
    private static readonly GptDisk Disk = GptDisk.WithEsp(totalSectors: 131040, start: 2048, sectors: 131040 - 2048 - DiskImage.GptTailSectors);

    [Fact]
    public void Headers_point_at_each_other_and_carry_valid_crcs()
    {
        byte[] primary = Disk.Header(backup: false), backup = Disk.Header(backup: true);
        Assert.Equal("EFI PART"u8.ToArray(), primary[..8]);
        Assert.Equal(1L, BitConverter.ToInt64(primary, 24));
        Assert.Equal(131039L, BitConverter.ToInt64(primary, 32));
        Assert.Equal(131039L, BitConverter.ToInt64(backup, 24));
        Assert.Equal(2L, BitConverter.ToInt64(primary, 72));
        Assert.Equal(131039L - 32, BitConverter.ToInt64(backup, 72));
        Assert.Equal(34L, BitConverter.ToInt64(primary, 40));
        Assert.Equal(131039L - 33, BitConverter.ToInt64(primary, 48));
        foreach (byte[] h in new[] { primary, backup })
        {
            uint crc = BitConverter.ToUInt32(h, 16);
            byte[] zeroed = h[..92];
            Array.Clear(zeroed, 16, 4);
            Assert.Equal(crc, Crc32.Compute(zeroed));
            Assert.Equal(Crc32.Compute(Disk.Entries), BitConverter.ToUInt32(h, 88));
        }
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));   // the CRC-32 check value
    }

    [Fact]
    public void The_one_entry_is_an_esp_inside_the_usable_area_and_the_mbr_protects_the_disk()
    {
        byte[] e = Disk.Entries;
        Assert.Equal(GptDisk.EspType, new Guid(e.AsSpan(0, 16)));
        Assert.Equal(2048L, BitConverter.ToInt64(e, 32));
        Assert.True(BitConverter.ToInt64(e, 40) <= 131039L - 33);
        Assert.True(e.Skip(GptDisk.EntrySize).All(b => b == 0));
        byte[] mbr = Disk.ProtectiveMbr();
        Assert.Equal(0xEE, mbr[446 + 4]);
        Assert.Equal(0xAA55, BitConverter.ToUInt16(mbr, 510));
    }
}
