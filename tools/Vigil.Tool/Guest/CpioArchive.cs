using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace Vigil.Tool.Guest;

/// <summary>
/// A cpio archive in the "newc" format (SVR4 without checksums, magic 070701): the format the Linux
/// kernel unpacks as initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
/// Written in C# rather than with GNU cpio so device nodes can be added without root (no mknod on
/// the host) and so the output depends only on the contents: entries sorted by path, inode numbers
/// assigned in that order, every owner root, one fixed modification time.
/// </summary>
internal sealed class CpioArchive
{
    public const string Magic = "070701";
    public const string TrailerName = "TRAILER!!!";

    // File type bits of st_mode (S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR).
    public const int TypeDirectory = 0x4000;
    public const int TypeRegular = 0x8000;
    public const int TypeSymlink = 0xA000;
    public const int TypeCharacterDevice = 0x2000;

    private const int HeaderSize = 110;   // magic + 13 fields of 8 hexadecimal digits

    private readonly SortedDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    private sealed record Entry(int Mode, byte[] Data, int RdevMajor, int RdevMinor);

    /// <summary>The modification time of every entry (seconds since 1970). Fixed so rebuilding gives the same bytes.</summary>
    public uint ModificationTime { get; init; }

    /// <summary>The paths added so far, sorted as they will be written.</summary>
    public IReadOnlyCollection<string> Paths => _entries.Keys;

    public void AddDirectory(string path, int permissions) => Add(path, TypeDirectory, permissions, [], 0, 0);

    public void AddFile(string path, byte[] data, int permissions) => Add(path, TypeRegular, permissions, data, 0, 0);

    /// <summary>Adds a symbolic link; like Linux, links carry permissions 0777 and store the target as their data.</summary>
    public void AddSymlink(string path, string target)
    {
        if (target.Length == 0) throw new ArgumentException("empty symlink target", nameof(target));
        Add(path, TypeSymlink, 0b111_111_111, Encoding.UTF8.GetBytes(target), 0, 0);
    }

    public void AddCharacterDevice(string path, int major, int minor, int permissions)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(major);
        ArgumentOutOfRangeException.ThrowIfNegative(minor);
        Add(path, TypeCharacterDevice, permissions, [], major, minor);
    }

    private void Add(string path, int type, int permissions, byte[] data, int major, int minor)
    {
        ValidatePath(path);
        if ((permissions & ~0xFFF) != 0) throw new ArgumentOutOfRangeException(nameof(permissions), "permission bits only (07777)");
        if (!_entries.TryAdd(path, new Entry(type | permissions, data, major, minor)))
        {
            throw new ArgumentException($"'{path}' is already in the archive", nameof(path));
        }
    }

    // Paths are relative ("bin/sh"), as the kernel's own gen_init_cpio writes them; no empty, "." or ".." parts.
    private static void ValidatePath(string path)
    {
        if (path.Length == 0 || path.StartsWith('/') || path.EndsWith('/')) throw new ArgumentException($"bad archive path '{path}'", nameof(path));
        foreach (string part in path.Split('/'))
        {
            if (part is "" or "." or "..") throw new ArgumentException($"bad archive path '{path}'", nameof(path));
        }
        foreach (char c in path)
        {
            if (c <= ' ' || c >= 0x7F) throw new ArgumentException($"archive path '{path}' is not printable ASCII", nameof(path));
        }
        if (path == TrailerName) throw new ArgumentException("the trailer name is reserved", nameof(path));
    }

    /// <summary>Writes the entries and the trailer. Every entry's parent directory must be in the archive:
    /// the kernel does not create missing parents.</summary>
    public void WriteTo(Stream output)
    {
        foreach (string path in _entries.Keys)
        {
            int slash = path.LastIndexOf('/');
            if (slash < 0) continue;
            string parent = path[..slash];
            if (!_entries.TryGetValue(parent, out Entry? entry) || (entry.Mode & 0xF000) != TypeDirectory)
            {
                throw new InvalidOperationException($"'{path}': parent directory '{parent}' is not in the archive");
            }
        }

        long position = 0;
        int inode = 1;
        // Ordinal order puts every directory before its contents: a string sorts before every longer string it begins.
        foreach (var (path, entry) in _entries)
        {
            int links = (entry.Mode & 0xF000) == TypeDirectory ? 2 : 1;
            position += WriteEntry(output, position, path, inode++, entry.Mode, links, ModificationTime, entry.Data, entry.RdevMajor, entry.RdevMinor);
        }
        // GNU cpio and gen_init_cpio both end with a TRAILER!!! entry whose fields are zero except nlink 1.
        WriteEntry(output, position, TrailerName, 0, 0, 1, 0, [], 0, 0);
    }

    public byte[] ToArray()
    {
        using var stream = new MemoryStream();
        WriteTo(stream);
        return stream.ToArray();
    }

    private static long WriteEntry(Stream output, long position, string name, int inode, int mode, int links, uint mtime,
        byte[] data, int rdevMajor, int rdevMinor)
    {
        byte[] nameBytes = Encoding.ASCII.GetBytes(name + "\0");
        var header = new StringBuilder(HeaderSize);
        header.Append(Magic);
        foreach (long field in new long[]
        {
            inode, mode, 0 /* uid */, 0 /* gid */, links, mtime, data.Length,
            0, 0,                       // device holding the file: none
            rdevMajor, rdevMinor,       // the device a device node stands for
            nameBytes.Length,           // including the terminating NUL
            0,                          // checksum: unused in newc (070701)
        })
        {
            header.Append(((uint)field).ToString("X8", CultureInfo.InvariantCulture));
        }
        byte[] headerBytes = Encoding.ASCII.GetBytes(header.ToString());
        long start = position;
        output.Write(headerBytes);
        output.Write(nameBytes);
        position += headerBytes.Length + nameBytes.Length;
        position += Pad(output, position);
        output.Write(data);
        position += data.Length;
        position += Pad(output, position);
        return position - start;
    }

    // The name (after the header) and the data each end on a 4-byte boundary of the archive.
    private static int Pad(Stream output, long position)
    {
        int padding = (int)((4 - (position & 3)) & 3);
        for (int i = 0; i < padding; i++) output.WriteByte(0);
        return padding;
    }
}
