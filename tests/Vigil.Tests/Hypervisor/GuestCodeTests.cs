using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// Fetching the guest's instruction bytes at CS:RIP to size an emulated instruction (SvmInstructionLength):
/// across a page boundary into a physically unrelated page, with paging off, stopping at what does not
/// translate or is the hypervisor's; then decoded as the SVM back end does.
/// </summary>
public sealed class GuestCodeTests
{
    private const ulong NoForbidden = 0;

    private static int Fetch(FakeGuest guest, in GuestPaging paging, ulong linear, bool is64, byte[] code, ulong forbiddenBase = NoForbidden, ulong forbiddenSize = 0)
    {
        FakeGuest.Memory memory = guest.View;
        return GuestCode.Fetch(ref memory, paging, linear, is64, code, forbiddenBase, forbiddenSize);
    }

    private static void Poke(FakeGuest guest, ulong physical, params byte[] bytes)
    {
        for (int i = 0; i < bytes.Length; i++) guest.Page(physical + (ulong)i)[(physical + (ulong)i) & 0xFFF] = bytes[i];
    }

    [Fact]
    public void An_instruction_across_a_page_boundary_is_read_from_both_pages()
    {
        var guest = new FakeGuest();
        guest.Map(0xFFFF_8000_0040_0000, 0x20_0000, FakeGuest.Present);
        guest.Map(0xFFFF_8000_0040_1000, 0x73_5000, FakeGuest.Present);   // the next virtual page, elsewhere physically
        Poke(guest, 0x20_0FFE, 0x0F, 0x01);                                // VMMCALL = 0F 01 D9, split 2 + 1
        Poke(guest, 0x73_5000, 0xD9, 0x90);
        Poke(guest, 0x20_1000, 0xCC);                                      // what a physically contiguous read would see
        var code = new byte[InstructionLength.MaxLength];
        Assert.Equal(15, Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0xFFFF_8000_0040_0FFE, true, code));
        Assert.Equal(new byte[] { 0x0F, 0x01, 0xD9, 0x90 }, code[..4]);
        Assert.Equal(3, InstructionLength.Decode(code, CpuMode.Bits64, Vendor.AmdSvm));
    }

    [Fact]
    public void A_second_page_that_does_not_translate_ends_the_bytes_and_the_instruction_cannot_be_sized()
    {
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        Poke(guest, 0x20_0FFE, 0x0F, 0x01);
        var code = new byte[InstructionLength.MaxLength];
        int read = Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0x40_0FFE, true, code);
        Assert.Equal(2, read);
        Assert.Equal(0, InstructionLength.Decode(code.AsSpan(0, read), CpuMode.Bits64, Vendor.AmdSvm));
        Assert.Equal(0, Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0x50_0000, true, code));   // nothing at all
    }

    [Fact]
    public void A_short_instruction_before_the_untranslated_page_is_still_sized()
    {
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        Poke(guest, 0x20_0FFD, 0x0F, 0xA2, 0xF4);   // CPUID, HLT: the last bytes of the page
        var code = new byte[InstructionLength.MaxLength];
        int read = Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0x40_0FFD, true, code);
        Assert.Equal(3, read);
        Assert.Equal(2, InstructionLength.Decode(code.AsSpan(0, read), CpuMode.Bits64, Vendor.AmdSvm));
    }

    [Fact]
    public void With_paging_off_the_linear_address_is_physical_and_real_mode_decodes_16_bit()
    {
        var guest = new FakeGuest();
        // Real mode: CS = 0x9000 (base 0x90000), IP = 0x0FFF: 66 0F 01 D9 would be one instruction; here
        // B8 34 12 (MOV AX, imm16: 3 bytes in 16-bit mode, 5 in 32-bit) across 0x90FFF / 0x91000.
        Poke(guest, 0x9_0FFF, 0xB8);
        Poke(guest, 0x9_1000, 0x34, 0x12);
        var paging = new GuestPaging(cr0: 0x10, cr3: 0, cr4: 0, efer: 0, cpl: 0);
        var code = new byte[InstructionLength.MaxLength];
        Assert.Equal(15, Fetch(guest, paging, 0x9_0000 + 0x0FFF, false, code));
        Assert.Equal(3, InstructionLength.Decode(code, InstructionLength.ModeOf(false, false, false), Vendor.AmdSvm));
    }

    [Fact]
    public void Outside_64_bit_mode_the_linear_address_wraps_at_4_GiB()
    {
        var guest = new FakeGuest();
        Poke(guest, 0xFFFF_FFFF, 0x0F);
        Poke(guest, 0, 0xA2);
        var paging = new GuestPaging(cr0: 0x11, cr3: 0, cr4: 0, efer: 0, cpl: 0);
        var code = new byte[2];
        Assert.Equal(2, Fetch(guest, paging, 0xFFFF_FFFF, false, code));
        Assert.Equal(new byte[] { 0x0F, 0xA2 }, code);
    }

    [Fact]
    public void The_hypervisors_pages_are_never_read()
    {
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        guest.Map(0x40_1000, 0x7E00_0000, FakeGuest.Present);   // a guest mapping onto the reservation
        Poke(guest, 0x20_0FFF, 0x0F);
        var code = new byte[InstructionLength.MaxLength];
        Assert.Equal(1, Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0x40_0FFF, true, code, 0x7E00_0000, 0x30_0000));
        Assert.Equal(0, Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0x40_1000, true, code, 0x7E00_0000, 0x30_0000));
    }

    [Fact]
    public void Thirty_two_bit_paging_is_walked()
    {
        var guest = new FakeGuest();
        ulong pd = 0x20_0000;
        BitConverter.TryWriteBytes(guest.Page(pd).AsSpan(0), 0x0040_0000u | 0x83u);   // PDE 0: a 4 MiB page at 4 MiB
        Poke(guest, 0x40_1000, 0x0F, 0xA2);
        var paging = new GuestPaging(cr0: 0x8000_0011, cr3: pd, cr4: 0x10, efer: 0, cpl: 0);   // 32-bit paging, PSE
        var code = new byte[2];
        Assert.Equal(2, Fetch(guest, paging, 0x1000, false, code));
        Assert.Equal(new byte[] { 0x0F, 0xA2 }, code);
    }

    [Fact]
    public void Five_level_paging_is_walked()
    {
        var guest = new FakeGuest(levels: 5);
        guest.Map(0xFF00_0000_0040_0000, 0x20_0000, FakeGuest.Present);
        Poke(guest, 0x20_0000, 0x0F, 0x01, 0xD9);
        var code = new byte[3];
        Assert.Equal(3, Fetch(guest, guest.Paging(), 0xFF00_0000_0040_0000, true, code));
        Assert.Equal(new byte[] { 0x0F, 0x01, 0xD9 }, code);
        // The same address read with a 4-level walk is not canonical: nothing.
        Assert.Equal(0, Fetch(guest, FakeGuest.LongMode(guest.Cr3, 0), 0xFF00_0000_0040_0000, true, code));
    }

    /// <summary>
    /// The lean 4-level walk Fetch takes for 64-bit code within one page must answer as the general walk does, for
    /// every kind of leaf and every refusal: 4 KiB, 2 MiB and 1 GiB pages, supervisor pages fetched at CPL 3, XD set
    /// without EFER.NXE, PS in a PML4E, tables and pages in the reservation or past the bounds, non-canonical addresses.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void The_fast_walk_matches_the_general_walk(int cpl)
    {
        var guest = new FakeGuest();
        guest.Bounds = new PhysicalBounds(0x8000_0000, 0x7E00_0000, 0x30_0000);
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present | FakeGuest.User);                    // user 4 KiB
        guest.Map(0x40_1000, 0x21_0000, FakeGuest.Present);                                     // supervisor 4 KiB
        guest.Map(0x40_2000, 0x7E01_0000, FakeGuest.Present | FakeGuest.User);                  // onto the reservation
        guest.Map(0x40_3000, 0x9000_0000, FakeGuest.Present | FakeGuest.User);                  // past the bounds
        guest.Map(0x40_4000, 0x22_0000, FakeGuest.Present | FakeGuest.User | (1UL << 63));      // XD without NXE
        guest.Map(0x40_5000, 0x23_0000, FakeGuest.User);                                        // not present
        guest.Map(0x40_6000, 0x24_0000, FakeGuest.Present | FakeGuest.User | FakeGuest.Large);  // PAT set in a PTE
        guest.Map(0x60_0000, 0x40_0000, FakeGuest.Present | FakeGuest.User, level: 2);          // 2 MiB
        guest.Map(0x8000_0000, 0x4000_0000, FakeGuest.Present | FakeGuest.User, level: 3);      // 1 GiB
        guest.Map(0xFFFF_8000_0000_0000, 0x25_0000, FakeGuest.Present);                         // the kernel's half
        guest.Write64(guest.EntryAddress(0x100_0000_0000, 4), 0x26_0000 | FakeGuest.Present | FakeGuest.User | FakeGuest.Large);   // PS in a PML4E
        for (ulong p = 0; p < 0x20; p++) Poke(guest, 0x20_0000 + (p * 0x1_0000) + 0x123, (byte)p, 0xA2, 0x0F);
        Poke(guest, 0x40_0000 + 0x5_0123, 0x0F, 0xA2, 0x90);
        Poke(guest, 0x4000_0000 + 0x123_4123, 0x66, 0x0F, 0xA2);
        ulong[] addresses =
        {
            0x40_0123, 0x40_0FFE, 0x40_1123, 0x40_2123, 0x40_3123, 0x40_4123, 0x40_5123, 0x40_6123, 0x65_0123, 0x8123_4123,
            0xFFFF_8000_0000_0123, 0x100_0000_0123, 0x8000_0000_0000, 0x50_0000,
        };
        foreach (ulong efer in new ulong[] { 0xD00, 0x500 })   // with and without EFER.NXE
        {
            var paging = new GuestPaging(cr0: 0x80010011, cr3: guest.Cr3, cr4: 0x20, efer: efer, cpl: cpl);
            foreach (ulong linear in addresses)
            {
                foreach ((ulong forbiddenBase, ulong forbiddenSize) in new[] { (0UL, 0UL), (0x20_0000UL, 0x1000UL) })
                {
                    var fast = new byte[3];
                    var walked = new byte[3];
                    FakeGuest.Memory memory = guest.View;
                    int a = GuestCode.Fetch(ref memory, paging, linear, true, fast, forbiddenBase, forbiddenSize);
                    int b = GuestCode.FetchWalked(ref memory, paging, linear, true, walked, forbiddenBase, forbiddenSize);
                    Assert.True(a == b, $"0x{linear:X} efer 0x{efer:X} forbidden 0x{forbiddenBase:X}: {a} bytes fast, {b} walked");
                    Assert.Equal(walked, fast);
                }
            }
        }
        Assert.Equal(0, guest.Violations);
    }
}
