using System;
using System.Collections.Generic;
using Vigil.Hypervisor.Core;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// Sparse guest-physical memory with a helper that builds 4-level or 5-level guest page tables in it. Reads and
/// writes outside <see cref="Bounds"/> throw: the code under test must check every address before touching it.
/// </summary>
internal sealed class FakeGuest
{
    public const ulong Present = 1, Writable = 2, User = 4, Large = 0x80;

    private readonly Dictionary<ulong, byte[]> _pages = [];
    private ulong _nextTable = 0x100000;

    public FakeGuest(int levels = 4)
    {
        Levels = levels;
        Cr3 = NewTable();
    }

    /// <summary>4 (4-level paging) or 5 (LA57).</summary>
    public int Levels { get; }

    public ulong Cr3 { get; }

    /// <summary>What the host may touch; by default all of a 52-bit physical space, nothing reserved.</summary>
    public PhysicalBounds Bounds { get; set; } = new(1UL << 52, 0, 0);

    /// <summary>Raw accesses the code under test made outside <see cref="Bounds"/> (each also throws).</summary>
    public int Violations { get; private set; }

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

    /// <summary>Maps one page (level 1), a 2 MiB page (level 2) or a 1 GiB page (level 3), in the tables at <paramref name="root"/> (0: <see cref="Cr3"/>).</summary>
    public void Map(ulong virtualAddress, ulong physical, ulong flags, int level = 1, ulong root = 0)
    {
        ulong table = root == 0 ? Cr3 : root;
        for (int l = Levels; l > level; l--)
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

    /// <summary>The address of the entry at <paramref name="level"/> (1 = PTE .. <see cref="Levels"/>) that maps <paramref name="virtualAddress"/>; the tables above it must exist.</summary>
    public ulong EntryAddress(ulong virtualAddress, int level)
    {
        ulong table = Cr3;
        for (int l = Levels; ; l--)
        {
            ulong slot = table + (((virtualAddress >> (12 + (9 * (l - 1)))) & 0x1FF) * 8);
            if (l == level) return slot;
            table = Read64(slot) & 0x000F_FFFF_FFFF_F000;
        }
    }

    public static GuestPaging LongMode(ulong cr3, int cpl, bool writeProtect = true, bool la57 = false)
        => new(cr0: 0x80000011 | (writeProtect ? 1UL << 16 : 0), cr3: cr3, cr4: 0x20 | (la57 ? 1UL << 12 : 0), efer: 0xD00, cpl: cpl);

    /// <summary>Long mode in this guest's paging depth (CR4.LA57 when it has 5 levels).</summary>
    public GuestPaging Paging(int cpl = 0) => LongMode(Cr3, cpl, la57: Levels == 5);

    private void Guard(ulong address, ulong length)
    {
        if (Bounds.Check(address, length) == WalkResult.Ok) return;
        Violations++;
        throw new InvalidOperationException($"raw access to 0x{address:X} outside the bounds");
    }

    public struct Memory(FakeGuest guest) : IPhysicalMemory
    {
        public readonly PhysicalBounds Bounds => guest.Bounds;

        public readonly ulong ReadUInt64(ulong address)
        {
            guest.Guard(address, 8);
            return guest.Read64(address);
        }

        public readonly void WriteByte(ulong address, byte value)
        {
            guest.Guard(address, 1);
            guest.Page(address)[address & 0xFFF] = value;
        }

        public readonly void WriteUInt64(ulong address, ulong value)
        {
            guest.Guard(address, 8);
            guest.Write64(address, value);
        }
    }
}
