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
        Assert.Equal(WalkResult.Ok, GuestMemory.Translate(ref memory, kernel, 0x8000_0000_0000 + 0x1234_5678, write: true, out pa));
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
        // Not long mode: refused.
        var real = new GuestPaging(0x10, g.Cr3, 0, 0, 0);
        Assert.Equal(WalkResult.Reserved, GuestMemory.Translate(ref memory, real, 0x1000, false, out _));
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
