using System;
using System.Collections.Generic;
using Vigil.Hypervisor.Core;
using Xunit;
using static Vigil.Tests.Hypervisor.MtrrRaw;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// Identity maps built into unmanaged memory, then walked by <see cref="TableWalker"/> as the hardware
/// would: every address maps to itself with the MTRRs' type, large pages only where the type is uniform,
/// and Protect takes away exactly the pages asked for.
/// </summary>
public class NestedMapTests
{
    private const MemoryType UC = MemoryType.Uncacheable;
    private const MemoryType WT = MemoryType.WriteThrough;
    private const MemoryType WB = MemoryType.WriteBack;
    private const ulong Page = 0x1000;

    /// <summary>A map of one format over an arena, and the checks that go with it.</summary>
    private sealed class Subject : IDisposable
    {
        private readonly TableKind _kind;
        private NestedMap<EptFormat> _ept;
        private NestedMap<NptFormat> _npt;
        private NestedMap<HostFormat> _host;

        public Subject(TableKind kind, int pages = 64)
        {
            _kind = kind;
            Arena = new PageArena(pages);
            _ept = new NestedMap<EptFormat>(default);
            _npt = new NestedMap<NptFormat>(default);
            _host = new NestedMap<HostFormat>(default);
        }

        public PageArena Arena { get; }

        public MtrrSet Mtrrs { get; private set; }

        public ulong Root => _kind switch { TableKind.Ept => _ept.Root, TableKind.Npt => _npt.Root, _ => _host.Root };

        public ulong TablesUsed => _kind switch { TableKind.Ept => _ept.TablesUsed, TableKind.Npt => _npt.TablesUsed, _ => _host.TablesUsed };

        public bool Build(ulong limit, MtrrSet mtrrs, bool allow1GiB = true)
        {
            Mtrrs = mtrrs;
            PageArena.Pages pages = Arena.Source;
            return _kind switch
            {
                TableKind.Ept => _ept.Build(ref pages, limit, mtrrs, allow1GiB),
                TableKind.Npt => _npt.Build(ref pages, limit, mtrrs, allow1GiB),
                _ => _host.Build(ref pages, limit, mtrrs, allow1GiB),
            };
        }

        public bool Protect(ulong rangeBase, ulong size)
        {
            PageArena.Pages pages = Arena.Source;
            return _kind switch
            {
                TableKind.Ept => _ept.Protect(ref pages, rangeBase, size),
                TableKind.Npt => _npt.Protect(ref pages, rangeBase, size),
                _ => _host.Protect(ref pages, rangeBase, size),
            };
        }

        public bool Unprotect(ulong rangeBase, ulong size)
        {
            PageArena.Pages pages = Arena.Source;
            return _kind switch
            {
                TableKind.Ept => _ept.Unprotect(ref pages, rangeBase, size),
                TableKind.Npt => _npt.Unprotect(ref pages, rangeBase, size),
                _ => _host.Unprotect(ref pages, rangeBase, size),
            };
        }

        public bool SetAccess(ulong rangeBase, ulong size, PageAccess access)
        {
            PageArena.Pages pages = Arena.Source;
            return _kind switch
            {
                TableKind.Ept => _ept.SetAccess(ref pages, rangeBase, size, access),
                TableKind.Npt => _npt.SetAccess(ref pages, rangeBase, size, access),
                _ => _host.SetAccess(ref pages, rangeBase, size, access),
            };
        }

        public bool SplitTo4K(ulong address)
        {
            PageArena.Pages pages = Arena.Source;
            return _kind switch
            {
                TableKind.Ept => _ept.SplitTo4K(ref pages, address),
                TableKind.Npt => _npt.SplitTo4K(ref pages, address),
                _ => _host.SplitTo4K(ref pages, address),
            };
        }

