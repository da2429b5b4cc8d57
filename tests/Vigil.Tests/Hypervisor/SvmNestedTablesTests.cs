using System.Collections.Generic;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Svm;
using Xunit;
using static Vigil.Tests.Hypervisor.MtrrRaw;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// What the SVM back end builds its nested tables from and with: the mapping limit from the memory map,
/// the MTRR snapshot (CPUID checks, AMD TOP_MEM2), the NPT over a firmware-like MTRR set with the
/// reservation hidden and a page redirected to the blank page, and the PAT intercept.
/// </summary>
public sealed unsafe class SvmNestedTablesTests
{
    private static PhysicalRange Range(ulong start, ulong pages) => new() { Base = start, Pages = pages };

    [Fact]
    public void The_limit_is_at_least_4_GiB()
        => Assert.Equal(4 * GiB, PlatformMemory.MappingLimit([Range(0, 0x7F00), Range(0x1_0000, 0x1000)]));

    [Fact]
    public void The_limit_is_the_top_of_the_memory_map_rounded_up_to_1_GiB()
    {
        Assert.Equal(6 * GiB, PlatformMemory.MappingLimit([Range(0, 0x80), Range(4 * GiB, (GiB + 0x1000) >> 12)]));
        Assert.Equal(5 * GiB, PlatformMemory.MappingLimit([Range(4 * GiB, GiB >> 12), Range(0, 1)]));   // exact: no extra GiB
        Assert.Equal(4 * GiB, PlatformMemory.MappingLimit([]));
    }

    [Fact]
    public void A_nonsense_memory_map_clamps_to_what_four_levels_reach()
        => Assert.Equal(NestedMap.MaxLimit, PlatformMemory.MappingLimit([Range(ulong.MaxValue - 0xFFF, 2)]));

    [Fact]
    public void Without_mtrrs_no_msr_is_read_and_everything_is_write_back()
    {
        var msrs = new FakeMsrs(new Dictionary<uint, ulong>());
        Assert.True(PlatformMemory.ReadMtrrs(ref msrs, cpuid1Edx: 0, readAmdTopOfMemory2: true, out MtrrSet set));
        Assert.Empty(msrs.Reads);
        Assert.Equal(MemoryType.WriteBack, set.TypeOf(0xA0000));
        Assert.Equal(MemoryType.WriteBack, set.TypeOf(0xFEE0_0000));
    }

    [Fact]
    public void Top_of_memory_2_makes_memory_above_4_GiB_write_back_only_when_read()
    {
        Dictionary<uint, ulong> raw = Msrs(DefType(MemoryType.Uncacheable), [Variable(0, 2 * GiB, MemoryType.WriteBack)]);
        raw[MtrrSet.AmdSyscfgMsr] = (1UL << 21) | (1UL << 22);   // MtrrTom2En, Tom2ForceMemTypeWB
        raw[MtrrSet.AmdTopOfMemory2Msr] = 8 * GiB;
        var with = new FakeMsrs(raw);
        Assert.True(PlatformMemory.ReadMtrrs(ref with, PlatformMemory.Cpuid1EdxMtrr, readAmdTopOfMemory2: true, out MtrrSet amd));
        Assert.Empty(with.Faults);
        Assert.Equal(MemoryType.WriteBack, amd.TypeOf(5 * GiB));
        Assert.Equal(MemoryType.Uncacheable, amd.TypeOf(3 * GiB));

        var without = new FakeMsrs(raw);
        Assert.True(PlatformMemory.ReadMtrrs(ref without, PlatformMemory.Cpuid1EdxMtrr, readAmdTopOfMemory2: false, out MtrrSet plain));
        Assert.DoesNotContain(MtrrSet.AmdSyscfgMsr, without.Reads);
        Assert.DoesNotContain(MtrrSet.AmdTopOfMemory2Msr, without.Reads);
        Assert.Equal(MemoryType.Uncacheable, plain.TypeOf(5 * GiB));
    }

