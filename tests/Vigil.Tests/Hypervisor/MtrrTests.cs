using System;
using System.Collections.Generic;
using Vigil.Hypervisor.Core;
using Xunit;
using static Vigil.Tests.Hypervisor.MtrrRaw;

namespace Vigil.Tests.Hypervisor;

/// <summary>Memory types from synthetic MTRR sets, by the precedence rules of SDM Vol 3A 11.11.4.1.</summary>
public class MtrrTests
{
    private const MemoryType UC = MemoryType.Uncacheable;
    private const MemoryType WC = MemoryType.WriteCombining;
    private const MemoryType WT = MemoryType.WriteThrough;
    private const MemoryType WP = MemoryType.WriteProtected;
    private const MemoryType WB = MemoryType.WriteBack;

    private static MtrrSet WithRanges(MemoryType defaultType, params (ulong Base, ulong Mask)[] ranges)
        => Read(Msrs(DefType(defaultType), ranges));

    [Fact]
    public void Disabled_mtrrs_make_everything_uncacheable()
    {
        MtrrSet set = Read(Msrs(DefType(WB, enabled: false), [Variable(0, 2 * GiB, WB)]));
        Assert.False(set.Enabled);
        Assert.False(set.FixedRangesEnabled);
        foreach (ulong a in new ulong[] { 0, 0xA0000, GiB, 5 * GiB }) Assert.Equal(UC, set.TypeOf(a));
        Assert.True(set.IsUniform(0, GiB, out MemoryType type));
        Assert.Equal(UC, type);
    }

    [Fact]
    public void The_default_type_applies_where_no_range_matches()
    {
        MtrrSet set = Read(Msrs(DefType(WB, fixedEnabled: false), []));
        Assert.Equal(WB, set.DefaultType);
        Assert.Equal(WB, set.TypeOf(0));
        Assert.Equal(WB, set.TypeOf(0xA0000));
        Assert.Equal(WB, set.TypeOf(123 * GiB + 0x5000));
        Assert.True(set.IsUniform(0, GiB, out MemoryType type));
        Assert.Equal(WB, type);
    }

    [Fact]
    public void Uniform_set_stands_for_a_cpu_without_mtrrs()
    {
        MtrrSet set = MtrrSet.Uniform(WB);
        Assert.Equal(WB, set.TypeOf(0xA0000));
        Assert.Equal(WB, set.TypeOf(100 * GiB));
        Assert.True(set.IsUniform(0, GiB, out MemoryType type));
        Assert.Equal(WB, type);
    }

    [Theory]
    [InlineData(0x0UL, WB)]
    [InlineData(0x9_F000UL, WB)]
    [InlineData(0x9_FFFFUL, WB)]
    [InlineData(0xA_0000UL, UC)]        // VGA frame buffer
    [InlineData(0xB_FFFFUL, UC)]
    [InlineData(0xC_0000UL, WP)]        // option ROMs
    [InlineData(0xC_7FFFUL, WP)]
    [InlineData(0xC_8000UL, UC)]
    [InlineData(0xD_F000UL, UC)]
    [InlineData(0xE_0000UL, WP)]        // BIOS
    [InlineData(0xF_FFFFUL, WP)]
    [InlineData(0x10_0000UL, WB)]       // past the fixed ranges: the default
    [InlineData(0xBFFF_FFFFUL, WB)]
    [InlineData(0xC000_0000UL, UC)]     // the PCI hole
    [InlineData(0xFEE0_0000UL, UC)]
    [InlineData(0xFFFF_FFFFUL, UC)]
    [InlineData(0x1_0000_0000UL, WB)]
    public void A_pc_has_its_fixed_ranges_and_a_pci_hole(ulong address, MemoryType expected)
    {
        MtrrSet set = Pc();
        Assert.True(set.FixedRangesEnabled);
        Assert.Equal(expected, set.TypeOf(address));
    }

