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
}
