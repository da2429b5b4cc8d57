using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>RDMSR over a dictionary; reading an MSR that is not there is recorded (on hardware: #GP).</summary>
internal struct FakeMsrs(Dictionary<uint, ulong> values) : IMsrReader
{
    public List<uint> Faults { get; } = [];

    public List<uint> Reads { get; } = [];

    public readonly ulong Read(uint msr)
    {
        Reads.Add(msr);
        if (values.TryGetValue(msr, out ulong value)) return value;
        Faults.Add(msr);
        return 0;
    }
}

/// <summary>Raw MTRR MSR values as firmware would program them (SDM Vol 3A 11.11.2), and sets built from them.</summary>
internal static class MtrrRaw
{
    public const ulong FixedSupported = 1UL << 8;
    public const ulong Enable = 1UL << 11;
    public const ulong FixedEnable = 1UL << 10;
    public const ulong Valid = 1UL << 11;
    public const int PhysicalAddressBits = 46;

    public const ulong MiB = 0x10_0000;
    public const ulong GiB = 0x4000_0000;

    public static ulong DefType(MemoryType type, bool enabled = true, bool fixedEnabled = true)
        => (ulong)type | (enabled ? Enable : 0) | (fixedEnabled ? FixedEnable : 0);

    /// <summary>PHYSBASE/PHYSMASK for a naturally aligned power-of-two range.</summary>
    public static (ulong Base, ulong Mask) Variable(ulong rangeBase, ulong size, MemoryType type, bool valid = true)
    {
        ulong addressBits = ((1UL << PhysicalAddressBits) - 1) & ~0xFFFUL;
        return (rangeBase | (ulong)type, (~(size - 1) & addressBits) | (valid ? Valid : 0));
    }

    /// <summary>One fixed-range MSR: eight types, the first for the lowest addresses.</summary>
    public static ulong Fixed(params MemoryType[] eight)
    {
        if (eight.Length != 8) throw new ArgumentException("eight types", nameof(eight));
        ulong value = 0;
        for (int i = 0; i < 8; i++) value |= (ulong)eight[i] << (8 * i);
        return value;
    }

    public static ulong AllFixed(MemoryType type) => Fixed(type, type, type, type, type, type, type, type);

    /// <summary>MSR values for a set with fixed ranges and the given variable ranges.</summary>
    public static Dictionary<uint, ulong> Msrs(ulong defType, (ulong Base, ulong Mask)[] variable, bool fixedSupported = true, int? count = null)
    {
        int vcnt = count ?? Math.Max(variable.Length, 8);
        var msrs = new Dictionary<uint, ulong>
        {
            [MtrrSet.CapabilityMsr] = (uint)vcnt | (fixedSupported ? FixedSupported : 0) | (1UL << 10),
            [MtrrSet.DefaultTypeMsr] = defType,
        };
        for (int i = 0; i < vcnt; i++)
        {
            (ulong b, ulong m) = i < variable.Length ? variable[i] : (0UL, 0UL);
            msrs[MtrrSet.PhysBase0Msr + (uint)(2 * i)] = b;
            msrs[MtrrSet.PhysMask0Msr + (uint)(2 * i)] = m;
        }
        if (fixedSupported)
        {
            msrs[MtrrSet.Fix64K00000Msr] = AllFixed(MemoryType.WriteBack);
            msrs[MtrrSet.Fix16K80000Msr] = AllFixed(MemoryType.WriteBack);
            msrs[MtrrSet.Fix16KA0000Msr] = AllFixed(MemoryType.WriteBack);
            for (uint msr = MtrrSet.Fix4KC0000Msr; msr < MtrrSet.Fix4KC0000Msr + 8; msr++) msrs[msr] = AllFixed(MemoryType.WriteBack);
        }
        return msrs;
    }

    public static MtrrSet Read(Dictionary<uint, ulong> msrs)
    {
        var reader = new FakeMsrs(msrs);
        if (!MtrrSet.Read(ref reader, out MtrrSet set)) throw new InvalidOperationException("MtrrSet.Read refused the fake MSRs");
        if (reader.Faults.Count != 0) throw new InvalidOperationException($"read missing MSR 0x{reader.Faults[0]:X}");
        return set;
    }

    /// <summary>
    /// A PC as firmware leaves it: WB by default; fixed ranges WB below 0xA0000, UC for VGA (0xA0000-0xBFFFF),
    /// WP option ROMs at 0xC0000-0xC7FFF, UC 0xC8000-0xDFFFF, WP BIOS 0xE0000-0xFFFFF; the PCI hole
    /// 0xC0000000-0xFFFFFFFF UC through one variable range.
    /// </summary>
    public static MtrrSet Pc()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(MemoryType.WriteBack), [Variable(3 * GiB, GiB, MemoryType.Uncacheable)]);
        msrs[MtrrSet.Fix16KA0000Msr] = AllFixed(MemoryType.Uncacheable);
        msrs[MtrrSet.Fix4KC0000Msr] = AllFixed(MemoryType.WriteProtected);                       // C0000-C7FFF
        msrs[MtrrSet.Fix4KC0000Msr + 1] = AllFixed(MemoryType.Uncacheable);                      // C8000-CFFFF
        msrs[MtrrSet.Fix4KC0000Msr + 2] = AllFixed(MemoryType.Uncacheable);                      // D0000-D7FFF
        msrs[MtrrSet.Fix4KC0000Msr + 3] = AllFixed(MemoryType.Uncacheable);                      // D8000-DFFFF
        for (uint msr = MtrrSet.Fix4KC0000Msr + 4; msr < MtrrSet.Fix4KC0000Msr + 8; msr++) msrs[msr] = AllFixed(MemoryType.WriteProtected);
        return Read(msrs);
    }
}

