using System;
using System.Collections.Generic;
using Vigil.Hypervisor.Core;

namespace Vigil.Tests.Hypervisor;

/// <summary>Sparse guest-physical memory with a helper that builds 4-level guest page tables in it.</summary>
internal sealed class FakeGuest
{
    public const ulong Present = 1, Writable = 2, User = 4, Large = 0x80;

    private readonly Dictionary<ulong, byte[]> _pages = [];
    private ulong _nextTable = 0x100000;

    public FakeGuest() => Cr3 = NewTable();

    public ulong Cr3 { get; }

    public Memory View => new(this);

    public ulong NewTable()
    {
        ulong table = _nextTable;
        _nextTable += 0x1000;
        Page(table);
        return table;
    }

    public byte[] Page(ulong address)
    {
        ulong page = address & ~0xFFFUL;
        if (!_pages.TryGetValue(page, out byte[]? bytes)) _pages[page] = bytes = new byte[4096];
        return bytes;
    }

    public ulong Read64(ulong address) => BitConverter.ToUInt64(Page(address), (int)(address & 0xFFF));

    public void Write64(ulong address, ulong value) => BitConverter.TryWriteBytes(Page(address).AsSpan((int)(address & 0xFFF)), value);

    /// <summary>Maps one page (level 1), a 2 MiB page (level 2) or a 1 GiB page (level 3).</summary>
    public void Map(ulong virtualAddress, ulong physical, ulong flags, int level = 1)
    {
        ulong table = Cr3;
        for (int l = 4; l > level; l--)
        {
            ulong slot = table + (((virtualAddress >> (12 + (9 * (l - 1)))) & 0x1FF) * 8);
            ulong entry = Read64(slot);
            if ((entry & Present) == 0)
            {
                entry = NewTable() | Present | Writable | User;
                Write64(slot, entry);
            }
            table = entry & 0x000F_FFFF_FFFF_F000;
        }
        ulong leafSlot = table + (((virtualAddress >> (12 + (9 * (level - 1)))) & 0x1FF) * 8);
        Write64(leafSlot, physical | flags | (level > 1 ? Large : 0));
    }

    public static GuestPaging LongMode(ulong cr3, int cpl, bool writeProtect = true)
        => new(cr0: 0x80000011 | (writeProtect ? 1UL << 16 : 0), cr3: cr3, cr4: 0x20, efer: 0x500, cpl: cpl);

    public struct Memory(FakeGuest guest) : IPhysicalMemory
    {
        public readonly ulong ReadUInt64(ulong address) => guest.Read64(address);

        public readonly void WriteByte(ulong address, byte value) => guest.Page(address)[address & 0xFFF] = value;
    }
}
