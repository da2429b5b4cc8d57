using System;
using System.Text;

namespace Vigil.Tool.Images;

/// <summary>
/// A GUID partition table with one EFI system partition (UEFI 2.10 §5.3): the protective MBR, the header (primary at
/// LBA 1, backup in the last LBA) and a 128-entry array (LBA 2-33, and before the backup header).
/// </summary>
internal sealed class GptDisk
{
    public static readonly Guid EspType = Guid.Parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    public const int EntryCount = 128;
    public const int EntrySize = 128;
    private const int Sector = DiskImage.SectorSize;

    public required long TotalSectors { get; init; }
    public required long Start { get; init; }
    public required long Sectors { get; init; }
    public required Guid DiskGuid { get; init; }
    public required Guid PartitionGuid { get; init; }

    /// <summary>Fixed GUIDs ("VIGIL" in them): the same inputs give the same image.</summary>
    public static GptDisk WithEsp(long totalSectors, long start, long sectors) => new()
    {
        TotalSectors = totalSectors,
        Start = start,
        Sectors = sectors,
        DiskGuid = Guid.Parse("56494749-4c00-4d00-8000-000000000001"),
        PartitionGuid = Guid.Parse("56494749-4c00-4d00-8000-000000000002"),
    };

    private long EntrySectors => EntryCount * EntrySize / Sector;

    public byte[] Entries
    {
        get
        {
            var a = new byte[EntryCount * EntrySize];
            EspType.ToByteArray().CopyTo(a, 0);
            PartitionGuid.ToByteArray().CopyTo(a, 16);
            BitConverter.TryWriteBytes(a.AsSpan(32), Start);
            BitConverter.TryWriteBytes(a.AsSpan(40), Start + Sectors - 1);
            Encoding.Unicode.GetBytes("EFI system partition").CopyTo(a, 56);
            return a;
        }
    }

    public byte[] Header(bool backup)
    {
        var h = new byte[Sector];
        "EFI PART"u8.CopyTo(h);
        BitConverter.TryWriteBytes(h.AsSpan(8), 0x0001_0000u);           // revision 1.0
        BitConverter.TryWriteBytes(h.AsSpan(12), 92u);                   // header size
        long last = TotalSectors - 1;
        BitConverter.TryWriteBytes(h.AsSpan(24), backup ? last : 1L);    // MyLBA
        BitConverter.TryWriteBytes(h.AsSpan(32), backup ? 1L : last);    // AlternateLBA
        BitConverter.TryWriteBytes(h.AsSpan(40), 2 + EntrySectors);      // FirstUsableLBA
        BitConverter.TryWriteBytes(h.AsSpan(48), last - EntrySectors - 1); // LastUsableLBA
        DiskGuid.ToByteArray().CopyTo(h, 56);
        BitConverter.TryWriteBytes(h.AsSpan(72), backup ? last - EntrySectors : 2L); // PartitionEntryLBA
        BitConverter.TryWriteBytes(h.AsSpan(80), (uint)EntryCount);
        BitConverter.TryWriteBytes(h.AsSpan(84), (uint)EntrySize);
        BitConverter.TryWriteBytes(h.AsSpan(88), Crc32.Compute(Entries));
        BitConverter.TryWriteBytes(h.AsSpan(16), Crc32.Compute(h.AsSpan(0, 92)));   // with its own CRC field zero
        return h;
    }

    /// <summary>One type-0xEE entry covering the disk (up to 2 TiB), so MBR-only tools leave it alone.</summary>
    public byte[] ProtectiveMbr()
    {
        var mbr = new byte[Sector];
        ReadOnlySpan<byte> entry = [0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF];
        entry.CopyTo(mbr.AsSpan(446));
        BitConverter.TryWriteBytes(mbr.AsSpan(454), 1u);
        BitConverter.TryWriteBytes(mbr.AsSpan(458), (uint)Math.Min(TotalSectors - 1, uint.MaxValue));
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        return mbr;
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected, as GPT uses it).</summary>
internal static class Crc32
{
    private static readonly uint[] Table = MakeTable();

    private static uint[] MakeTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }
}