        public bool Lookup(ulong address, out PageMapping mapping)
        {
            PageArena.Pages pages = Arena.Source;
            return _kind switch
            {
                TableKind.Ept => _ept.Lookup(ref pages, address, out mapping),
                TableKind.Npt => _npt.Lookup(ref pages, address, out mapping),
                _ => _host.Lookup(ref pages, address, out mapping),
            };
        }

        public Translation Walk(ulong address) => TableWalker.Walk(Arena, _kind, Root, address);

        /// <summary>The address maps to itself, accessible, with the MTRRs' type in effect; returns the leaf level.</summary>
        public int AssertIdentity(ulong address)
        {
            Translation t = Walk(address);
            Assert.True(t.Present, $"0x{address:X} is not present");
            Assert.Equal(address, t.Physical);
            Assert.Equal(7, t.Access);
            MemoryType mtrr = Mtrrs.TypeOf(address);
            if (_kind == TableKind.Host) Assert.Equal(0, t.TypeBits & 3);          // WB, the MTRR decides
            Assert.Equal(mtrr, TableWalker.Effective(_kind, t, mtrr));
            return t.Level;
        }

        public void AssertInaccessible(ulong address)
        {
            Translation t = Walk(address);
            Assert.False(t.Present, $"0x{address:X} is still accessible");
            Assert.True(Lookup(address, out PageMapping mapping));                  // the mapping is remembered
            Assert.Equal(PageAccess.None, mapping.Access);
            Assert.Equal(address, mapping.PhysicalAddress);
        }

        public void Dispose() => Arena.Dispose();
    }

