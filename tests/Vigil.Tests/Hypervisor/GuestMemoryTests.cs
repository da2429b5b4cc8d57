using System;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

public class GuestMemoryTests
{
    [Fact]
    public void Translates_4k_2m_and_1g_pages()
    {
        var g = new FakeGuest();
        g.Map(0x7000_1000, 0x55_5000, FakeGuest.Present | FakeGuest.Writable | FakeGuest.User);
        g.Map(0x4000_0000_0000, 0x1_2340_0000 & ~0x1F_FFFFUL, FakeGuest.Present | FakeGuest.User, level: 2);
        g.Map(0xFFFF_8000_0000_0000 & 0x0000_FFFF_FFFF_FFFF, 0x4000_0000, FakeGuest.Present | FakeGuest.Writable, level: 3);
        var memory = g.View;
        var user = FakeGuest.LongMode(g.Cr3, cpl: 3);
        var kernel = FakeGuest.LongMode(g.Cr3, cpl: 0);

        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, user, 0x7000_1abc, write: true, out ulong pa));
        Assert.Equal(0x55_5abcUL, pa);
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, user, 0x4000_0012_3456, write: false, out pa));
        Assert.Equal((0x1_2340_0000UL & ~0x1F_FFFFUL) + 0x12_3456, pa);
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, kernel, 0xFFFF_8000_0000_0000 + 0x1234_5678, write: true, out pa));
        Assert.Equal(0x4000_0000UL + 0x1234_5678, pa);
    }

    [Fact]
    public void Applies_present_user_and_write_checks_like_the_cpu()
    {
        var g = new FakeGuest();
        g.Map(0x1000, 0x9000, FakeGuest.Present | FakeGuest.User);                 // read-only user page
        g.Map(0x2000, 0xA000, FakeGuest.Present | FakeGuest.Writable);             // supervisor page
        var memory = g.View;
        Assert.Equal(WalkResult.NotPresent, GuestMemory.Translate(ref memory, FakeGuest.LongMode(g.Cr3, 3), 0x3000, false, out _));
        Assert.Equal(WalkResult.NotWritable, GuestMemory.Translate(ref memory, FakeGuest.LongMode(g.Cr3, 3), 0x1000, true, out _));
        Assert.Equal(WalkResult.NotUser, GuestMemory.Translate(ref memory, FakeGuest.LongMode(g.Cr3, 3), 0x2000, false, out _));
        // Supervisor writes to read-only pages fault only with CR0.WP set.
        Assert.Equal(WalkResult.NotWritable, GuestMemory.Translate(ref memory, FakeGuest.LongMode(g.Cr3, 0, writeProtect: true), 0x1000, true, out _));
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, FakeGuest.LongMode(g.Cr3, 0, writeProtect: false), 0x1000, true, out _));
    }

    [Fact]
    public void Copy_across_pages_is_all_or_nothing_and_never_into_the_forbidden_range()
    {
        var g = new FakeGuest();
        g.Map(0x10000, 0x20000, FakeGuest.Present | FakeGuest.Writable | FakeGuest.User);
        g.Map(0x11000, 0x35000, FakeGuest.Present | FakeGuest.Writable | FakeGuest.User);
        g.Map(0x12000, 0x40000, FakeGuest.Present | FakeGuest.User);              // read-only
        var memory = g.View;
        var user = FakeGuest.LongMode(g.Cr3, 3);
        byte[] data = new byte[0x1800];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i * 7);

        Assert.Equal(WalkResult.Ok, GuestMemory.CopyToGuest(ref memory, user, 0x10800, data, 0x8000_0000, 0x100_0000));
        Assert.Equal(data[0], g.Page(0x20800)[0x800]);
        Assert.Equal(data[0x7FF], g.Page(0x20000)[0xFFF]);
        Assert.Equal(data[0x800], g.Page(0x35000)[0]);
        Assert.Equal(data[^1], g.Page(0x35000)[0xFFF]);

        // Spilling onto the read-only page: nothing is written at all.
        byte[] before = (byte[])g.Page(0x35000).Clone();
        Assert.Equal(WalkResult.NotWritable, GuestMemory.CopyToGuest(ref memory, user, 0x11800, new byte[0x1000], 0x8000_0000, 0x100_0000));
        Assert.Equal(before, g.Page(0x35000));

        // A buffer whose physical page lies in the hypervisor's reservation is refused.
        Assert.Equal(WalkResult.Forbidden, GuestMemory.CopyToGuest(ref memory, user, 0x11000, new byte[16], 0x35000, 0x1000));
        Assert.Equal(before, g.Page(0x35000));
    }
}

