using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Vigil.Tool.Install;

/// <summary>The hard-drive media device path node (UEFI 2.10 §10.3.5.1): which partition of which disk.</summary>
/// <param name="Number">Partition number (1-based).</param>
/// <param name="Start">First LBA.</param>
/// <param name="Size">Size in LBAs.</param>
/// <param name="Signature">GPT: the partition's unique GUID; MBR: the disk signature in the first 4 bytes.</param>
/// <param name="Gpt">True: GPT partition (MBRType 2, SignatureType 2 = GUID); false: MBR (1, 1 = 32-bit signature).</param>
public sealed record HardDrive(uint Number, ulong Start, ulong Size, Guid Signature, bool Gpt)
{
    public override string ToString() => Gpt
        ? $"HD({Number},GPT,{Signature:D},0x{Start:x},0x{Size:x})"
        : $"HD({Number},MBR,0x{BitConverter.ToUInt32(Signature.ToByteArray(), 0):x8},0x{Start:x},0x{Size:x})";
}

/// <summary>
/// An EFI_LOAD_OPTION (UEFI 2.10 §3.1.3), the content of a Boot#### variable: attributes, description, a device
/// path (here HD(...)/File(path), or whatever the firmware wrote: kept as raw bytes), optional data.
/// </summary>
public sealed record LoadOption(uint Attributes, string Description, byte[] DevicePath, byte[] OptionalData)
{
    public const uint Active = 0x1;   // LOAD_OPTION_ACTIVE

    public static LoadOption ForFile(string description, HardDrive partition, string path) =>
        new(Active, description, DevicePaths.HardDriveFile(partition, path), []);

    public byte[] Encode()
    {
        var b = new MemoryStream();
        var w = new BinaryWriter(b);
        w.Write(Attributes);
        w.Write(checked((ushort)DevicePath.Length));
        w.Write(Encoding.Unicode.GetBytes(Description + "\0"));
        w.Write(DevicePath);
        w.Write(OptionalData);
        return b.ToArray();
    }

    /// <summary>Decodes a Boot#### variable's data; a clear error for anything malformed.</summary>
    public static LoadOption Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 6) throw new ToolException($"load option of {data.Length} bytes: shorter than its header");
        uint attributes = BitConverter.ToUInt32(data);
        int pathLength = BitConverter.ToUInt16(data[4..]);
        int at = 6;
        var description = new StringBuilder();
        for (; ; at += 2)
        {
            if (at + 2 > data.Length) throw new ToolException("load option: the description has no terminating NUL");
            char c = (char)BitConverter.ToUInt16(data[at..]);
            if (c == '\0') break;
            description.Append(c);
        }
        at += 2;
        if (at + pathLength > data.Length) throw new ToolException($"load option: device path of {pathLength} bytes runs past the end ({data.Length - at} left)");
        return new LoadOption(attributes, description.ToString(), data.Slice(at, pathLength).ToArray(), data[(at + pathLength)..].ToArray());
    }

    /// <summary>The file path (\EFI\...) of the first File() node, or null.</summary>
    public string? FilePath => DevicePaths.FilePath(DevicePath);

    /// <summary>The HD() node, or null.</summary>
    public HardDrive? Partition => DevicePaths.HardDrive(DevicePath);

    public override string ToString() => $"'{Description}' {DevicePaths.Describe(DevicePath)}";
}

/// <summary>Device path nodes (UEFI 2.10 §10.2-10.3): the few a boot entry for a file on a partition needs.</summary>
public static class DevicePaths
{
    private const byte MediaType = 4, HardDriveSubType = 1, FilePathSubType = 4, EndType = 0x7F, EndEntireSubType = 0xFF;

    public static byte[] HardDriveFile(HardDrive hd, string path)
    {
        if (!path.StartsWith('\\')) throw new ToolException($"a file device path must be absolute (\\EFI\\...): '{path}'");
        var b = new MemoryStream();
        var w = new BinaryWriter(b);
        w.Write(MediaType);
        w.Write(HardDriveSubType);
        w.Write((ushort)42);
        w.Write(hd.Number);
        w.Write(hd.Start);
        w.Write(hd.Size);
        w.Write(hd.Signature.ToByteArray());   // EFI_GUID layout: Data1-3 little-endian, Data4 as bytes
        w.Write((byte)(hd.Gpt ? 2 : 1));
        w.Write((byte)(hd.Gpt ? 2 : 1));
        byte[] name = Encoding.Unicode.GetBytes(path + "\0");
        w.Write(MediaType);
        w.Write(FilePathSubType);
        w.Write(checked((ushort)(4 + name.Length)));
        w.Write(name);
        w.Write(EndType);
        w.Write(EndEntireSubType);
        w.Write((ushort)4);
        return b.ToArray();
    }

    /// <summary>(type, subtype, body) of each node up to the end node; an error when a length is impossible.</summary>
    public static IEnumerable<(byte Type, byte SubType, byte[] Body)> Nodes(byte[] path)
    {
        int at = 0;
        while (at + 4 <= path.Length)
        {
            byte type = path[at], sub = path[at + 1];
            int length = BitConverter.ToUInt16(path, at + 2);
            if (length < 4 || at + length > path.Length) throw new ToolException($"device path node at byte {at} has length {length}: malformed");
            if (type == EndType && sub == EndEntireSubType) yield break;
            yield return (type, sub, path[(at + 4)..(at + length)]);
            at += length;
        }
    }

    public static string? FilePath(byte[] path)
    {
        var parts = new StringBuilder();
        foreach (var (type, sub, body) in Nodes(path))
        {
            if (type != MediaType || sub != FilePathSubType) continue;
            string part = Encoding.Unicode.GetString(body).TrimEnd('\0');
            // Several File() nodes concatenate (UEFI 2.10 §10.3.5.4); a lone separator between them is not doubled.
            if (parts.Length > 0 && parts[^1] != '\\' && !part.StartsWith('\\')) parts.Append('\\');
            parts.Append(part);
        }
        return parts.Length == 0 ? null : parts.ToString();
    }

    public static HardDrive? HardDrive(byte[] path)
    {
        foreach (var (type, sub, body) in Nodes(path))
        {
            if (type != MediaType || sub != HardDriveSubType || body.Length != 38) continue;
            bool gpt = body[37] == 2;
            return new HardDrive(BitConverter.ToUInt32(body, 0), BitConverter.ToUInt64(body, 4), BitConverter.ToUInt64(body, 12), new Guid(body.AsSpan(20, 16)), gpt);
        }
        return null;
    }

    public static string Describe(byte[] path)
    {
        var parts = new List<string>();
        HardDrive? hd = HardDrive(path);
        if (hd != null) parts.Add(hd.ToString());
        string? file = FilePath(path);
        if (file != null) parts.Add($"File({file})");
        return parts.Count == 0 ? $"(device path of {path.Length} bytes)" : string.Join("/", parts);
    }
}