    /// <summary>Addresses worth checking below <paramref name="limit"/>: every page of the first 4 MiB, both sides of every 2 MiB boundary, and a random sprinkle.</summary>
    private static IEnumerable<ulong> Samples(ulong limit, int seed = 7)
    {
        for (ulong a = 0; a < Math.Min(limit, 4 * MiB); a += Page) yield return a;
        for (ulong a = 2 * MiB; a < limit; a += 2 * MiB)
        {
            yield return a - Page;
            yield return a;
            yield return a + 0x123;
        }
        var random = new Random(seed);
        for (int i = 0; i < 2000; i++) yield return (ulong)random.NextInt64(0, (long)limit) & ~7UL;
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    [InlineData(TableKind.Host)]
    public void A_pc_maps_to_itself_with_the_mtrr_types(TableKind kind)
    {
        using var map = new Subject(kind);
        MtrrSet mtrrs = Pc();
        Assert.True(map.Build(6 * GiB, mtrrs));
        // PML4, PDPT, a PD for the first GiB and a PT for the first 2 MiB (the fixed ranges disagree there).
        Assert.Equal(4UL, map.TablesUsed);
        Assert.Equal(map.TablesUsed, NestedMap.EstimateTables(6 * GiB, mtrrs, allow1GiB: true));
        foreach (ulong a in Samples(6 * GiB))
        {
            int level = map.AssertIdentity(a);
            int expected = a < 2 * MiB ? 1 : a < GiB ? 2 : 3;
            Assert.Equal(expected, level);
        }
        Assert.False(map.Walk(6 * GiB).Present);                                   // nothing beyond the limit
        Assert.Equal(UC, map.Mtrrs.TypeOf(0xA_0000));
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    [InlineData(TableKind.Host)]
    public void Without_1_gib_pages_every_gib_gets_a_page_directory(TableKind kind)
    {
        using var map = new Subject(kind);
        Assert.True(map.Build(6 * GiB, Pc(), allow1GiB: false));
        Assert.Equal(1UL + 1 + 6 + 1, map.TablesUsed);
        Assert.Equal(map.TablesUsed, NestedMap.EstimateTables(6 * GiB, Pc(), allow1GiB: false));
        foreach (ulong a in Samples(6 * GiB)) Assert.Equal(a < 2 * MiB ? 1 : 2, map.AssertIdentity(a));
    }

    [Fact]
    public void A_small_range_of_another_type_splits_only_its_own_large_pages()
    {
        using var map = new Subject(TableKind.Ept);
        const ulong Hole = 0x1234_5000;
        MtrrSet mtrrs = Read(Msrs(DefType(WB), [Variable(Hole, Page, UC), Variable(5 * GiB, 64 * 1024, WT)]));
        Assert.True(map.Build(8 * GiB, mtrrs));
        // PML4, PDPT, for each odd range a PD and a PT.
        Assert.Equal(6UL, map.TablesUsed);
        Assert.Equal(1, map.AssertIdentity(Hole));
        Assert.Equal(UC, (MemoryType)map.Walk(Hole).TypeBits);
        Assert.Equal(WB, (MemoryType)map.Walk(Hole - Page).TypeBits);
        Assert.Equal(WB, (MemoryType)map.Walk(Hole + Page).TypeBits);
        Assert.Equal(1, map.AssertIdentity(0x1220_0000));                          // same 2 MiB: 4 KiB pages
        Assert.Equal(2, map.AssertIdentity(0x1240_0000));                          // next 2 MiB: large
        Assert.Equal(2, map.AssertIdentity(0x1000_0000));
        Assert.Equal(3, map.AssertIdentity(GiB));
        Assert.Equal(WT, (MemoryType)map.Walk(5 * GiB + 0xF000).TypeBits);
        Assert.Equal(WB, (MemoryType)map.Walk(5 * GiB + 0x1_0000).TypeBits);
        Assert.Equal(1, map.AssertIdentity(5 * GiB + 0x1_0000));
        Assert.Equal(3, map.AssertIdentity(6 * GiB));
        foreach (ulong a in Samples(8 * GiB)) map.AssertIdentity(a);
    }

    [Fact]
    public void Large_pages_never_straddle_memory_types()
    {
        var random = new Random(99);
        MemoryType[] types = [UC, MemoryType.WriteCombining, WT, MemoryType.WriteProtected, WB];
        for (int round = 0; round < 12; round++)
        {
            var ranges = new List<(ulong, ulong)>();
            for (int r = random.Next(1, 6); r > 0; r--)
            {
                ulong size = 1UL << random.Next(12, 31);
                ranges.Add(Variable((ulong)random.NextInt64(0, 4L * (long)GiB) & ~(size - 1), size, types[random.Next(types.Length)]));
            }
            MtrrSet mtrrs = Read(Msrs(DefType(types[random.Next(types.Length)], fixedEnabled: round % 2 == 0), [.. ranges]));
            ulong limit = (4 * GiB) + ((ulong)random.Next(0, 1024) * Page);
            ulong estimate = NestedMap.EstimateTables(limit, mtrrs, allow1GiB: round % 3 != 0);
            using var map = new Subject(TableKind.Ept, (int)estimate);
            Assert.True(map.Build(limit, mtrrs, allow1GiB: round % 3 != 0));
            Assert.Equal(estimate, map.TablesUsed);
            for (ulong a = 0; a < limit;)
            {
                Translation t = map.Walk(a);
                Assert.True(t.Present);
                Assert.Equal(a, t.Physical);
                ulong size = 1UL << (3 + (9 * t.Level));
                Assert.True(mtrrs.IsUniform(a, size, out MemoryType type));
                Assert.Equal(type, (MemoryType)t.TypeBits);
                Assert.Equal(type, mtrrs.TypeOf(a + size - Page));
                a += size;
            }
            Assert.False(map.Walk(limit).Present);
        }
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    [InlineData(TableKind.Host)]
    public void Protect_takes_away_exactly_the_requested_pages(TableKind kind)
    {
        using var map = new Subject(kind);
        Assert.True(map.Build(6 * GiB, Pc()));
        ulong before = map.TablesUsed;
        const ulong Start = 0x1_2345_6000;                                          // inside the 1 GiB page at 4 GiB
        Assert.True(map.Protect(Start, 3 * Page));
        Assert.Equal(before + 2, map.TablesUsed);                                  // a PD and a PT
        for (ulong a = Start; a < Start + (3 * Page); a += Page) map.AssertInaccessible(a);
        map.AssertInaccessible(Start + (3 * Page) - 1);
        Assert.Equal(1, map.AssertIdentity(Start - Page));
        Assert.Equal(1, map.AssertIdentity(Start + (3 * Page)));
        Assert.Equal(2, map.AssertIdentity(Start + (2 * MiB)));                    // the rest of the GiB: 2 MiB pages
        Assert.Equal(3, map.AssertIdentity(5 * GiB));
        foreach (ulong a in Samples(6 * GiB, seed: 11))
        {
            if (a >= Start && a < Start + (3 * Page)) continue;
            map.AssertIdentity(a);
        }
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    public void Protect_rounds_out_to_whole_pages(TableKind kind)
    {
        using var map = new Subject(kind);
        Assert.True(map.Build(6 * GiB, Pc()));
        Assert.True(map.Protect(GiB + 0xFF8, 0x10));                               // 8 bytes in each of two pages
        map.AssertInaccessible(GiB);
        map.AssertInaccessible(GiB + Page);
        map.AssertIdentity(GiB + (2 * Page));
        map.AssertIdentity(GiB - Page);
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    public void Large_pages_wholly_inside_the_range_stay_large(TableKind kind)
    {
        using var map = new Subject(kind);
        Assert.True(map.Build(6 * GiB, Pc()));
        ulong before = map.TablesUsed;
        Assert.True(map.Protect(2 * GiB, (2 * MiB) + Page));
        Assert.Equal(before + 2, map.TablesUsed);                                  // the 1 GiB page split, then one 2 MiB page
        Assert.True(map.Lookup(2 * GiB, out PageMapping mapping));
        Assert.Equal(2, mapping.Level);
        Assert.Equal(PageAccess.None, mapping.Access);
        Assert.Equal(WB, mapping.Type);
        for (ulong a = 2 * GiB; a < (2 * GiB) + (2 * MiB) + Page; a += 64 * Page) map.AssertInaccessible(a);
        map.AssertInaccessible((2 * GiB) + (2 * MiB));
        Assert.Equal(1, map.AssertIdentity((2 * GiB) + (2 * MiB) + Page));
        Assert.Equal(2, map.AssertIdentity((2 * GiB) + (4 * MiB)));
        map.AssertIdentity((2 * GiB) - Page);
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    [InlineData(TableKind.Host)]
    public void Unprotect_gives_access_back_with_the_type_kept(TableKind kind)
    {
        using var map = new Subject(kind);
        Assert.True(map.Build(6 * GiB, Pc()));
        const ulong InHole = 0xFEE0_0000;                                            // UC, in a 1 GiB page
        Assert.True(map.Protect(InHole, Page));
        map.AssertInaccessible(InHole);
        Assert.True(map.Lookup(InHole, out PageMapping mapping));
        Assert.Equal(kind == TableKind.Host ? WB : UC, mapping.Type);
        Assert.True(map.Unprotect(InHole, Page));
        Assert.Equal(1, map.AssertIdentity(InHole));
        Assert.Equal(1, map.AssertIdentity(InHole + Page));
        Assert.Equal(3, map.AssertIdentity(3 * GiB - Page));
    }

    [Fact]
    public void Set_access_makes_pages_read_only()
    {
        using var map = new Subject(TableKind.Ept);
        Assert.True(map.Build(2 * GiB, Pc()));
        Assert.True(map.SetAccess(0x40_0000, Page, PageAccess.Read | PageAccess.Execute));
        Translation t = map.Walk(0x40_0000);
        Assert.True(t.Present);
        Assert.Equal(5, t.Access);
        Assert.Equal(WB, (MemoryType)t.TypeBits);
        map.AssertIdentity(0x40_1000);
    }

    [Fact]
    public void Ranges_outside_the_map_are_refused_without_changes()
    {
        using var map = new Subject(TableKind.Ept);
        Assert.False(map.Protect(0, Page));                                        // not built yet
        Assert.True(map.Build(4 * GiB, Pc()));
        ulong before = map.TablesUsed;
        Assert.False(map.Protect((4 * GiB) - Page, 2 * Page));                     // crosses the limit
        Assert.False(map.Protect(ulong.MaxValue - Page, 2 * Page));                // wraps around
        Assert.True(map.Protect(GiB, 0));                                          // nothing to do
        Assert.Equal(before, map.TablesUsed);
        map.AssertIdentity((4 * GiB) - Page);
        map.AssertIdentity(GiB);
        Assert.False(map.SplitTo4K(4 * GiB));
        Assert.False(map.Lookup(4 * GiB, out _));
    }

    [Fact]
    public void An_exhausted_pool_fails_the_build_without_throwing()
    {
        using var map = new Subject(TableKind.Npt, pages: 3);
        Assert.False(map.Build(6 * GiB, Pc()));
        Assert.Equal(3UL, map.TablesUsed);
        Assert.False(map.Protect(GiB, Page));                                      // a failed map takes no changes
    }

    [Fact]
    public void An_exhausted_pool_fails_protect_before_any_access_changes()
    {
        using var map = new Subject(TableKind.Ept, pages: 5);
        Assert.True(map.Build(6 * GiB, Pc()));                                     // 4 tables, 1 left
        // Both ends need splits: [GiB + 2 MiB - 4 KiB, 2 GiB + 4 KiB) needs PDs for two GiBs and two PTs.
        ulong start = GiB + (2 * MiB) - Page;
        Assert.False(map.Protect(start, GiB - (2 * MiB) + (2 * Page)));
        Assert.Equal(5, map.Arena.Used);
        foreach (ulong a in new[] { start, start + Page, (2 * GiB) - Page, 2 * GiB, (2 * GiB) + Page }) map.AssertIdentity(a);
        foreach (ulong a in Samples(6 * GiB, seed: 3)) map.AssertIdentity(a);
    }

    [Fact]
    public void A_protect_needs_at_most_four_new_tables()
    {
        using var map = new Subject(TableKind.Ept);
        Assert.True(map.Build(6 * GiB, Pc()));
        ulong before = map.TablesUsed;
        ulong start = GiB + (2 * MiB) - Page;
        Assert.True(map.Protect(start, GiB - (2 * MiB) + (2 * Page)));          // [GiB + 2 MiB - 4 KiB, 2 GiB + 4 KiB)
        Assert.Equal(before + (ulong)NestedMap.TablesPerAccessChange, map.TablesUsed);
        map.AssertInaccessible(start);
        map.AssertInaccessible((2 * GiB) - Page);
        map.AssertInaccessible(2 * GiB);
        Assert.Equal(1, map.AssertIdentity(start - Page));
        Assert.Equal(1, map.AssertIdentity((2 * GiB) + Page));
        Assert.True(map.Lookup(GiB + (512 * MiB), out PageMapping mapping));
        Assert.Equal(2, mapping.Level);                                            // inside: still 2 MiB
        Assert.Equal(PageAccess.None, mapping.Access);
    }

    [Theory]
    [InlineData(TableKind.Ept)]
    [InlineData(TableKind.Npt)]
    [InlineData(TableKind.Host)]
    public void Split_to_4k_keeps_the_translation(TableKind kind)
    {
        using var map = new Subject(kind);
        Assert.True(map.Build(4 * GiB, Pc()));
        ulong before = map.TablesUsed;
        Assert.True(map.SplitTo4K(0xFEE0_0123));
        Assert.Equal(before + 2, map.TablesUsed);
        Assert.True(map.SplitTo4K(0xFEE0_0123));                                   // already split: nothing more
        Assert.Equal(before + 2, map.TablesUsed);
        Assert.Equal(1, map.AssertIdentity(0xFEE0_0000));
        Assert.Equal(1, map.AssertIdentity(0xFEFF_F000));
        Assert.Equal(2, map.AssertIdentity(0xFF00_0000));
        Assert.True(map.Lookup(0xFEE0_0123, out PageMapping mapping));
        Assert.Equal(1, mapping.Level);
        Assert.Equal(0xFEE0_0123UL, mapping.PhysicalAddress);
        Assert.Equal(PageAccess.All, mapping.Access);
    }

    [Fact]
    public void Maps_beyond_512_gib_use_more_pml4_entries()
    {
        using var map = new Subject(TableKind.Ept);
        MtrrSet mtrrs = MtrrSet.Uniform(WB);
        Assert.True(map.Build(513 * GiB, mtrrs));
        Assert.Equal(3UL, map.TablesUsed);
        Assert.Equal(3, map.AssertIdentity((512 * GiB) + 0x5000));
        Assert.Equal(3, map.AssertIdentity(511 * GiB));
        Assert.False(map.Walk(513 * GiB).Present);
        Assert.Equal(1UL + 2 + 513 + (513 * 512), NestedMap.WorstCaseTables(513 * GiB));
    }

    [Fact]
    public void A_limit_off_a_large_page_boundary_ends_in_4k_pages()
    {
        using var map = new Subject(TableKind.Npt);
        ulong limit = GiB + 0x2800;                                                 // rounded up to GiB + 0x3000
        Assert.True(map.Build(limit, MtrrSet.Uniform(WB), allow1GiB: false));
        Assert.Equal(5UL, map.TablesUsed);                                         // PML4, PDPT, 2 PDs, 1 PT
        Assert.Equal(2, map.AssertIdentity(GiB - Page));
        Assert.Equal(1, map.AssertIdentity(GiB + 0x2000));
        Assert.False(map.Walk(GiB + 0x3000).Present);
        Assert.False(map.Lookup(GiB + 0x3000, out _));
    }

    [Fact]
    public void Invalid_limits_and_a_second_build_are_refused()
    {
        using var map = new Subject(TableKind.Ept);
        Assert.False(map.Build(0, Pc()));
        Assert.False(map.Build(NestedMap.MaxLimit + 1, Pc()));
        Assert.Equal(0UL, NestedMap.EstimateTables(0, Pc(), allow1GiB: true));
        Assert.True(map.Build(GiB, Pc()));
        Assert.False(map.Build(GiB, Pc()));
    }
}

/// <summary>The hypervisor's own page source: the shared <see cref="PagePool"/>, identity-mapped.</summary>
public unsafe class PoolPageSourceTests
{
    [Fact]
    public void Tables_come_from_the_pool_and_advance_it()
    {
        const int Pages = 8;
        byte* memory = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(Pages * 4096, 4096);
        try
        {
            var pool = new PagePool((ulong)memory, Pages * 4096);
            var pages = new PoolPageSource(&pool);
            var map = new NestedMap<EptFormat>(default);
            Assert.True(map.Build(ref pages, 4 * MtrrRaw.GiB, MtrrRaw.Pc(), allow1GiB: true));
            Assert.Equal((ulong)memory, map.Root);
            Assert.Equal(4UL * 4096, pool.Used);                                   // the copy in `pages` drew from `pool`
            Assert.True(map.Lookup(ref pages, 0xA_0000, out PageMapping mapping));
            Assert.Equal(MemoryType.Uncacheable, mapping.Type);
            Assert.True(map.Protect(ref pages, 0x1000_0000, 0x1000));
            Assert.Equal(5UL * 4096, pool.Used);                                   // a PT under the first GiB's PD
            Assert.True(map.Protect(ref pages, 0x8000_0000, 0x1000));              // a PD and a PT
            Assert.Equal(7UL * 4096, pool.Used);
            Assert.False(map.Protect(ref pages, 0xC000_0000, 0x1000));             // needs two, one left: refused, no throw
            Assert.Equal(0UL, pool.Free);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(memory);
        }
    }
}
