using System.Collections.Generic;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// Entry encodings, bit for bit: EPT (SDM Vol 3C 29.3.2, EPTP 25.6.11), nested page tables (APM Vol 2
/// 15.25, long-mode entries) and the host's long-mode tables (SDM Vol 3A 4.5, PAT in 11.12.3).
/// </summary>
public class PageTableFormatTests
{
    private const MemoryType UC = MemoryType.Uncacheable;
    private const MemoryType WC = MemoryType.WriteCombining;
    private const MemoryType WT = MemoryType.WriteThrough;
    private const MemoryType WP = MemoryType.WriteProtected;
    private const MemoryType WB = MemoryType.WriteBack;
    private const PageAccess All = PageAccess.All;
    private const ulong Mapped = 1UL << 52;
    private const ulong NX = 1UL << 63;

    [Theory]
    [InlineData(1, 0x5000UL, WB, All, 0x5037UL)]                                          // RWX, type 6 in 5:3
    [InlineData(2, 0x20_0000UL, UC, All, 0x20_0087UL)]                                    // bit 7: 2 MiB page
    [InlineData(3, 0x4000_0000UL, WT, PageAccess.Read | PageAccess.Execute, 0x4000_00A5UL)]
    [InlineData(1, 0x7000UL, WC, PageAccess.Write, 0x700BUL)]                             // write implies read
    [InlineData(1, 0x8000UL, WP, PageAccess.Read, 0x8029UL)]
    [InlineData(1, 0x000F_FFFF_FFFF_F000UL, WB, All, 0x000F_FFFF_FFFF_F037UL)]             // address bits 51:12
    [InlineData(2, 0x60_0000UL, WB, PageAccess.None, Mapped | 0x60_00B0UL)]               // no access: RWX clear, rest kept
    [InlineData(1, 0x9000UL, UC, PageAccess.None, Mapped | 0x9000UL)]                     // page 0-like entries stay non-zero
    public void Ept_leaves(int level, ulong address, MemoryType type, PageAccess access, ulong expected)
        => Assert.Equal(expected, default(EptFormat).LeafEntry(level, address, type, access));

    [Fact]
    public void Ept_tables_pointer_and_ignore_pat()
    {
        var ept = default(EptFormat);
        Assert.Equal(0x1234_5007UL, ept.TableEntry(0x1234_5000));
        Assert.Equal(0x1234_5007UL, ept.TableEntry(0x1234_5FFF));                           // low bits are not address
        Assert.Equal(0x5077UL, new EptFormat(ignorePat: true).LeafEntry(1, 0x5000, WB, All)); // bit 6
        Assert.Equal(0UL, ept.LeafEntry(1, 0x5000, WB, All) & EptFormat.IgnorePat);          // guest PAT still applies
        Assert.Equal(0x1_2345_601EUL, EptFormat.Pointer(0x1_2345_6000));                     // WB walks, 4 levels
        Assert.Equal(0x1_2345_605EUL, EptFormat.Pointer(0x1_2345_6000, accessedDirty: true));
    }

    [Fact]
    public void Ept_read_back()
    {
        var ept = default(EptFormat);
        ulong noAccess = ept.LeafEntry(2, 0x60_0000, WT, PageAccess.None);
        Assert.True(ept.IsPresent(0x5037));
        Assert.True(ept.IsPresent(0x5004));                                                   // execute-only
        Assert.False(ept.IsPresent(noAccess));
        Assert.True(ept.IsMapped(noAccess));
        Assert.False(ept.IsMapped(0));
        Assert.True(ept.IsLeaf(1, 0x5037));
        Assert.True(ept.IsLeaf(2, 0x20_0087));
        Assert.True(ept.IsLeaf(2, noAccess));
        Assert.False(ept.IsLeaf(2, 0x1234_5007));
        Assert.False(ept.IsLeaf(4, 0x1234_5087));
        Assert.Equal(0x20_0000UL, ept.AddressOf(2, 0x20_0087));
        Assert.Equal(0x1234_5000UL, ept.AddressOf(2, 0x1234_5007));
        Assert.Equal(0x60_0000UL, ept.AddressOf(2, noAccess));
        Assert.Equal(WT, ept.TypeOf(2, noAccess));
        Assert.Equal(WB, ept.TypeOf(1, 0x5037));
        Assert.Equal(UC, ept.TypeOf(1, 0x5017));                                              // reserved type 2
        Assert.Equal(PageAccess.None, ept.AccessOf(noAccess));
        Assert.Equal(PageAccess.Read | PageAccess.Execute, ept.AccessOf(0x4000_00A5));
    }

    [Theory]
    [InlineData(1, 0x5000UL, WB, All, 0x5007UL)]                                          // P|RW|US, PAT index 0
    [InlineData(1, 0x5000UL, WT, All, 0x500FUL)]                                          // PWT: index 1
    [InlineData(1, 0x5000UL, UC, All, 0x501FUL)]                                          // PCD|PWT: index 3
    [InlineData(1, 0x5000UL, WC, All, 0x5007UL)]                                          // WB: the MTRR decides
    [InlineData(1, 0x5000UL, WP, All, 0x5007UL)]
    [InlineData(2, 0x20_0000UL, UC, All, 0x20_009FUL)]                                    // PS
    [InlineData(3, 0x4000_0000UL, WT, All, 0x4000_008FUL)]
    [InlineData(1, 0x5000UL, WB, PageAccess.Read, NX | 0x5005UL)]                         // read-only, no execute
    [InlineData(1, 0x5000UL, WB, PageAccess.Read | PageAccess.Execute, 0x5005UL)]
    [InlineData(1, 0x5000UL, UC, PageAccess.None, Mapped | 0x5018UL)]                     // P clear, type kept
    [InlineData(3, 0x4000_0000UL, WB, PageAccess.None, Mapped | 0x4000_0080UL)]
    public void Npt_leaves(int level, ulong address, MemoryType type, PageAccess access, ulong expected)
        => Assert.Equal(expected, default(NptFormat).LeafEntry(level, address, type, access));

