using System;
using System.Collections.Generic;
using System.IO;

namespace Vigil.Tool.Images;

/// <summary>How the disk is partitioned: the emulator images use an MBR, the USB image (`vigil image`) GPT.</summary>
public enum DiskPartitioning
{
    Mbr,
    Gpt,
}

/// <summary>
/// A flat disk image holding one EFI system partition: an MBR with a single type-0xEF entry (or GPT: a
/// protective MBR, primary and backup GPT headers and entry arrays, one ESP entry) at LBA 2048 and a
/// FAT32 file system made with mtools. The geometry (16 heads, 63 sectors) and the cylinder-multiple
/// size let Bochs use it as a flat disk; QEMU takes it as a raw drive. No root: no loop devices.
/// </summary>
internal static class DiskImage
{
    /// <summary>Sectors GPT keeps at the end of the disk: the backup entry array (32) and header (1).</summary>
    public const int GptTailSectors = 33;
    public const int SectorSize = 512;
    public const int Heads = 16;
    public const int SectorsPerTrack = 63;
    public const int PartitionStart = 2048;

    /// <summary>Builds <paramref name="output"/> from (host file, path on the ESP with '/' separators).</summary>
    public static void Build(string output, IReadOnlyList<(string Source, string EspPath)> files, DiskPartitioning partitioning = DiskPartitioning.Mbr, long minimumBytes = 0)
    {
        long payload = 0;
        foreach (var (source, _) in files)
        {
            if (!File.Exists(source)) throw new ToolException($"missing input for the ESP: {source}");
            payload += new FileInfo(source).Length;
        }
        // Room for the files, FAT32's minimum cluster count and some slack; whole cylinders.
        long wanted = Math.Max(Math.Max(64L << 20, minimumBytes), (payload * 5 / 4) + (16L << 20));
        long cylinderBytes = (long)Heads * SectorsPerTrack * SectorSize;
        long cylinders = (wanted + cylinderBytes - 1) / cylinderBytes;
        long totalSectors = cylinders * Heads * SectorsPerTrack;
        long partitionSectors = totalSectors - PartitionStart - (partitioning == DiskPartitioning.Gpt ? GptTailSectors : 0);

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        string partition = output + ".part";
        File.Delete(partition);
        using (var f = File.Create(partition)) f.SetLength(partitionSectors * SectorSize);
        try
        {
            HostProcess.RunChecked("mformat", "-i", partition, "-F", "-v", "VIGIL", "-N", "56494749",
                "-h", Heads.ToString(), "-s", SectorsPerTrack.ToString(), "-H", PartitionStart.ToString(), "-T", partitionSectors.ToString(), "::");
            var made = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (var (source, espPath) in files)
            {
                string[] parts = espPath.Trim('/').Split('/');
                string dir = "";
                for (int i = 0; i < parts.Length - 1; i++)
                {
                    dir += "/" + parts[i];
                    if (made.Add(dir)) HostProcess.RunChecked("mmd", "-i", partition, "::" + dir);
                }
                HostProcess.RunChecked("mcopy", "-o", "-i", partition, source, "::/" + espPath.Trim('/'));
            }

            using var image = File.Create(output);
            if (partitioning == DiskPartitioning.Gpt)
            {
                GptDisk gpt = GptDisk.WithEsp(totalSectors, PartitionStart, partitionSectors);
                image.Write(gpt.ProtectiveMbr());
                image.Write(gpt.Header(backup: false));
                image.Write(gpt.Entries);
                image.Write(new byte[(PartitionStart - 2 - (gpt.Entries.Length / SectorSize)) * SectorSize]);
                using (var part = File.OpenRead(partition)) part.CopyTo(image);
                image.Write(gpt.Entries);
                image.Write(gpt.Header(backup: true));
            }
            else
            {
                image.Write(MasterBootRecord(PartitionStart, partitionSectors));
                image.Write(new byte[(PartitionStart - 1) * SectorSize]);
                using (var part = File.OpenRead(partition)) part.CopyTo(image);
            }
        }
        finally
        {
            File.Delete(partition);
        }
    }

    /// <summary>An MBR with one bootable-agnostic EFI system partition entry (type 0xEF).</summary>
    internal static byte[] MasterBootRecord(long start, long sectors)
    {
        var mbr = new byte[SectorSize];
        BitConverter.TryWriteBytes(mbr.AsSpan(440), 0x4C474956u);           // disk signature "VIGL"
        ReadOnlySpan<byte> entry = [0x00, 0xFE, 0xFF, 0xFF, 0xEF, 0xFE, 0xFF, 0xFF];
        entry.CopyTo(mbr.AsSpan(446));                                       // CHS fields unused: LBA only
        BitConverter.TryWriteBytes(mbr.AsSpan(454), (uint)start);
        BitConverter.TryWriteBytes(mbr.AsSpan(458), (uint)sectors);
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        return mbr;
    }
}
