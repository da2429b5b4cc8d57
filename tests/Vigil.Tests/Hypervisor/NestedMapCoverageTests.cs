using System;
using System.Collections.Generic;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Xunit;
using static Vigil.Tests.Hypervisor.MtrrRaw;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The nested maps (EPT/NPT) cover all the CPU can address (PoolSize.NestedTop: 2^MAXPHYADDR, at most 48 bits;
/// 512 GiB without 1 GiB pages) with the MTRRs' memory types — device memory above the memory map uncached where
/// the MTRRs say so — in a pool of the size vigil.efi reserves (PoolSize.NestedTables): built into an arena of
/// exactly that many tables, and walked as the hardware would (TableWalker).
/// </summary>
public sealed class NestedMapCoverageTests
{
    private const ulong TiB = 1024 * GiB;

    /// <summary>A server as firmware leaves it: UC by default, WB variable ranges over the RAM (2 GiB low, 4-8 GiB).</summary>
    private static MtrrSet ServerUcDefault()
        => Read(Msrs(DefType(MemoryType.Uncacheable), [Variable(0, 2 * GiB, MemoryType.WriteBack), Variable(4 * GiB, 4 * GiB, MemoryType.WriteBack)]));

    /// <summary>OVMF's way: WB by default, UC for the 32-bit hole and for a 64-bit PCI window, plus a small UC range not aligned to 1 GiB.</summary>
    private static MtrrSet WriteBackDefaultWithUcWindows()
        => Read(Msrs(DefType(MemoryType.WriteBack), [
            Variable(3 * GiB, GiB, MemoryType.Uncacheable),
            Variable(0x80_0000_0000, 32 * GiB, MemoryType.Uncacheable),
            Variable(0xE0_1000_0000, 256 * MiB, MemoryType.Uncacheable)]));

    private static Translation Build<TFormat>(TableKind kind, MtrrSet mtrrs, ulong memoryTop, uint bits, bool gigabytePages, ulong[] probes, out ulong limit, out ulong tables, out List<Translation> walks)
        where TFormat : struct, IPageTableFormat
    {
        limit = PoolSize.NestedTop(memoryTop, bits, gigabytePages);
        using var arena = new PageArena((int)PoolSize.NestedTables(memoryTop, bits));
        var map = new NestedMap<TFormat>(default);
        PageArena.Pages pages = arena.Source;
        Assert.True(map.Build(ref pages, limit, mtrrs, gigabytePages), "the map does not fit the pool vigil.efi reserves for it");
        tables = map.TablesUsed;
        Assert.Equal(NestedMap.EstimateTables(limit, mtrrs, gigabytePages), tables);
        walks = [];
        foreach (ulong probe in probes) walks.Add(TableWalker.Walk(arena, kind, map.Root, probe));
        return walks[0];
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    public void A_64_bit_bar_far_above_the_memory_map_is_mapped_uncached_in_a_1_gib_page(TableKind kind)
    {
        MtrrSet mtrrs = ServerUcDefault();
        ulong[] probes = [0xE0_0000_0000, 0xE0_0000_0000 + (64 * MiB) - 8, 5 * GiB, TiB - 4096];
        ulong limit;
        List<Translation> walks;
        if (kind == TableKind.Ept) Build<EptFormat>(kind, mtrrs, 8 * GiB, 40, true, probes, out limit, out _, out walks);
        else Build<NptFormat>(kind, mtrrs, 8 * GiB, 40, true, probes, out limit, out _, out walks);
        Assert.Equal(TiB, limit);
        for (int i = 0; i < probes.Length; i++)
        {
            Translation t = walks[i];
            Assert.True(t.Present, $"0x{probes[i]:X} is not mapped");
            Assert.Equal(probes[i], t.Physical);
            Assert.Equal(7, t.Access);
            MemoryType expected = probes[i] == 5 * GiB ? MemoryType.WriteBack : MemoryType.Uncacheable;
            Assert.Equal(expected, mtrrs.TypeOf(probes[i]));
            Assert.Equal(expected, TableWalker.Effective(kind, t, expected));
            if (kind == TableKind.Ept) Assert.Equal((int)expected, t.TypeBits);   // EPT ignores the MTRRs: the type must be in the entry
        }
        Assert.Equal(3, walks[0].Level);   // 1 GiB page: device memory costs no tables
    }

    [Fact]
    public void Uc_windows_inside_write_back_default_keep_their_type_at_both_ends()
    {
        MtrrSet mtrrs = WriteBackDefaultWithUcWindows();
        ulong[] probes = [0xE0_1000_0000, 0xE0_1FFF_F000, 0xE0_0FFF_F000, 0xE0_2000_0000, 0x80_0000_0000, 0x87_FFFF_F000, 0x88_0000_0000, 0xFF_FFFF_F000];
        Build<EptFormat>(TableKind.Ept, mtrrs, 4 * GiB, 40, true, probes, out _, out ulong tables, out List<Translation> walks);
        MemoryType[] expected = [MemoryType.Uncacheable, MemoryType.Uncacheable, MemoryType.WriteBack, MemoryType.WriteBack,
            MemoryType.Uncacheable, MemoryType.Uncacheable, MemoryType.WriteBack, MemoryType.WriteBack];
        for (int i = 0; i < probes.Length; i++)
        {
            Assert.True(walks[i].Present);
            Assert.Equal(probes[i], walks[i].Physical);
            Assert.Equal((int)expected[i], walks[i].TypeBits);
        }
        Assert.Equal(2, walks[0].Level);   // the 256 MiB window splits its GiB into 2 MiB pages, no further
        Assert.True(tables < 16, $"{tables} tables");
    }

    [Theory]
    [InlineData(36u)]
    [InlineData(39u)]
    [InlineData(46u)]
    [InlineData(52u)]
    public void Without_1_gib_pages_the_map_stops_at_512_gib_and_fits_the_pool(uint bits)
    {
        MtrrSet mtrrs = ServerUcDefault();
        ulong[] probes = [PoolSize.NestedTop(8 * GiB, bits, false) - 4096, 7 * GiB];
        Build<EptFormat>(TableKind.Ept, mtrrs, 8 * GiB, bits, false, probes, out ulong limit, out _, out List<Translation> walks);
        Assert.Equal(Math.Min(1UL << (int)bits, 512 * GiB), limit);
        Assert.True(walks[0].Present);
        Assert.Equal(2, walks[0].Level);
        Assert.Equal((int)MemoryType.Uncacheable, walks[0].TypeBits);
        Assert.Equal((int)MemoryType.WriteBack, walks[1].TypeBits);
    }

    [Fact]
    public void All_48_bits_cost_one_pdpt_per_512_gib()
    {
        MtrrSet mtrrs = ServerUcDefault();
        ulong top = (1UL << 48) - 4096;
        Build<NptFormat>(TableKind.Npt, mtrrs, 8 * GiB, 52, true, [top, 8 * GiB], out ulong limit, out ulong tables, out List<Translation> walks);
        Assert.Equal(PoolSize.MaxTop, limit);
        Assert.True(walks[0].Present);
        Assert.Equal(top, walks[0].Physical);
        Assert.True(walks[1].Present);
        Assert.Equal(1UL + 512, tables);   // PML4 and 512 PDPTs: everything else in 1 GiB pages
    }

    [Fact]
    public void Maxphyaddr_comes_from_cpuid_and_is_clamped()
    {
        Assert.Equal(40u, PoolSize.PhysicalAddressBits(0x8000_0008, 0x3028));   // QEMU: 40 physical, 48 virtual
        Assert.Equal(36u, PoolSize.PhysicalAddressBits(0x8000_0004, 0x3028));   // no leaf 8000_0008h: 36 (SDM Vol 3A 4.1.4)
        Assert.Equal(32u, PoolSize.PhysicalAddressBits(0x8000_0008, 0));
        Assert.Equal(52u, PoolSize.PhysicalAddressBits(0x8000_0008, 0xFF));
        Assert.Equal(TiB, PoolSize.NestedTop(4 * GiB, 40, true));
        Assert.Equal(PoolSize.MaxTop, PoolSize.NestedTop(4 * GiB, 52, true));
        Assert.Equal(512 * GiB, PoolSize.NestedTop(4 * GiB, 46, false));
        Assert.Equal(64 * GiB, PoolSize.NestedTop(4 * GiB, 36, true));
        Assert.Equal(2 * TiB, PoolSize.NestedTop(2 * TiB, 40, true));   // never below the top of memory
    }

    /// <summary>
    /// The pool's allowance holds whatever the firmware programs (contiguous variable ranges of 2 MiB or more,
    /// as firmware does; 4 KiB splits inside 2 MiB come from the headroom): the exact count of both maps, with
    /// and without 1 GiB pages, never exceeds HostTables + NestedTables.
    /// </summary>
    [Fact]
    public void The_pool_allowance_covers_random_mtrr_layouts()
    {
        var random = new Random(9);
        for (int round = 0; round < 40; round++)
        {
            uint bits = (uint)random.Next(36, 53);
            ulong physicalEnd = 1UL << (int)Math.Min(bits, 46u);
            ulong memoryTop = (ulong)random.Next(4, 600) * GiB;
            int count = random.Next(0, 33);
            var variable = new (ulong Base, ulong Mask)[count];
            for (int i = 0; i < count; i++)
            {
                int sizeBits = random.Next(21, 40);
                ulong size = 1UL << sizeBits;
                ulong rangeBase = ((ulong)random.NextInt64(0, (long)(physicalEnd >> sizeBits))) << sizeBits;
                variable[i] = Variable(rangeBase, size, random.Next(2) == 0 ? MemoryType.Uncacheable : MemoryType.WriteBack);
            }
            MtrrSet mtrrs = Read(Msrs(DefType(random.Next(2) == 0 ? MemoryType.Uncacheable : MemoryType.WriteBack), variable, count: Math.Max(count, 8)));
            ulong top = PoolSize.TopOfMemory([new PhysicalRange { Base = 0, Pages = memoryTop / 4096 }]);
            ulong host = NestedMap.EstimateTables(top, mtrrs, allow1GiB: false);
            Assert.True(host <= PoolSize.HostTables(top), $"round {round}: host map {host} > {PoolSize.HostTables(top)}");
            foreach (bool gigabytePages in new[] { true, false })
            {
                ulong nested = NestedMap.EstimateTables(PoolSize.NestedTop(top, bits, gigabytePages), mtrrs, gigabytePages);
                Assert.True(nested <= PoolSize.NestedTables(top, bits), $"round {round} ({bits} bits, 1 GiB pages {gigabytePages}, {count} ranges): nested map {nested} > {PoolSize.NestedTables(top, bits)}");
            }
        }
    }
}
