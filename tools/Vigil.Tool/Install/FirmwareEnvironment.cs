using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Vigil.Tool.Install;

/// <summary>
/// Where `vigil install` learns about the running machine: /sys/firmware/efi (a UEFI boot), efivarfs (variables),
/// /proc/self/mountinfo (is efivarfs writable, which block device holds the ESP) and udev's database (the ESP's
/// partition number, offset, size and GUID). Every path can be moved, so the tests run against a fake tree.
/// </summary>
public sealed class FirmwareEnvironment
{
    /// <summary>The vendor GUID of the UEFI-defined variables (Boot####, BootOrder, BootCurrent, SecureBoot).</summary>
    public const string GlobalVariableGuid = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

    /// <summary>Non-volatile, boot service and run-time access: what boot entries are stored with.</summary>
    public const uint BootVariableAttributes = 0x7;

    public string FirmwareDirectory { get; init; } = "/sys/firmware/efi";

    public string EfivarsDirectory { get; init; } = "/sys/firmware/efi/efivars";

    public string MountInfo { get; init; } = "/proc/self/mountinfo";

    public string UdevData { get; init; } = "/run/udev/data";

    public static string BootName(ushort number) => $"Boot{number:X4}";

    private string VariablePath(string name, string guid = GlobalVariableGuid) => Path.Combine(EfivarsDirectory, $"{name}-{guid}");

    /// <summary>A variable's data (without efivarfs' 4 bytes of attributes), or null when there is none.</summary>
    public byte[]? Read(string name, string guid = GlobalVariableGuid)
    {
        string path = VariablePath(name, guid);
        if (!File.Exists(path)) return null;
        byte[] raw = File.ReadAllBytes(path);
        if (raw.Length < 4) throw new ToolException($"{path}: {raw.Length} bytes, fewer than efivarfs' 4 bytes of attributes");
        return raw[4..];
    }

    /// <summary>Writes a variable in one write(): efivarfs takes each write as one SetVariable.</summary>
    public void Write(string name, byte[] data, string guid = GlobalVariableGuid)
    {
        var raw = new byte[4 + data.Length];
        BitConverter.TryWriteBytes(raw, BootVariableAttributes);
        data.CopyTo(raw, 4);
        // No O_TRUNC: efivarfs replaces the variable with what one write() brings.
        using var handle = File.OpenHandle(VariablePath(name, guid), FileMode.OpenOrCreate, FileAccess.Write);
        RandomAccess.Write(handle, raw, 0);
        // efivarfs sizes the file by the new variable itself; a plain file (a test's fake tree) keeps a longer old tail.
        if (RandomAccess.GetLength(handle) > raw.Length) RandomAccess.SetLength(handle, raw.Length);
    }

    public void Delete(string name, string guid = GlobalVariableGuid) => File.Delete(VariablePath(name, guid));

    public ushort? BootCurrent
    {
        get
        {
            byte[]? d = Read("BootCurrent");
            return d is { Length: >= 2 } ? BitConverter.ToUInt16(d) : null;
        }
    }

    public List<ushort> BootOrder
    {
        get
        {
            byte[] d = Read("BootOrder") ?? [];
            var order = new List<ushort>();
            for (int i = 0; i + 1 < d.Length; i += 2) order.Add(BitConverter.ToUInt16(d, i));
            return order;
        }
    }

    public static byte[] EncodeBootOrder(IEnumerable<ushort> order) => order.SelectMany(BitConverter.GetBytes).ToArray();

    public bool SecureBootEnabled => Read("SecureBoot") is { Length: >= 1 } d && d[^1] == 1;

    /// <summary>Every Boot#### variable there is, by number.</summary>
    public SortedDictionary<ushort, LoadOption> BootEntries()
    {
        var entries = new SortedDictionary<ushort, LoadOption>();
        if (!Directory.Exists(EfivarsDirectory)) return entries;
        foreach (string file in Directory.EnumerateFiles(EfivarsDirectory, "Boot????-" + GlobalVariableGuid))
        {
            string name = Path.GetFileName(file)[..8];
            if (!ushort.TryParse(name[4..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ushort n)) continue;
            try
            {
                entries[n] = LoadOption.Decode(Read(name)!);
            }
            catch (ToolException)
            {
                // Someone else's malformed entry: not ours to judge or touch.
            }
        }
        return entries;
    }

    /// <summary>The mountinfo line for <paramref name="mountPoint"/>: (major:minor, mount options, file system type), or null.</summary>
    public (string Device, string[] Options, string FsType)? Mount(string mountPoint)
    {
        if (!File.Exists(MountInfo)) return null;
        string want = Path.GetFullPath(mountPoint).TrimEnd('/');
        if (want.Length == 0) want = "/";
        (string, string[], string)? found = null;
        foreach (string line in File.ReadLines(MountInfo))
        {
            // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue (proc(5)); the last match wins.
            string[] f = line.Split(' ');
            int dash = Array.IndexOf(f, "-");
            if (f.Length < 6 || dash < 6 || dash + 1 >= f.Length) continue;
            if (Unescape(f[4]) != want) continue;
            found = (f[2], f[5].Split(','), f[dash + 1]);
        }
        return found;
    }

    private static string Unescape(string s) => s.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal);

    /// <summary>
    /// The partition behind major:minor from udev's database (ID_PART_ENTRY_* of /run/udev/data/bMAJ:MIN; offsets
    /// and sizes there are 512-byte sectors, the LBA size of every disk but 4Kn ones); null with the reason.
    /// </summary>
    public HardDrive? Partition(string device, out string why)
    {
        why = "";
        string file = Path.Combine(UdevData, "b" + device);
        if (!File.Exists(file))
        {
            why = $"no {file} (udev's record of the ESP's block device {device})";
            return null;
        }
        var e = File.ReadLines(file).Where(l => l.StartsWith("E:", StringComparison.Ordinal))
            .Select(l => l[2..].Split('=', 2)).Where(p => p.Length == 2).GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.Last()[1]);
        string? scheme = e.GetValueOrDefault("ID_PART_ENTRY_SCHEME"), uuid = e.GetValueOrDefault("ID_PART_ENTRY_UUID");
        if (!uint.TryParse(e.GetValueOrDefault("ID_PART_ENTRY_NUMBER"), out uint number)
            || !ulong.TryParse(e.GetValueOrDefault("ID_PART_ENTRY_OFFSET"), out ulong offset)
            || !ulong.TryParse(e.GetValueOrDefault("ID_PART_ENTRY_SIZE"), out ulong size) || uuid == null)
        {
            why = $"{file} lacks ID_PART_ENTRY_NUMBER/OFFSET/SIZE/UUID: is the ESP on a partitioned disk?";
            return null;
        }
        if (scheme == "gpt" && Guid.TryParse(uuid, out Guid guid)) return new HardDrive(number, offset, size, guid, Gpt: true);
        if (scheme == "dos" && uuid.Length >= 8 && uint.TryParse(uuid[..8], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint signature))
        {
            var bytes = new byte[16];
            BitConverter.TryWriteBytes(bytes, signature);
            return new HardDrive(number, offset, size, new Guid(bytes), Gpt: false);
        }
        why = $"{file}: partition scheme '{scheme}' with id '{uuid}' is neither GPT nor MBR";
        return null;
    }
}
