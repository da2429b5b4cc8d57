using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Xunit;

namespace Vigil.Tests.Guest;

/// <summary>One entry as read back from a newc archive.</summary>
internal sealed record NewcEntry(long Offset, string Name, uint Inode, uint Mode, uint Uid, uint Gid, uint Links, uint Mtime,
    uint RdevMajor, uint RdevMinor, byte[] Data)
{
    public uint Type => Mode & 0xF000;

    public uint Permissions => Mode & 0xFFF;

    public string Text => Encoding.UTF8.GetString(Data);
}

/// <summary>
/// An independent newc reader for the tests, written from the format description the kernel
/// follows (Documentation/driver-api/early-userspace/buffer-format.rst) rather than from the writer:
/// it asserts the magic, the hexadecimal fields and the 4-byte alignment of names and data.
/// </summary>
internal static class NewcReader
{
    public static List<NewcEntry> Read(byte[] archive)
    {
        var entries = new List<NewcEntry>();
        int pos = 0;
        while (true)
        {
            Assert.True(pos % 4 == 0, $"header at {pos} is not 4-byte aligned");
            Assert.True(pos + 110 <= archive.Length, "archive ends inside a header (no TRAILER!!!)");
            string header = Encoding.ASCII.GetString(archive, pos, 110);
            Assert.Equal("070701", header[..6]);
            var fields = new uint[13];
            for (int i = 0; i < 13; i++)
            {
                string hex = header.Substring(6 + 8 * i, 8);
                Assert.Matches("^[0-9A-F]{8}$", hex);
                fields[i] = uint.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
            uint nameSize = fields[11];
            Assert.Equal(0u, fields[12]);   // check field: always 0 in 070701
            int nameStart = pos + 110;
            Assert.Equal(0, archive[nameStart + (int)nameSize - 1]);   // NUL-terminated
            string name = Encoding.ASCII.GetString(archive, nameStart, (int)nameSize - 1);
            int dataStart = Align(nameStart + (int)nameSize);
            for (int i = nameStart + (int)nameSize; i < dataStart; i++) Assert.Equal(0, archive[i]);
            byte[] data = archive.AsSpan(dataStart, (int)fields[6]).ToArray();
            int next = Align(dataStart + data.Length);
            for (int i = dataStart + data.Length; i < next; i++) Assert.Equal(0, archive[i]);
            entries.Add(new NewcEntry(pos, name, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[9], fields[10], data));
            pos = next;
            if (name == "TRAILER!!!")
            {
                Assert.Equal(archive.Length, pos);
                return entries;
            }
        }
    }

    private static int Align(int offset) => (offset + 3) & ~3;
}