    [Theory]
    [InlineData(true, 0x00800F12u, 0u, true)]             // family 17h (Zen) on bare metal
    [InlineData(true, 0x00800F12u, 1u << 31, false)]      // the same under a hypervisor (QEMU's EPYC model)
    [InlineData(true, 0x00000F48u, 0u, true)]             // family 0Fh (K8)
    [InlineData(true, 0x00000622u, 0u, false)]            // family 6 (K7): no TOP_MEM2
    [InlineData(false, 0x000906EAu, 0u, false)]           // Intel: the MSRs do not exist
    public void Syscfg_and_top_mem2_are_read_only_where_they_exist(bool amd, uint eax, uint ecx, bool expected)
        => Assert.Equal(expected, PlatformMemory.CanReadAmdTopOfMemory2(amd, eax, ecx));

    [Fact]
    public void Nested_tables_follow_the_mtrrs_hide_the_reservation_and_redirect_a_read_to_the_blank_page()
    {
        using var arena = new PageArena(64);
        PageArena.Pages pages = arena.Source;
        MtrrSet mtrrs = Pc();
        var npt = new NestedMap<NptFormat>(default);
        Assert.True(npt.Build(ref pages, 8 * GiB, mtrrs, allow1GiB: true));

        // Types: the entry's PAT index, in the reset PAT, combined with the MTRR, ends with the MTRR's type.
        foreach (ulong address in new ulong[] { 0x1000UL, 0xA0000, 0xC0000, 0xC8000, 0x20_0000, 3 * GiB, 3 * GiB + 0x1234_5000, 5 * GiB })
        {
            Translation t = TableWalker.Walk(arena, TableKind.Npt, npt.Root, address);
            Assert.True(t.Present);
            Assert.Equal(address, t.Physical);
            Assert.Equal(0x4UL, t.Entry & 0x4);   // U/S: nested accesses are user accesses
            Assert.Equal(mtrrs.TypeOf(address), TableWalker.Effective(TableKind.Npt, t, mtrrs.TypeOf(address)));
        }
        Assert.Equal(3, TableWalker.Walk(arena, TableKind.Npt, npt.Root, 3 * GiB).TypeBits);    // PCI hole: UC in the entry too
        Assert.Equal(3, TableWalker.Walk(arena, TableKind.Npt, npt.Root, 3 * GiB).Level);       // uniform: one 1 GiB page
        Assert.Equal(3, TableWalker.Walk(arena, TableKind.Npt, npt.Root, 5 * GiB).Level);
        Assert.Equal(1, TableWalker.Walk(arena, TableKind.Npt, npt.Root, 0xA0000).Level);       // fixed ranges: 4 KiB

        // The reservation: not present, every page of it, its neighbours untouched.
        const ulong reserved = 0x7E00_0000, size = 0x30_0000;
        Assert.True(npt.Protect(ref pages, reserved, size));
        for (ulong a = reserved; a < reserved + size; a += 0x20_0000) Assert.True(npt.SplitTo4K(ref pages, a));   // as Prepare does
        for (ulong a = reserved; a < reserved + size; a += 0x1000) Assert.False(TableWalker.Walk(arena, TableKind.Npt, npt.Root, a).Present);
        Assert.True(TableWalker.Walk(arena, TableKind.Npt, npt.Root, reserved - 0x1000).Present);
        Assert.True(TableWalker.Walk(arena, TableKind.Npt, npt.Root, reserved + size).Present);

        // A read of it gets the blank page: read only, no execute, the page's type kept, no new table needed.
        const ulong blank = 0x7E10_0000;
        int used = arena.Used;
        Assert.True(npt.Redirect(ref pages, reserved + 0x5000, blank, PageAccess.Read));
        Assert.Equal(used, arena.Used);
        Translation r = TableWalker.Walk(arena, TableKind.Npt, npt.Root, reserved + 0x5123);
        Assert.True(r.Present);
        Assert.Equal(blank + 0x123, r.Physical);
        Assert.Equal(1, r.Access);   // read: no write, NX set (valid because the host sets EFER.NXE)
        Assert.True(npt.Lookup(ref pages, reserved + 0x5000, out PageMapping m));
        Assert.Equal(blank, m.PhysicalAddress);
        Assert.Equal(PageAccess.Read, m.Access);
        Assert.Equal(MemoryType.WriteBack, m.Type);
        Assert.False(TableWalker.Walk(arena, TableKind.Npt, npt.Root, reserved + 0x6000).Present);

        // Outside the map nothing is redirected.
        Assert.False(npt.Redirect(ref pages, 8 * GiB, blank, PageAccess.Read));
    }

