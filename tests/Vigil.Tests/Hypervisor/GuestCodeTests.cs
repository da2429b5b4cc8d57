using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// Fetching the guest's instruction bytes at CS:RIP to size an emulated instruction (SvmInstructionLength):
/// across a page boundary into a physically unrelated page, with paging off, stopping at what does not
/// translate or is the hypervisor's; then decoded as the SVM back end does. The kept per-CPU translation
/// (FetchOnCpu, FetchHead) is static: the class shares the collection of the other tests of hypervisor statics.
/// </summary>
[Collection("Hypervisor statics")]
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
    /// A guest with every kind of leaf and every refusal of the lean walk: 4 KiB, 2 MiB and 1 GiB pages, supervisor pages
    /// fetched at CPL 3, XD set without EFER.NXE, PS in a PML4E, tables and pages in the reservation or past the bounds,
    /// non-canonical addresses; and the addresses to fetch at.
    /// </summary>
    private static (FakeGuest Guest, ulong[] Addresses) EveryKindOfPage()
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
        for (ulong p = 0; p < 0x20; p++) Poke(guest, 0x20_0000 + (p * 0x1_0000) + 0x123, (byte)p, 0xA2, 0x0F, 0x01, 0xD9, 0x90, 0xCC, (byte)~p);
        Poke(guest, 0x40_0000 + 0x5_0123, 0x0F, 0xA2, 0x90);
        Poke(guest, 0x4000_0000 + 0x123_4123, 0x66, 0x0F, 0xA2);
        ulong[] addresses =
        {
            0x40_0123, 0x40_0FFE, 0x40_1123, 0x40_2123, 0x40_3123, 0x40_4123, 0x40_5123, 0x40_6123, 0x65_0123, 0x8123_4123,
            0xFFFF_8000_0000_0123, 0x100_0000_0123, 0x8000_0000_0000, 0x50_0000,
        };
        return (guest, addresses);
    }

    /// <summary>
    /// The lean 4-level walk Fetch takes for 64-bit code within one page must answer as the general walk does, for
    /// every kind of leaf and every refusal (<see cref="EveryKindOfPage"/>).
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void The_fast_walk_matches_the_general_walk(int cpl)
    {
        (FakeGuest guest, ulong[] addresses) = EveryKindOfPage();
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

    // ---- the per-CPU kept translation (FetchOnCpu, FetchHead: the exit path's sizing under QEMU) ----

    private const ulong Nxe = 0xD00, NoNxe = 0x500, Cr4Pae = 0x20, Cr4La57 = 1UL << 12;

    private static GuestPaging Paging(ulong cr3, int cpl = 0, ulong efer = Nxe) => new(cr0: 0x80010011, cr3: cr3, cr4: Cr4Pae, efer: efer, cpl: cpl);

    private static int FetchOnCpu(FakeGuest guest, uint cpu, in GuestPaging paging, ulong linear, byte[] code, ulong forbiddenBase = NoForbidden, ulong forbiddenSize = 0)
    {
        FakeGuest.Memory memory = guest.View;
        return GuestCode.FetchOnCpu(ref memory, cpu, paging, linear, true, code, forbiddenBase, forbiddenSize);
    }

    private static int FetchHead(FakeGuest guest, uint cpu, in GuestPaging paging, ulong linear, out ulong head, ulong forbiddenBase = NoForbidden, ulong forbiddenSize = 0)
    {
        FakeGuest.Memory memory = guest.View;
        return GuestCode.FetchHead(ref memory, cpu, paging.Cr3, paging.Cr4, paging.Efer, paging.Cpl, linear, forbiddenBase, forbiddenSize, out head);
    }

    /// <summary>The general walk's 8 bytes at <paramref name="linear"/> (all or none), packed as FetchHead packs them.</summary>
    private static ulong? Walked8(FakeGuest guest, in GuestPaging paging, ulong linear, ulong forbiddenBase = NoForbidden, ulong forbiddenSize = 0)
    {
        var bytes = new byte[8];
        FakeGuest.Memory memory = guest.View;
        int read = GuestCode.FetchWalked(ref memory, paging, linear, true, bytes, forbiddenBase, forbiddenSize);
        return read == 8 ? BitConverter.ToUInt64(bytes) : null;
    }

    /// <summary>
    /// What FetchHead may answer: nothing (0, the caller walks), or the 8 bytes the general walk reads now — never the bytes
    /// of a page the guest no longer maps there, nor bytes a fetch would be refused. Returns what it answered.
    /// </summary>
    private static int AssertHeadSound(FakeGuest guest, uint cpu, in GuestPaging paging, ulong linear, ulong forbiddenBase = NoForbidden, ulong forbiddenSize = 0)
    {
        int count = FetchHead(guest, cpu, paging, linear, out ulong head, forbiddenBase, forbiddenSize);
        if (count == 0)
        {
            Assert.Equal(0UL, head);
            return 0;
        }
        Assert.Equal(8, count);
        ulong? walked = Walked8(guest, paging, linear, forbiddenBase, forbiddenSize);
        Assert.True(walked.HasValue, $"FetchHead read 0x{head:X16} at 0x{linear:X} where a walk reads nothing");
        Assert.Equal(walked.Value, head);
        return 8;
    }

    /// <summary>
    /// Points the entry at <paramref name="level"/> (1 = PTE .. 4 = PML4E) on the way to <paramref name="linear"/> at fresh
    /// tables below it that map the page to <paramref name="physical"/> (a 4 KiB page; the old tables stay as they were).
    /// </summary>
    private static void Remap(FakeGuest guest, ulong linear, int level, ulong physical, ulong leafFlags = FakeGuest.Present | FakeGuest.User)
    {
        ulong next = physical | leafFlags;
        for (int l = 1; l < level; l++)
        {
            ulong table = guest.NewTable();
            guest.Write64(table + (((linear >> (12 + (9 * (l - 1)))) & 0x1FF) * 8), next);
            next = table | FakeGuest.Present | FakeGuest.Writable | FakeGuest.User;
        }
        guest.Write64(guest.EntryAddress(linear, level), next);
    }

    /// <summary>
    /// FetchOnCpu answers as Fetch and the general walk do, on the call that walks (and keeps the translation) and on the next
    /// (served by the kept one), for every kind of page and refusal; FetchHead after them is sound.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void FetchOnCpu_matches_fetch_and_the_general_walk_on_the_first_and_the_kept_call(int cpl)
    {
        (FakeGuest guest, ulong[] addresses) = EveryKindOfPage();
        foreach (ulong efer in new ulong[] { Nxe, NoNxe })
        {
            GuestPaging paging = Paging(guest.Cr3, cpl, efer);
            foreach (ulong linear in addresses)
            {
                foreach ((ulong forbiddenBase, ulong forbiddenSize) in new[] { (0UL, 0UL), (0x20_0000UL, 0x1000UL), (0x7E00_0000UL, 0x30_0000UL) })
                {
                    foreach (int length in new[] { 3, 8, InstructionLength.MaxLength })
                    {
                        string where = $"0x{linear:X} cpl {cpl} efer 0x{efer:X} forbidden 0x{forbiddenBase:X} length {length}";
                        var walked = new byte[length];
                        var fetched = new byte[length];
                        FakeGuest.Memory memory = guest.View;
                        int expected = GuestCode.FetchWalked(ref memory, paging, linear, true, walked, forbiddenBase, forbiddenSize);
                        Assert.Equal(expected, GuestCode.Fetch(ref memory, paging, linear, true, fetched, forbiddenBase, forbiddenSize));
                        GuestCode.ForgetTranslations();
                        for (int call = 1; call <= 2; call++)
                        {
                            var code = new byte[length];
                            int read = FetchOnCpu(guest, 5, paging, linear, code, forbiddenBase, forbiddenSize);
                            Assert.True(read == expected, $"{where} call {call}: {read} bytes, the general walk {expected}");
                            Assert.Equal(walked, code);
                        }
                        int head = AssertHeadSound(guest, 5, paging, linear, forbiddenBase, forbiddenSize);
                        // After a fetch that read the page by the lean walk, FetchHead serves it (unless the page ends within 8 bytes).
                        if (length <= 0x1000 - (int)(linear & 0xFFF) && expected == length && (linear & 0xFFF) <= 0xFF8) Assert.True(head == 8, where);
                    }
                }
            }
        }
        Assert.Equal(0, guest.Violations);
    }

    [Fact]
    public void FetchHead_gives_nothing_until_a_fetch_kept_the_page_then_8_bytes_first_in_bits_7_0()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        var bytes = new byte[0x1000];
        new Random(12).NextBytes(bytes);
        Poke(guest, 0x20_0000, bytes);
        GuestPaging paging = Paging(guest.Cr3);

        Assert.Equal(0, FetchHead(guest, 0, paging, 0x40_0010, out ulong head));
        Assert.Equal(0UL, head);

        var code = new byte[3];
        Assert.Equal(3, FetchOnCpu(guest, 0, paging, 0x40_0010, code));
        Assert.Equal(bytes[0x10..0x13], code);
        foreach (int offset in new[] { 0x10, 0x0, 0x11, 0x7FF, 0xFF0, 0xFF7, 0xFF8 })   // anywhere in the kept page with 8 bytes left
        {
            Assert.Equal(8, FetchHead(guest, 0, paging, 0x40_0000 + (ulong)offset, out head));
            Assert.Equal(BitConverter.ToUInt64(bytes, offset), head);
            Assert.Equal(bytes[offset], (byte)head);
            Assert.Equal(bytes[offset + 7], (byte)(head >> 56));
        }
        foreach (int offset in new[] { 0xFF9, 0xFFC, 0xFFF })   // fewer than 8 bytes left in the page: the general way
        {
            Assert.Equal(0, FetchHead(guest, 0, paging, 0x40_0000 + (ulong)offset, out head));
            Assert.Equal(0UL, head);
        }
        Assert.Equal(0, guest.Violations);
    }

    /// <summary>
    /// The kept translation goes through 4 entries (or 3 for a 2 MiB page, 2 for a 1 GiB page): a change of any one of them
    /// on the way — the page moved to other bytes, made supervisor, or not present — ends it.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void A_changed_entry_at_any_level_is_not_served_from_the_kept_translation(int level)
    {
        const ulong Linear = 0x40_0000 + 0x3000 + 0x80;
        foreach (string change in new[] { "remapped", "supervisor", "not present" })
        {
            GuestCode.ForgetTranslations();
            var guest = new FakeGuest();
            guest.Map(Linear & ~0xFFFUL, 0x20_0000, FakeGuest.Present | FakeGuest.User);
            Poke(guest, 0x20_0080, 0x0F, 0xA2, 1, 2, 3, 4, 5, 6);    // old: CPUID
            Poke(guest, 0x30_0080, 0x66, 0x0F, 0xA2, 9, 9, 9, 9, 9);  // new: CPUID behind a prefix
            GuestPaging paging = Paging(guest.Cr3, cpl: 3);
            var code = new byte[3];
            Assert.Equal(3, FetchOnCpu(guest, 2, paging, Linear, code));
            Assert.Equal(8, AssertHeadSound(guest, 2, paging, Linear));

            ulong entry = guest.EntryAddress(Linear, level);
            switch (change)
            {
                case "remapped":
                    Remap(guest, Linear, level, 0x30_0000);
                    break;
                case "supervisor":
                    guest.Write64(entry, guest.Read64(entry) & ~FakeGuest.User);
                    break;
                default:
                    guest.Write64(entry, guest.Read64(entry) & ~FakeGuest.Present);
                    break;
            }
            string where = $"level {level} {change}";
            int head = AssertHeadSound(guest, 2, paging, Linear);
            Assert.True(head == 0 || change == "remapped", where);
            int expected = change == "remapped" ? 3 : 0;
            Array.Clear(code);
            Assert.True(FetchOnCpu(guest, 2, paging, Linear, code) == expected, where);
            Assert.Equal(change == "remapped" ? new byte[] { 0x66, 0x0F, 0xA2 } : new byte[3], code);
            if (change == "remapped") Assert.Equal(8, AssertHeadSound(guest, 2, paging, Linear));   // the new translation is kept
            Assert.Equal(0, guest.Violations);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void A_large_page_moved_elsewhere_is_not_served_from_the_kept_translation(int level)
    {
        GuestCode.ForgetTranslations();
        ulong linear = level == 2 ? 0x60_0000UL + 0x1_2345 : 0x8000_0000UL + 0x123_4567;
        ulong size = level == 2 ? 0x20_0000UL : 0x4000_0000UL;
        var guest = new FakeGuest();
        guest.Map(linear & ~(size - 1), 0x4000_0000, FakeGuest.Present, level);
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);   // tables elsewhere too
        ulong offset = linear & (size - 1);
        Poke(guest, 0x4000_0000 + offset, 0x0F, 0xA2, 0x90);
        Poke(guest, 0x8000_0000 + offset, 0x0F, 0x01, 0xD9);
        GuestPaging paging = Paging(guest.Cr3);
        var code = new byte[3];
        Assert.Equal(3, FetchOnCpu(guest, 0, paging, linear, code));
        Assert.Equal(8, AssertHeadSound(guest, 0, paging, linear));
        guest.Write64(guest.EntryAddress(linear, level), 0x8000_0000 | FakeGuest.Present | FakeGuest.Large);
        AssertHeadSound(guest, 0, paging, linear);
        Assert.Equal(3, FetchOnCpu(guest, 0, paging, linear, code));
        Assert.Equal(new byte[] { 0x0F, 0x01, 0xD9 }, code);
        Assert.Equal(8, AssertHeadSound(guest, 0, paging, linear));
    }

    [Fact]
    public void Another_cr3_is_not_served_from_the_kept_translation()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        ulong other = guest.NewTable();
        guest.Map(0x40_0000, 0x30_0000, FakeGuest.Present, root: other);   // another address space: the same page elsewhere
        Poke(guest, 0x20_0010, 0x0F, 0xA2);
        Poke(guest, 0x30_0010, 0x0F, 0x32);
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(guest.Cr3), 0x40_0010, code));
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(other), 0x40_0010));
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(other), 0x40_0010, code));
        Assert.Equal(new byte[] { 0x0F, 0x32 }, code);
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(guest.Cr3), 0x40_0010));   // the kept one is now the other's
        Assert.Equal(8, AssertHeadSound(guest, 0, Paging(other | 0x18), 0x40_0010));   // PWT/PCD are not the address
    }

    /// <summary>Two neighbouring linear pages, 0x40_0000 (CPUID at +0x10) and 0x40_1000 (RDMSR at +0x10), on unrelated physical pages.</summary>
    private static FakeGuest TwoCodePages()
    {
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        guest.Map(0x40_1000, 0x30_0000, FakeGuest.Present);
        Poke(guest, 0x20_0010, 0x0F, 0xA2);
        Poke(guest, 0x30_0010, 0x0F, 0x32);
        return guest;
    }

    [Fact]
    public void Another_linear_page_is_not_served_from_the_kept_translation()
    {
        GuestCode.ForgetTranslations();
        FakeGuest guest = TwoCodePages();
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(guest.Cr3), 0x40_0010, code));
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(guest.Cr3), 0x40_1010));
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(guest.Cr3), 0x50_0010));   // not mapped at all
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(guest.Cr3), 0x80_0040_0010));   // the same bits 38:0 in another PML4E
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(guest.Cr3), 0x40_1010, code));
        Assert.Equal(new byte[] { 0x0F, 0x32 }, code);
    }

    [Fact]
    public void A_supervisor_page_kept_at_cpl_0_is_not_read_for_cpl_3()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);   // supervisor
        Poke(guest, 0x20_0010, 0x0F, 0xA2);
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(guest.Cr3, cpl: 0), 0x40_0010, code));
        Assert.Equal(8, AssertHeadSound(guest, 0, Paging(guest.Cr3, cpl: 0), 0x40_0010));
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(guest.Cr3, cpl: 3), 0x40_0010));
        Array.Clear(code);
        Assert.Equal(0, Fetch(guest, Paging(guest.Cr3, cpl: 3), 0x40_0010, true, code));
        Assert.Equal(0, FetchOnCpu(guest, 0, Paging(guest.Cr3, cpl: 3), 0x40_0010, code));
        Assert.Equal(new byte[2], code);
    }

    [Fact]
    public void A_page_kept_with_nxe_is_not_served_without_it()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present | (1UL << 63));   // XD: reserved without EFER.NXE
        Poke(guest, 0x20_0010, 0x0F, 0xA2);
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(guest.Cr3, efer: Nxe), 0x40_0010, code));
        Assert.Equal(8, AssertHeadSound(guest, 0, Paging(guest.Cr3, efer: Nxe), 0x40_0010));
        Assert.Equal(0, AssertHeadSound(guest, 0, Paging(guest.Cr3, efer: NoNxe), 0x40_0010));
        Array.Clear(code);
        Assert.Equal(0, Fetch(guest, Paging(guest.Cr3, efer: NoNxe), 0x40_0010, true, code));
        Assert.Equal(0, FetchOnCpu(guest, 0, Paging(guest.Cr3, efer: NoNxe), 0x40_0010, code));
        Assert.Equal(new byte[2], code);
    }

    [Fact]
    public void A_kept_page_in_this_calls_forbidden_range_is_not_read()
    {
        GuestCode.ForgetTranslations();
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        Poke(guest, 0x20_0010, 0x0F, 0xA2);
        GuestPaging paging = Paging(guest.Cr3);
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 0, paging, 0x40_0010, code));
        foreach ((ulong forbiddenBase, ulong forbiddenSize) in new[] { (0x20_0000UL, 0x1000UL), (0x1F_F001UL, 0x1000UL), (0x20_0FFFUL, 1UL), (0UL, 0x100_0000UL) })
        {
            Assert.Equal(0, AssertHeadSound(guest, 0, paging, 0x40_0010, forbiddenBase, forbiddenSize));
            Array.Clear(code);
            Assert.Equal(0, FetchOnCpu(guest, 0, paging, 0x40_0010, code, forbiddenBase, forbiddenSize));
            Assert.Equal(new byte[2], code);
        }
        foreach ((ulong forbiddenBase, ulong forbiddenSize) in new[] { (0x20_1000UL, 0x1000UL), (0x1F_F000UL, 0x1000UL) })   // just next to it
        {
            Assert.Equal(8, AssertHeadSound(guest, 0, paging, 0x40_0010, forbiddenBase, forbiddenSize));
        }
    }

    [Fact]
    public void One_cpus_kept_translation_does_not_serve_another()
    {
        GuestCode.ForgetTranslations();
        FakeGuest guest = TwoCodePages();
        GuestPaging paging = Paging(guest.Cr3);
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 1, paging, 0x40_0010, code));
        Assert.Equal(0, AssertHeadSound(guest, 0, paging, 0x40_0010));
        Assert.Equal(0, AssertHeadSound(guest, 2, paging, 0x40_0010));
        Assert.Equal(8, AssertHeadSound(guest, 1, paging, 0x40_0010));
        // Each CPU keeps its own: CPU 0 another page, CPU 1's stays.
        Assert.Equal(2, FetchOnCpu(guest, 0, paging, 0x40_1010, code));
        Assert.Equal(8, AssertHeadSound(guest, 0, paging, 0x40_1010));
        Assert.Equal(8, AssertHeadSound(guest, 1, paging, 0x40_0010));
        Assert.Equal(0, AssertHeadSound(guest, 1, paging, 0x40_1010));
        Assert.Equal(0, AssertHeadSound(guest, 0, paging, 0x40_0010));
        GuestCode.ForgetTranslations();
        Assert.Equal(0, AssertHeadSound(guest, 0, paging, 0x40_1010));
        Assert.Equal(0, AssertHeadSound(guest, 1, paging, 0x40_0010));
    }

    [Fact]
    public void With_five_level_paging_FetchHead_gives_nothing()
    {
        GuestCode.ForgetTranslations();
        // A translation kept under 4-level paging: the same CR3 under LA57 means other tables.
        var guest = new FakeGuest();
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present);
        Poke(guest, 0x20_0010, 0x0F, 0xA2);
        var code = new byte[2];
        Assert.Equal(2, FetchOnCpu(guest, 0, Paging(guest.Cr3), 0x40_0010, code));
        Assert.Equal(8, FetchHead(guest, 0, Paging(guest.Cr3), 0x40_0010, out _));
        FakeGuest.Memory memory = guest.View;
        Assert.Equal(0, GuestCode.FetchHead(ref memory, 0, guest.Cr3, Cr4Pae | Cr4La57, Nxe, 0, 0x40_0010, 0, 0, out ulong head));
        Assert.Equal(0UL, head);

        // A 5-level guest: FetchOnCpu answers as Fetch (the general walk) and keeps nothing FetchHead would use.
        var five = new FakeGuest(levels: 5);
        five.Map(0xFF00_0000_0040_0000, 0x20_0000, FakeGuest.Present);
        Poke(five, 0x20_0000, 0x0F, 0x01, 0xD9);
        var bytes = new byte[3];
        Assert.Equal(3, FetchOnCpu(five, 0, five.Paging(), 0xFF00_0000_0040_0000, bytes));
        Assert.Equal(new byte[] { 0x0F, 0x01, 0xD9 }, bytes);
        memory = five.View;
        Assert.Equal(0, GuestCode.FetchHead(ref memory, 0, five.Cr3, five.Paging().Cr4, Nxe, 0, 0xFF00_0000_0040_0000, 0, 0, out head));
        Assert.Equal(0UL, head);
        Assert.Equal(0, guest.Violations + five.Violations);
    }

    /// <summary>
    /// A lean walk that fails after it read the entries (the page is supervisor-only for CPL 3, or in this call's forbidden
    /// range) must not leave them in the slot of the translation still kept there: linear page A is kept (entries e, page P);
    /// the guest changes one entry (e -> e'); the next FetchOnCpu at A rightly reads nothing, but its walk stored e' in the
    /// slot and kept the key and P; from then on FetchHead and FetchOnCpu at A match e' and read P.
    /// </summary>
    [Theory]
    [InlineData("supervisor", 1)]
    [InlineData("supervisor", 3)]
    [InlineData("forbidden", 1)]
    [InlineData("past the bounds", 1)]
    public void A_failed_walk_does_not_leave_its_entries_in_the_kept_translation(string change, int level)
    {
        GuestCode.ForgetTranslations();
        const ulong ForbiddenBase = 0x7E00_0000, ForbiddenSize = 0x30_0000;
        var guest = new FakeGuest();
        guest.Bounds = new PhysicalBounds(0x8000_0000, 0, 0);
        guest.Map(0x40_0000, 0x20_0000, FakeGuest.Present | FakeGuest.User);
        Poke(guest, 0x20_0010, 0x0F, 0xA2, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90);
        GuestPaging paging = Paging(guest.Cr3, cpl: 3);
        var code = new byte[3];
        Assert.Equal(3, FetchOnCpu(guest, 0, paging, 0x40_0010, code, ForbiddenBase, ForbiddenSize));
        ulong entry = guest.EntryAddress(0x40_0000, level);
        switch (change)
        {
            case "supervisor":
                guest.Write64(entry, guest.Read64(entry) & ~FakeGuest.User);
                break;
            case "forbidden":
                guest.Write64(entry, 0x7E01_0000 | FakeGuest.Present | FakeGuest.User);   // onto the hypervisor's pages
                break;
            default:
                guest.Write64(entry, 0x9000_0000 | FakeGuest.Present | FakeGuest.User);
                break;
        }
        Assert.Equal(0, Fetch(guest, paging, 0x40_0010, true, code, ForbiddenBase, ForbiddenSize));
        for (int call = 1; call <= 2; call++)
        {
            Array.Clear(code);
            Assert.True(FetchOnCpu(guest, 0, paging, 0x40_0010, code, ForbiddenBase, ForbiddenSize) == 0, $"call {call} read {Convert.ToHexString(code)}");
            Assert.Equal(0, AssertHeadSound(guest, 0, paging, 0x40_0010, ForbiddenBase, ForbiddenSize));
        }
    }
}