/// <summary>
/// Unmanaged, page-aligned memory handed out as 4 KiB pages under made-up physical addresses (from
/// <see cref="PhysicalBase"/>, far from the pointers, with bit 51 set so every address bit is exercised).
/// </summary>
internal sealed unsafe class PageArena : IDisposable
{
    public const ulong PhysicalBase = 1UL << 51;

    private readonly byte* _memory;
    private readonly int _capacity;
    private int _used;

    public PageArena(int capacity)
    {
        _capacity = capacity;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)capacity * 4096, 4096);
        NativeMemory.Fill(_memory, (nuint)capacity * 4096, 0xCC);   // garbage: the builder must zero its tables
    }

    public int Used => _used;

    public int Capacity => _capacity;

    public Pages Source => new(this);

    public ulong Allocate()
    {
        if (_used == _capacity) return 0;
        return PhysicalBase + ((ulong)_used++ * 4096);
    }

    public ulong* Map(ulong physical)
    {
        if (physical < PhysicalBase || (physical & 0xFFF) != 0 || physical >= PhysicalBase + ((ulong)_used * 4096))
            throw new InvalidOperationException($"0x{physical:X} is not a table the arena handed out");
        return (ulong*)(_memory + (physical - PhysicalBase));
    }

    public ulong Read(ulong table, int index) => Map(table)[index];

    public void Dispose() => NativeMemory.AlignedFree(_memory);

    public readonly struct Pages(PageArena arena) : IPageSource
    {
        public ulong AllocatePage() => arena.Allocate();

        public ulong* Map(ulong physicalAddress) => arena.Map(physicalAddress);
    }
}

public enum TableKind
{
    Ept,
    Npt,
    Host,
}

/// <summary>What the hardware would find for one address: decoded from the raw bits, independently of the formats.</summary>
internal readonly record struct Translation(bool Present, ulong Physical, int Level, ulong Entry, int TypeBits, int Access);

/// <summary>A test-only 4-level walk that decodes entries by the manuals, not by the code under test.</summary>
internal static class TableWalker
{
    public static Translation Walk(PageArena arena, TableKind kind, ulong root, ulong address)
    {
        ulong table = root;
        for (int level = 4; level >= 1; level--)
        {
            int shift = 3 + (9 * level);
            ulong entry = arena.Read(table, (int)((address >> shift) & 0x1FF));
            bool present = kind == TableKind.Ept ? (entry & 7) != 0 : (entry & 1) != 0;
            if (!present) return new Translation(false, 0, level, entry, 0, 0);
            bool leaf = level == 1 || ((level == 2 || level == 3) && (entry & 0x80) != 0);
            if (!leaf)
            {
                Assert.Equal(0UL, entry & (kind == TableKind.Ept ? 0xF8UL : 0x80UL));   // non-leaf: no type/size bits
                table = entry & 0x000F_FFFF_FFFF_F000;
                continue;
            }
            ulong pageMask = (1UL << shift) - 1;
            ulong physical = (entry & 0x000F_FFFF_FFFF_F000 & ~pageMask) | (address & pageMask);
            int typeBits;
            int access;
            if (kind == TableKind.Ept)
            {
                typeBits = (int)((entry >> 3) & 7);                                   // SDM Vol 3C 29.3.2: bits 5:3
                access = (int)(entry & 7);
            }
            else
            {
                ulong patBit = level == 1 ? 1UL << 7 : 1UL << 12;                     // SDM Vol 3A 11.12.3
                typeBits = (int)(((entry >> 3) & 1) | (((entry >> 4) & 1) << 1) | ((entry & patBit) != 0 ? 4UL : 0));
                access = 1 | ((entry & 2) != 0 ? 2 : 0) | ((entry >> 63) == 0 ? 4 : 0);
                if (level > 1) Assert.Equal(0UL, entry & 0x1F_E000 & pageMask);       // reserved bits 20:13 (2 MiB) / 29:13 (1 GiB)
            }
            return new Translation(true, physical, level, entry, typeBits, access);
        }
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// The memory type an access ends with, for a page the MTRRs give <paramref name="mtrr"/>. EPT: the EPT
    /// type replaces the MTRRs (SDM Vol 3C 29.3.7.2), the guest's PAT assumed WB. NPT and host: the MTRR
    /// combined with the PAT type the entry selects from the reset PAT (SDM Vol 3A Table 11-7 / Table 11-12).
    /// </summary>
    public static MemoryType Effective(TableKind kind, Translation translation, MemoryType mtrr)
    {
        if (kind == TableKind.Ept) return (MemoryType)translation.TypeBits;
        return (translation.TypeBits & 3) switch
        {
            0 => mtrr,                                                                        // PAT WB: the MTRR type
            1 => mtrr == MemoryType.WriteBack || mtrr == MemoryType.WriteThrough ? MemoryType.WriteThrough : MemoryType.Uncacheable,   // PAT WT (WP: not needed)
            2 => mtrr == MemoryType.WriteCombining ? MemoryType.WriteCombining : MemoryType.Uncacheable,   // PAT UC-
            _ => MemoryType.Uncacheable,                                                      // PAT UC
        };
    }
}