    [Fact]
    public void Redirect_splits_a_large_page_and_keeps_the_rest()
    {
        using var arena = new PageArena(32);
        PageArena.Pages pages = arena.Source;
        var npt = new NestedMap<NptFormat>(default);
        Assert.True(npt.Build(ref pages, 4 * GiB, MtrrSet.Uniform(MemoryType.WriteBack), allow1GiB: true));
        Assert.True(npt.Redirect(ref pages, GiB + 0x3000, 0x5000, PageAccess.Read | PageAccess.Execute));
        Assert.Equal(0x5000UL, TableWalker.Walk(arena, TableKind.Npt, npt.Root, GiB + 0x3000).Physical);
        Translation next = TableWalker.Walk(arena, TableKind.Npt, npt.Root, GiB + 0x4000);
        Assert.Equal(GiB + 0x4000, next.Physical);
        Assert.Equal(7, next.Access);
        Assert.Equal(2, TableWalker.Walk(arena, TableKind.Npt, npt.Root, GiB + 0x20_0000).Level);
    }

    [Fact]
    public void Pat_reads_and_writes_exit_and_nothing_else_changed()
    {
        byte* map = stackalloc byte[MsrPermissionMap.Bytes];
        new System.Span<byte>(map, MsrPermissionMap.Bytes).Clear();
        Vigil.Hypervisor.Core.Msr.MsrPolicy.BuildSvmPermissionMap(map);
        Assert.True(MsrPermissionMap.IsIntercepted(map, 0x277, write: false));
        Assert.True(MsrPermissionMap.IsIntercepted(map, 0x277, write: true));
        Assert.Equal(0x03, (map[0x277 * 2 / 8] >> (0x277 * 2 % 8)) & 0x03);
        Assert.True(MsrPermissionMap.IsIntercepted(map, 0xC000_0080, write: true));
        Assert.True(MsrPermissionMap.IsIntercepted(map, 0x830, write: true));
        Assert.False(MsrPermissionMap.IsIntercepted(map, 0x830, write: false));
        Assert.False(MsrPermissionMap.IsIntercepted(map, 0x276, write: true));
        Assert.False(MsrPermissionMap.IsIntercepted(map, 0x278, write: false));
        Assert.False(MsrPermissionMap.IsIntercepted(map, 0x1B, write: true));   // APIC base: passes through
    }

    [Theory]
    [InlineData(0x0007_0406_0007_0406UL, true)]    // the reset PAT
    [InlineData(0x0001_0506_0007_0406UL, true)]    // Linux's (WC at PA1... any of 0,1,4,5,6,7)
    [InlineData(0x0007_0406_0007_0402UL, false)]   // 2 is reserved
    [InlineData(0x0007_0406_0007_0306UL, false)]   // 3 is reserved
    [InlineData(0x0800_0000_0000_0000UL, false)]   // 8 and up are reserved
    public void Pat_values_are_checked_as_wrmsr_does(ulong value, bool valid) => Assert.Equal(valid, SvmMsrPolicy.IsValidPat(value));
}