/// <summary>
/// The walk in every paging mode (SDM Vol 3A 4.3-4.5), its canonical checks, and the bounds: every guest-supplied
/// physical address — CR3, the table pointer at each level, the final page — is checked before the host reads it
/// (the fake memory throws on any raw access outside its bounds, and counts it).
/// </summary>
public class GuestWalkTests
{
    private const ulong P = FakeGuest.Present, W = FakeGuest.Writable, U = FakeGuest.User;

    [Fact]
    public void Five_level_paging_translates_57_bit_addresses()
    {
        var g = new FakeGuest(levels: 5);
        ulong high = 0xFF12_3456_789A_B000;   // canonical for LA57 (bits 63:56 = bit 56), not for 4-level
        g.Map(high, 0x77_7000, P | W);
        g.Map(0x0000_8000_0000_0000, 0x4000_0000, P | W, level: 3);   // bit 47 set, bits 56:48 clear
        var memory = g.View;
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, g.Paging(), high + 0x123, write: true, out ulong pa));
        Assert.Equal(0x77_7123UL, pa);
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, g.Paging(), 0x0000_8000_0123_4567, write: false, out pa));
        Assert.Equal(0x4123_4567UL, pa);
        Assert.Equal(0, g.Violations);
    }

    [Fact]
    public void Five_level_tables_walked_with_4_levels_are_not_misread_beyond_the_bounds()
    {
        // The reproduction of issue #9: a 5-level guest, the walk ignoring LA57. With LA57 honoured the same
        // tables translate; and whatever a misread entry points at, nothing outside the bounds is touched.
        var g = new FakeGuest(levels: 5);
        g.Map(0xFFFF_FFFF_8100_0000, 0x100_0000, P | W);
        g.Bounds = new PhysicalBounds(0x1_0000_0000, 0, 0);
        var memory = g.View;
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, g.Paging(), 0xFFFF_FFFF_8100_0010, write: false, out ulong pa));
        Assert.Equal(0x100_0010UL, pa);
        WalkResult wrong = GuestMemory.Translate(ref memory, FakeGuest.LongMode(g.Cr3, 0, la57: false), 0xFFFF_FFFF_8100_0010, write: false, out _);
        Assert.NotEqual(WalkResult.Ok, wrong);
        Assert.Equal(0, g.Violations);
    }

    [Fact]
    public void Canonical_checks_follow_the_paging_depth()
    {
        Assert.True(GuestMemory.IsCanonical(0x0000_7FFF_FFFF_FFFF, fiveLevel: false));
        Assert.True(GuestMemory.IsCanonical(0xFFFF_8000_0000_0000, fiveLevel: false));
        Assert.False(GuestMemory.IsCanonical(0x0000_8000_0000_0000, fiveLevel: false));
        Assert.False(GuestMemory.IsCanonical(0xFF00_0000_0000_0000, fiveLevel: false));
        Assert.True(GuestMemory.IsCanonical(0x0000_8000_0000_0000, fiveLevel: true));
        Assert.True(GuestMemory.IsCanonical(0x00FF_FFFF_FFFF_FFFF, fiveLevel: true));
        Assert.True(GuestMemory.IsCanonical(0xFF00_0000_0000_0000, fiveLevel: true));
        Assert.False(GuestMemory.IsCanonical(0x0100_0000_0000_0000, fiveLevel: true));
        Assert.False(GuestMemory.IsCanonical(0xFE00_0000_0000_0000, fiveLevel: true));

        var g4 = new FakeGuest();
        var memory = g4.View;
        Assert.Equal(WalkResult.NonCanonical, GuestMemory.Translate(ref memory, g4.Paging(), 0x0000_8000_0000_0000, false, out _));
        var g5 = new FakeGuest(levels: 5);
        memory = g5.View;
        Assert.Equal(WalkResult.NonCanonical, GuestMemory.Translate(ref memory, g5.Paging(), 0x0100_0000_0000_0000, false, out _));
        Assert.Equal(WalkResult.NotPresent, GuestMemory.Translate(ref memory, g5.Paging(), 0x0000_8000_0000_0000, false, out _));
    }

    [Theory]
    [InlineData(4, 4)]
    [InlineData(4, 3)]
    [InlineData(4, 2)]
    [InlineData(4, 1)]
    [InlineData(4, 0)]   // 0: a 2 MiB leaf whose page is out of bounds
    [InlineData(5, 5)]
    [InlineData(5, 4)]
    [InlineData(5, 3)]
    [InlineData(5, 2)]
    [InlineData(5, 1)]
    [InlineData(5, 0)]
    public void A_pointer_the_host_cannot_reach_or_must_not_read_is_a_status_at_every_level(int levels, int level)
    {
        const ulong va = 0x7F12_3456_7000;
        const ulong limit = 0x1_0000_0000;          // the host maps 4 GiB
        const ulong reservedBase = 0x8000_0000;     // the hypervisor's reservation
        const ulong reservedSize = 0x100_0000;
        foreach ((ulong target, WalkResult expected) in new[] { (0x38_0001_A000UL, WalkResult.Unreachable), (reservedBase + 0x5000, WalkResult.Forbidden) })
        {
            var g = new FakeGuest(levels);
            g.Map(va, 0x60_0000, P | W | U);
            // The entry at `level` (a table pointer; at level 1 the 4 KiB page) redirected to `target`; level 0:
            // the PDE made a 2 MiB leaf at `target`.
            ulong slot = g.EntryAddress(va, level == 0 ? 2 : level);
            g.Write64(slot, target | P | W | U | (level == 0 ? FakeGuest.Large : 0));
            g.Bounds = new PhysicalBounds(limit, reservedBase, reservedSize);
            var memory = g.View;
            WalkResult result = GuestMemory.Translate(ref memory, g.Paging(3), va, write: false, out ulong pa);
            Assert.Equal(expected, result);
            Assert.Equal(0UL, pa);
            Assert.Equal(0, g.Violations);
            Assert.Equal(expected, GuestMemory.CopyToGuest(ref memory, g.Paging(3), va, new byte[8], 0, 0));
            Assert.Equal(0, GuestCode.Fetch(ref memory, g.Paging(3), va, true, new byte[15], 0, 0));
            Assert.Equal(0, g.Violations);
        }
    }

    [Fact]
    public void A_cr3_outside_the_bounds_is_never_read()
    {
        var g = new FakeGuest();
        g.Bounds = new PhysicalBounds(0x1_0000_0000, 0x10_0000, 0x1000);   // CR3's page is in the reservation
        var memory = g.View;
        Assert.Equal(WalkResult.Forbidden, GuestMemory.Translate(ref memory, g.Paging(), 0x1000, false, out _));
        Assert.Equal(WalkResult.Unreachable, GuestMemory.Translate(ref memory, FakeGuest.LongMode(0x40_0000_0000, 0), 0x1000, false, out _));
        Assert.Equal(0, g.Violations);
    }

    [Fact]
    public void Reserved_bits_are_reported()
    {
        var g = new FakeGuest();
        g.Map(0x1000, 0x9000, P | W);
        var memory = g.View;
        // PS in a PML4E is reserved (SDM Vol 3A Table 4-15).
        ulong pml4e = g.EntryAddress(0x1000, 4);
        g.Write64(pml4e, g.Read64(pml4e) | FakeGuest.Large);
        Assert.Equal(WalkResult.Reserved, GuestMemory.Translate(ref memory, g.Paging(), 0x1000, false, out _));
        g.Write64(pml4e, g.Read64(pml4e) & ~FakeGuest.Large);
        // XD (bit 63) is reserved unless EFER.NXE.
        ulong pte = g.EntryAddress(0x1000, 1);
        g.Write64(pte, g.Read64(pte) | (1UL << 63));
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, g.Paging(), 0x1000, false, out _));
        var noNx = new GuestPaging(0x8001_0011, g.Cr3, 0x20, 0x500, 0);
        Assert.Equal(WalkResult.Reserved, GuestMemory.Translate(ref memory, noNx, 0x1000, false, out _));
    }

    [Fact]
    public void Paging_off_is_physical_within_the_bounds()
    {
        var g = new FakeGuest { Bounds = new PhysicalBounds(0x1_0000_0000, 0x7000_0000, 0x10_0000) };
        var memory = g.View;
        var real = new GuestPaging(0x10, 0, 0, 0, 0);
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, real, 0x9_1234, false, out ulong pa));
        Assert.Equal(0x9_1234UL, pa);
        Assert.Equal(WalkResult.Forbidden, GuestMemory.Translate(ref memory, real, 0x7000_0010, false, out _));
        g.Bounds = new PhysicalBounds(0x8000_0000, 0, 0);
        Assert.Equal(WalkResult.Unreachable, GuestMemory.Translate(ref memory, real, 0xFEE0_0000, false, out _));
        Assert.Equal(0, g.Violations);
    }

    [Fact]
    public void Thirty_two_bit_paging_with_4k_and_4m_pages()
    {
        var g = new FakeGuest();
        ulong pd = 0x20_0000, pt = 0x20_1000;
        void Put32(ulong address, uint value) => BitConverter.TryWriteBytes(g.Page(address).AsSpan((int)(address & 0xFFF)), value);
        Put32(pd + (0x0040_0000 >> 22) * 4, (uint)pt | (uint)(P | W | U));
        Put32(pt + ((0x0040_3000 >> 12) & 0x3FF) * 4, 0x0055_5000 | (uint)(P | U));           // read-only user page
        Put32(pd + (0xC000_0000UL >> 22) * 4, 0x0080_0000 | (uint)(P | W | FakeGuest.Large) | (0x3u << 13));   // 4 MiB at 0x3_0080_0000 (PSE-36)
        var memory = g.View;
        var paging = new GuestPaging(0x8001_0011, pd, 0x10, 0, 3);   // PG, WP, PE; CR4.PSE
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, paging, 0x0040_3ABC, false, out ulong pa));
        Assert.Equal(0x55_5ABCUL, pa);
        Assert.Equal(WalkResult.NotWritable, GuestMemory.Translate(ref memory, paging, 0x0040_3ABC, true, out _));
        Assert.Equal(WalkResult.NotUser, GuestMemory.Translate(ref memory, paging, 0xC012_3456, false, out _));
        var kernel = new GuestPaging(0x8001_0011, pd, 0x10, 0, 0);
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, kernel, 0xC012_3456, true, out pa));
        Assert.Equal(0x3_0092_3456UL, pa);
        // Without CR4.PSE the PS bit is ignored and the PDE points to a page table.
        Assert.Equal(WalkResult.NotPresent, GuestMemory.Translate(ref memory, new GuestPaging(0x8001_0011, pd, 0, 0, 0), 0xC012_3456, false, out _));
        // The 4 MiB page above the host's map: unreachable, nothing read.
        g.Bounds = new PhysicalBounds(0x1_0000_0000, 0, 0);
        Assert.Equal(WalkResult.Unreachable, GuestMemory.Translate(ref memory, kernel, 0xC012_3456, false, out _));
        Assert.Equal(0, g.Violations);
    }

    [Fact]
    public void Pae_paging_with_pdptes_2m_and_4k_pages()
    {
        var g = new FakeGuest();
        ulong pdpt = 0x30_0020, pd = 0x30_1000, pt = 0x30_2000;   // CR3 bits 31:5: a 32-byte aligned PDPT
        g.Write64(pdpt + 3 * 8, pd | P);
        g.Write64(pd + ((0xC040_0000UL >> 21) & 0x1FF) * 8, 0x1_2340_0000 | P | W | FakeGuest.Large);
        g.Write64(pd + ((0xC000_0000UL >> 21) & 0x1FF) * 8, pt | P | W);
        g.Write64(pt + ((0xC000_5000UL >> 12) & 0x1FF) * 8, 0x66_6000 | P | W | (1UL << 63));
        var memory = g.View;
        var paging = new GuestPaging(0x8001_0011, pdpt, 0x20, 0x800, 0);   // CR4.PAE, EFER.NXE
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, paging, 0xC045_6789, true, out ulong pa));
        Assert.Equal(0x1_2345_6789UL, pa);
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, paging, 0xC000_5004, false, out pa));
        Assert.Equal(0x66_6004UL, pa);
        Assert.Equal(WalkResult.NotPresent, GuestMemory.Translate(ref memory, paging, 0x4000_0000, false, out _));
        // Without EFER.NXE bit 63 is reserved; a PDPTE with reserved bits 2:1 set too.
        Assert.Equal(WalkResult.Reserved, GuestMemory.Translate(ref memory, new GuestPaging(0x8001_0011, pdpt, 0x20, 0, 0), 0xC000_5004, false, out _));
        g.Write64(pdpt + 3 * 8, pd | P | W);
        Assert.Equal(WalkResult.Reserved, GuestMemory.Translate(ref memory, paging, 0xC045_6789, false, out _));
        Assert.Equal(0, g.Violations);
    }
}