    [Fact]
    public void Fixed_range_msrs_hold_one_type_per_byte_lowest_address_first()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(WB), []);
        msrs[MtrrSet.Fix64K00000Msr] = Fixed(WB, WT, WB, WB, WB, WB, WB, UC);
        msrs[MtrrSet.Fix16K80000Msr] = Fixed(WB, WB, WB, WB, WB, WB, WB, WC);
        msrs[MtrrSet.Fix4KC0000Msr + 7] = Fixed(WP, WP, WP, WP, WP, WP, WT, UC);
        MtrrSet set = Read(msrs);
        Assert.Equal(WB, set.TypeOf(0x0_FFFF));
        Assert.Equal(WT, set.TypeOf(0x1_0000));
        Assert.Equal(WT, set.TypeOf(0x1_FFFF));
        Assert.Equal(UC, set.TypeOf(0x7_0000));
        Assert.Equal(WC, set.TypeOf(0x9_C000));
        Assert.Equal(WB, set.TypeOf(0x9_BFFF));
        Assert.Equal(WP, set.TypeOf(0xF_8000));
        Assert.Equal(WT, set.TypeOf(0xF_E000));
        Assert.Equal(UC, set.TypeOf(0xF_F000));
    }

    [Fact]
    public void Amd_rdmem_wrmem_bits_in_fixed_ranges_are_not_part_of_the_type()
    {
        var set = new MtrrSet(FixedSupported | 8, DefType(WB));
        Assert.True(set.SetFixedRangeMsr(MtrrSet.Fix16KA0000Msr, 0x1818_1818_1818_1818UL | AllFixed(WB)));   // bits 4:3 set
        Assert.Equal(WB, set.TypeOf(0xA_0000));
        Assert.False(set.SetFixedRangeMsr(0x251, 0));
    }

    [Theory]
    [InlineData(0x0UL, 0)]
    [InlineData(0x7_FFFFUL, 7)]
    [InlineData(0x8_0000UL, 8)]
    [InlineData(0xA_0000UL, 16)]
    [InlineData(0xB_FFFFUL, 23)]
    [InlineData(0xC_0000UL, 24)]
    [InlineData(0xF_FFFFUL, 87)]
    public void Fixed_range_indices_follow_the_sdm_layout(ulong address, int index)
        => Assert.Equal(index, MtrrSet.FixedIndex(address));

    [Fact]
    public void Disabled_fixed_ranges_leave_the_first_mib_to_the_variable_ranges()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(WB, fixedEnabled: false), [Variable(0xC_0000, 0x4_0000, WT)]);
        msrs[MtrrSet.Fix16KA0000Msr] = AllFixed(UC);
        MtrrSet set = Read(msrs);
        Assert.False(set.FixedRangesEnabled);
        Assert.Equal(WB, set.TypeOf(0xA_0000));
        Assert.Equal(WT, set.TypeOf(0xC_0000));
    }

    [Fact]
    public void Fixed_ranges_beat_variable_ranges_below_one_mib()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(WB), [Variable(0, MiB, UC)]);
        MtrrSet set = Read(msrs);
        Assert.Equal(WB, set.TypeOf(0x5_0000));         // fixed: WB
        Assert.True(set.IsUniform(0, 2 * MiB, out MemoryType type));
        Assert.Equal(WB, type);
    }

    [Fact]
    public void An_uncacheable_hole_over_a_write_back_default()
    {
        MtrrSet set = WithRanges(WB, Variable(3 * GiB, GiB, UC));
        Assert.Equal(WB, set.TypeOf(0xBFFF_F000));
        Assert.Equal(UC, set.TypeOf(0xC000_0000));
        Assert.Equal(UC, set.TypeOf(0xFFFF_FFFF));
        Assert.Equal(WB, set.TypeOf(0x1_0000_0000));
    }

    [Fact]
    public void Write_back_ranges_over_an_uncacheable_default()
    {
        MtrrSet set = WithRanges(UC, Variable(0, 2 * GiB, WB), Variable(2 * GiB, GiB, WB), Variable(4 * GiB, 4 * GiB, WB));
        Assert.Equal(WB, set.TypeOf(0x10_0000));
        Assert.Equal(WB, set.TypeOf(3 * GiB - 1));
        Assert.Equal(UC, set.TypeOf(3 * GiB));
        Assert.Equal(WB, set.TypeOf(7 * GiB));
        Assert.Equal(UC, set.TypeOf(8 * GiB));
    }

    [Theory]
    [InlineData(WT, WB, WT)]    // WT and WB: WT
    [InlineData(WB, WT, WT)]
    [InlineData(UC, WB, UC)]    // UC wins
    [InlineData(WB, UC, UC)]
    [InlineData(UC, WC, UC)]
    [InlineData(WB, WB, WB)]    // identical: that type
    [InlineData(WC, WC, WC)]
    [InlineData(WC, WB, UC)]    // undefined by the SDM: UC
    [InlineData(WP, WT, UC)]
    public void Overlapping_variable_ranges_combine_by_the_sdm_rules(MemoryType outer, MemoryType inner, MemoryType expected)
    {
        MtrrSet set = WithRanges(WB, Variable(0, 4 * GiB, outer), Variable(GiB, 2 * MiB, inner));
        Assert.Equal(expected, set.TypeOf(GiB + 0x1000));
        Assert.Equal(outer, set.TypeOf(GiB + (2 * MiB)));
        Assert.True(set.IsUniform(GiB, 2 * MiB, out MemoryType type));
        Assert.Equal(expected, type);
    }

    [Fact]
    public void Ranges_without_the_valid_bit_are_ignored()
    {
        MtrrSet set = WithRanges(WB, Variable(0, 4 * GiB, UC, valid: false));
        Assert.Equal(WB, set.TypeOf(GiB));
    }

    [Fact]
    public void Reserved_type_encodings_read_as_uncacheable()
    {
        MtrrSet set = WithRanges((MemoryType)2, (7 * GiB | 7, Variable(7 * GiB, GiB, WB).Mask));
        Assert.Equal(UC, set.DefaultType);
        Assert.Equal(UC, set.TypeOf(0x1000_0000));
        Assert.Equal(UC, set.TypeOf(7 * GiB));
    }

    [Fact]
    public void Read_asks_only_for_the_msrs_mtrrcap_announces()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(WB), [Variable(0, GiB, WT), Variable(GiB, GiB, UC)], fixedSupported: false, count: 2);
        var reader = new FakeMsrs(msrs);
        Assert.True(MtrrSet.Read(ref reader, out MtrrSet set));
        Assert.Empty(reader.Faults);
        Assert.DoesNotContain(0x204u, reader.Reads);
        Assert.DoesNotContain(MtrrSet.Fix64K00000Msr, reader.Reads);
        Assert.Equal(2, set.VariableCount);
        Assert.False(set.FixedRangesEnabled);          // FE set, but MTRRCAP.FIX clear
        Assert.Equal(WT, set.TypeOf(0xA_0000));        // so the variable ranges govern the first MiB
        Assert.Equal(UC, set.TypeOf(GiB));
    }

    [Fact]
    public void Read_refuses_more_variable_ranges_than_the_set_holds()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(WB), [], count: MtrrSet.MaxVariableRanges + 1);
        var reader = new FakeMsrs(msrs);
        Assert.False(MtrrSet.Read(ref reader, out MtrrSet set));
        Assert.Equal(MtrrSet.MaxVariableRanges, set.VariableCount);
    }

    [Fact]
    public void Amd_top_of_memory_2_makes_memory_above_4_gib_write_back_by_default()
    {
        const ulong MtrrTom2En = 1UL << 21, Tom2ForceMemTypeWB = 1UL << 22;
        MtrrSet set = WithRanges(UC, Variable(0, 2 * GiB, WB));
        set.ApplyAmdTopOfMemory2(MtrrTom2En, 9 * GiB);                       // the force bit clear: no effect
        Assert.Equal(UC, set.TypeOf(5 * GiB));
        set.ApplyAmdTopOfMemory2(MtrrTom2En | Tom2ForceMemTypeWB, (8 * GiB) + (512 * MiB));
        Assert.Equal(WB, set.TypeOf(GiB));
        Assert.Equal(UC, set.TypeOf(3 * GiB));
        Assert.Equal(WB, set.TypeOf(4 * GiB));
        Assert.Equal(WB, set.TypeOf((8 * GiB) + (512 * MiB) - 1));
        Assert.Equal(UC, set.TypeOf((8 * GiB) + (512 * MiB)));
        Assert.True(set.IsUniform(4 * GiB, GiB, out MemoryType type));
        Assert.Equal(WB, type);
        Assert.False(set.IsUniform(8 * GiB, GiB, out _));                   // TOP_MEM2 inside it
        Assert.True(set.IsUniform(8 * GiB, 2 * MiB, out type));
        Assert.Equal(WB, type);
    }

    [Theory]
    [InlineData(0x0UL, 0x1000UL, true, WB)]
    [InlineData(0xA_0000UL, 0x1000UL, true, UC)]
    [InlineData(0xC_0000UL, 0x1000UL, true, WP)]
    [InlineData(0x0UL, 2 * MiB, false, UC)]                 // fixed ranges disagree
    [InlineData(0x0UL, GiB, false, UC)]
    [InlineData(2 * MiB, 2 * MiB, true, WB)]
    [InlineData(GiB, GiB, true, WB)]
    [InlineData(2 * GiB, 2 * GiB, false, UC)]               // the hole covers half of it
    [InlineData(3 * GiB, GiB, true, UC)]
    [InlineData(0xFEE0_0000UL, 2 * MiB, true, UC)]
    [InlineData(4 * GiB, GiB, true, WB)]
    [InlineData(0x1000UL, 2 * MiB, false, UC)]              // not aligned to its size
    [InlineData(0x0UL, 3 * MiB, false, UC)]                 // not a power of two
    [InlineData(0x0UL, 0x800UL, false, UC)]                 // smaller than a page
    public void Uniform_regions_of_a_pc(ulong regionBase, ulong size, bool uniform, MemoryType expected)
    {
        MtrrSet set = Pc();
        Assert.Equal(uniform, set.IsUniform(regionBase, size, out MemoryType type));
        if (uniform) Assert.Equal(expected, type);
    }

    [Fact]
    public void A_range_covering_part_of_a_region_makes_it_non_uniform_even_with_the_same_type()
    {
        MtrrSet set = WithRanges(WB, Variable(GiB, 4 * 0x1000, WB));
        Assert.False(set.IsUniform(GiB, 2 * MiB, out _));
        Assert.True(set.IsUniform(GiB + 0x4000, 0x4000, out MemoryType type));
        Assert.Equal(WB, type);
    }

    [Fact]
    public void The_first_mib_of_a_large_region_needs_fixed_and_variable_ranges_to_agree()
    {
        Dictionary<uint, ulong> msrs = Msrs(DefType(WB), [Variable(MiB, MiB, UC)]);
        MtrrSet set = Read(msrs);                                           // fixed all WB, [1, 2) MiB UC
        Assert.False(set.IsUniform(0, 2 * MiB, out _));
        msrs = Msrs(DefType(UC), [Variable(0, 4 * GiB, WB)]);
        set = Read(msrs);
        Assert.True(set.IsUniform(0, GiB, out MemoryType type));
        Assert.Equal(WB, type);
        msrs = Msrs(DefType(WB), [Variable(3 * MiB, MiB, UC)]);
        set = Read(msrs);
        Assert.False(set.IsUniform(0, GiB, out _));
        Assert.True(set.IsUniform(0, 2 * MiB, out type));
        Assert.Equal(WB, type);
    }

    [Fact]
    public void Uniform_regions_have_the_type_of_every_address_in_them()
    {
        var random = new Random(1234);
        MemoryType[] types = [UC, WC, WT, WP, WB];
        for (int round = 0; round < 40; round++)
        {
            var ranges = new List<(ulong, ulong)>();
            for (int r = random.Next(0, 6); r > 0; r--)
            {
                int sizeBits = random.Next(12, 33);
                ulong size = 1UL << sizeBits;
                ulong rangeBase = ((ulong)random.NextInt64(0, 8L * (long)GiB)) & ~(size - 1);
                ranges.Add(Variable(rangeBase, size, types[random.Next(types.Length)]));
            }
            Dictionary<uint, ulong> msrs = Msrs(DefType(types[random.Next(types.Length)], fixedEnabled: random.Next(2) == 0), [.. ranges]);
            msrs[MtrrSet.Fix16KA0000Msr] = AllFixed(types[random.Next(types.Length)]);
            MtrrSet set = Read(msrs);
            for (int probe = 0; probe < 200; probe++)
            {
                int sizeBits = new[] { 12, 21, 30 }[random.Next(3)];
                ulong size = 1UL << sizeBits;
                ulong regionBase = ((ulong)random.NextInt64(0, 8L * (long)GiB)) & ~(size - 1);
                if (probe % 10 == 0) regionBase = 0;
                bool uniform = set.IsUniform(regionBase, size, out MemoryType type);
                if (sizeBits == 12)
                {
                    Assert.True(uniform);                                    // a page always has one type
                    Assert.Equal(set.TypeOf(regionBase), type);
                }
                if (!uniform) continue;
                for (int i = 0; i < 64; i++)
                {
                    ulong a = regionBase + ((ulong)random.NextInt64(0, (long)size) & ~0xFFFUL);
                    Assert.Equal(type, set.TypeOf(a));
                }
                Assert.Equal(type, set.TypeOf(regionBase + size - 1));
            }
        }
    }
}