    [Fact]
    public void Npt_read_back_honours_the_pat_bit_position()
    {
        var npt = default(NptFormat);
        Assert.Equal(0x1234_5007UL, npt.TableEntry(0x1234_5000));                            // user: nested accesses are user accesses
        Assert.Equal(WB, npt.TypeOf(1, 0x5000 | 0x80 | 7));                                   // PTE bit 7 = PAT: index 4 = WB
        Assert.Equal(UC, npt.TypeOf(1, 0x5000 | 0x80 | 0x18 | 7));                            // index 7 = UC
        Assert.Equal(WT, npt.TypeOf(2, 0x20_0000 | 0x1000 | 0x08 | 0x87));                    // PDE bit 12 = PAT: index 5 = WT
        Assert.Equal(UC, npt.TypeOf(2, 0x20_0000 | 0x10 | 0x87));                             // index 2 = UC- reads as UC
        Assert.Equal(0x20_0000UL, npt.AddressOf(2, 0x20_1087));                               // bit 12 is PAT, not address
        Assert.Equal(0x4000_0000UL, npt.AddressOf(3, 0x4000_1087));
        Assert.Equal(0x5000UL, npt.AddressOf(1, 0x5087));
        Assert.True(npt.IsLeaf(1, 0x5007));
        Assert.False(npt.IsLeaf(2, 0x1234_5007));
        Assert.True(npt.IsLeaf(3, 0x4000_0087));
        Assert.False(npt.IsPresent(Mapped | 0x5018));
        Assert.True(npt.IsMapped(Mapped | 0x5018));
        Assert.False(npt.IsMapped(0x5018));
        Assert.Equal(PageAccess.Read, npt.AccessOf(NX | 0x5005));
        Assert.Equal(All, npt.AccessOf(0x5007));
        Assert.Equal(PageAccess.None, npt.AccessOf(Mapped | 0x5006));
    }

    [Theory]
    [InlineData(1, 0x5000UL, UC, All, 0x5003UL)]                                          // P|RW, supervisor, WB whatever the type
    [InlineData(2, 0x20_0000UL, WT, All, 0x20_0083UL)]
    [InlineData(3, 0x4000_0000UL, WB, All, 0x4000_0083UL)]
    [InlineData(1, 0x5000UL, WB, PageAccess.Read | PageAccess.Write, NX | 0x5003UL)]
    [InlineData(2, 0x20_0000UL, UC, PageAccess.None, Mapped | 0x20_0080UL)]
    public void Host_leaves(int level, ulong address, MemoryType type, PageAccess access, ulong expected)
        => Assert.Equal(expected, default(HostFormat).LeafEntry(level, address, type, access));

    [Fact]
    public void Host_tables()
    {
        Assert.Equal(0x1234_5003UL, default(HostFormat).TableEntry(0x1234_5000));
        Assert.Equal(WB, default(HostFormat).TypeOf(1, 0x5003));
    }

    [Fact]
    public void The_default_pat_is_the_reset_layout()
    {
        // SDM Vol 3A Table 11-12: PA0..PA7 = WB, WT, UC-, UC, WB, WT, UC-, UC.
        byte[] expected = [6, 4, 7, 0, 6, 4, 7, 0];
        for (int i = 0; i < 8; i++) Assert.Equal(expected[i], (byte)(X86PageEntry.DefaultPat >> (8 * i)));
    }

    public static IEnumerable<object[]> Combinations()
    {
        foreach (TableKind kind in new[] { TableKind.Ept, TableKind.Npt, TableKind.Host })
        {
            for (int level = 1; level <= 3; level++)
            {
                foreach (MemoryType type in new[] { UC, WC, WT, WP, WB })
                {
                    foreach (PageAccess access in new[] { PageAccess.None, PageAccess.Read, PageAccess.Read | PageAccess.Write, PageAccess.Read | PageAccess.Execute, All })
                        yield return [kind, level, type, access];
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void Leaves_read_back_what_they_encode(TableKind kind, int level, MemoryType type, PageAccess access)
    {
        ulong address = 0x0008_0000_0000_0000UL | (1UL << (12 + (9 * (level - 1))));
        switch (kind)
        {
            case TableKind.Ept: Check(default(EptFormat), level, address, type, access, type); break;
            case TableKind.Npt: Check(default(NptFormat), level, address, type, access, type is WC or WP ? WB : type); break;
            default: Check(default(HostFormat), level, address, type, access, WB); break;
        }
    }

    private static void Check<TFormat>(TFormat format, int level, ulong address, MemoryType type, PageAccess access, MemoryType expectedType)
        where TFormat : struct, IPageTableFormat
    {
        ulong entry = format.LeafEntry(level, address, type, access);
        Assert.Equal(access != PageAccess.None, format.IsPresent(entry));
        Assert.True(format.IsMapped(entry));
        Assert.True(format.IsLeaf(level, entry));
        Assert.Equal(address, format.AddressOf(level, entry));
        Assert.Equal(expectedType, format.TypeOf(level, entry));
        Assert.Equal(access, format.AccessOf(entry));
        // Re-encoding what was read gives the same entry: splitting a page keeps it.
        Assert.Equal(entry, format.LeafEntry(level, format.AddressOf(level, entry), format.TypeOf(level, entry), format.AccessOf(entry)));
    }
}
