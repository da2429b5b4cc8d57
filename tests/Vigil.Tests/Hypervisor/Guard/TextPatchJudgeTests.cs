using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>
/// A page of kernel text as the guard sees it: guest-physical 0x100_0000 is executed at 0xffffffff81000000;
/// the core text is 64 KiB, the module area holds code loaded after Protect, everything else is not code.
/// </summary>
internal struct FakeText : ITextView
{
    public const ulong Gpa = 0x100_0000;
    public const ulong Va = 0xffff_ffff_8100_0000;
    public const int Size = 0x1_0000;
    public const ulong ModuleCode = 0xffff_ffff_c010_0000;

    public byte[] Bytes;

    public static FakeText Filled()
    {
        var t = new FakeText { Bytes = new byte[Size] };
        Array.Fill(t.Bytes, (byte)0xCC);
        return t;
    }

    public readonly byte Read(ulong gpa) => gpa >= Gpa && gpa < Gpa + Size ? Bytes[gpa - Gpa] : (byte)0;

    public readonly ulong ExecutionAddress(ulong gpa) => Va + (gpa - Gpa);

    public readonly CodeKind Classify(ulong linear)
        => linear >= Va && linear < Va + Size ? CodeKind.KnownCode
            : linear >= 0xffff_ffff_c000_0000 && linear < 0xffff_ffff_ff00_0000 ? CodeKind.NewCode
            : CodeKind.NotCode;

    public readonly void Put(ulong gpa, params byte[] bytes) => bytes.CopyTo(Bytes, (int)(gpa - Gpa));

    public readonly byte[] At(ulong gpa, int length) => Bytes.AsSpan((int)(gpa - Gpa), length).ToArray();
}

public sealed unsafe class TextPatchJudgeTests
{
    private static readonly byte[] Nop5 = [0x0F, 0x1F, 0x44, 0x00, 0x00];
    private static readonly byte[] Prologue = [0x55, 0x48, 0x89, 0xE5, 0x41, 0x57];   // push rbp; mov rbp,rsp; push r15

    private FakeText _text = FakeText.Filled();
    private TextPatchTracker _tracker;

    private const ulong Site = FakeText.Gpa + 0x200;

    /// <summary>One store of the guest, judged; performed when it is a patch (or unchanged), else refused and the site put back.</summary>
    private GuardContent Store(ulong gpa, params byte[] data)
    {
        PatchJudgement j = TextPatchJudge.Judge(gpa, data, ref _text, ref _tracker);
        if (j.Content != 0)
        {
            _text.Put(gpa, data);
        }
        else if (j.RestoreLength > 0)
        {
            var restore = new byte[j.RestoreLength];
            for (int i = 0; i < restore.Length; i++) restore[i] = j.Restore[i];
            _text.Put(j.Site, restore);
        }
        return j.Content;
    }

    /// <summary>text_poke_bp with memcpy_orig: INT3 (1 byte), the tail (a dword store twice for 4 bytes, else bytes), then the first byte.</summary>
    private GuardContent[] PokeBp(ulong site, byte[] insn)
    {
        var verdicts = new System.Collections.Generic.List<GuardContent> { Store(site, 0xCC) };
        byte[] tail = insn[1..];
        if (tail.Length == 4)
        {
            verdicts.Add(Store(site + 1, tail));
            verdicts.Add(Store(site + 1, tail));
        }
        else if (tail.Length > 0)
        {
            verdicts.Add(Store(site + 1, tail));
        }
        verdicts.Add(Store(site, insn[0]));
        return [.. verdicts];
    }

    private static byte[] Rel32(byte opcode, ulong siteVa, ulong destination)
    {
        long distance = unchecked((long)(destination - (siteVa + 5)));
        int rel = distance is >= int.MinValue and <= int.MaxValue ? (int)distance : unchecked((int)distance);   // out of reach: truncated, as an attacker would
        return [opcode, (byte)rel, (byte)(rel >> 8), (byte)(rel >> 16), (byte)(rel >> 24)];
    }

    /// <summary>Every step allowed as <paramref name="expected"/>; memcpy_orig's second identical dword store changes nothing.</summary>
    private static void AllAre(GuardContent expected, GuardContent[] steps)
        => Assert.All(steps, c => Assert.True(c == expected || c == GuardContent.Unchanged, $"{c}"));

    private static ulong SiteVa => FakeText.Va + (Site - FakeText.Gpa);

    [Fact]
    public void A_jump_label_nop5_becomes_a_jmp_within_the_kernel_and_back()
    {
        _text.Put(Site, Nop5);
        byte[] jmp = Rel32(0xE9, SiteVa, SiteVa + 0x40);
        AllAre(GuardContent.KernelPatch, PokeBp(Site, jmp));
        Assert.Equal(jmp, _text.At(Site, 5));
        AllAre(GuardContent.KernelPatch, PokeBp(Site, Nop5));
        Assert.Equal(Nop5, _text.At(Site, 5));
        Assert.Equal(0, _tracker.Armed);
    }

    [Fact]
    public void A_two_byte_jump_label_toggles_between_nop2_and_jmp_rel8()
    {
        _text.Put(Site, 0x66, 0x90);
        AllAre(GuardContent.KernelPatch, PokeBp(Site, [0xEB, 0x10]));
        Assert.Equal(new byte[] { 0xEB, 0x10 }, _text.At(Site, 2));
        AllAre(GuardContent.KernelPatch, PokeBp(Site, [0x66, 0x90]));
    }

    [Fact]
    public void Ftrace_calls_from_the_fentry_nop_into_core_text_are_kernel_patches()
    {
        _text.Put(Site, Nop5);
        byte[] call = Rel32(0xE8, SiteVa, FakeText.Va + 0x8000);   // ftrace_caller
        AllAre(GuardContent.KernelPatch, PokeBp(Site, call));
        Assert.Equal(call, _text.At(Site, 5));
        byte[] other = Rel32(0xE8, SiteVa, FakeText.Va + 0x9000);   // ftrace_regs_caller
        AllAre(GuardContent.KernelPatch, PokeBp(Site, other));
    }

    [Fact]
    public void A_call_into_code_loaded_after_protect_is_told_apart()
    {
        _text.Put(Site, Nop5);
        byte[] call = Rel32(0xE8, SiteVa, FakeText.ModuleCode);   // an ftrace trampoline of a later module
        GuardContent[] steps = PokeBp(Site, call);
        Assert.Equal(GuardContent.KernelPatch, steps[0]);   // the INT3
        AllAre(GuardContent.JumpIntoNewCode, steps[1..]);
        Assert.Equal(call, _text.At(Site, 5));
    }

    [Fact]
    public void Static_calls_retarget_calls_and_become_padded_returns()
    {
        _text.Put(Site, Rel32(0xE9, SiteVa, FakeText.Va + 0x3000));   // a static call trampoline
        AllAre(GuardContent.KernelPatch, PokeBp(Site, Rel32(0xE9, SiteVa, FakeText.Va + 0x4000)));
        AllAre(GuardContent.KernelPatch, PokeBp(Site, [0xC3, 0xCC, 0xCC, 0xCC, 0xCC]));
        Assert.Equal(new byte[] { 0xC3, 0xCC, 0xCC, 0xCC, 0xCC }, _text.At(Site, 5));
    }

    [Fact]
    public void A_kprobe_arms_an_int3_on_any_instruction_and_removes_it()
    {
        _text.Put(Site, Prologue);
        Assert.Equal(GuardContent.KernelPatch, Store(Site, 0xCC));
        Assert.Equal(GuardContent.KernelPatch, Store(Site, 0x55));
        Assert.Equal(Prologue, _text.At(Site, Prologue.Length));
    }

    [Fact]
    public void A_kprobe_site_cannot_be_turned_into_something_else()
    {
        _text.Put(Site, Prologue);
        Assert.Equal(GuardContent.KernelPatch, Store(Site, 0xCC));
        Assert.Equal((GuardContent)0, Store(Site, 0xC3));   // RET instead of push rbp
        Assert.Equal(Prologue, _text.At(Site, Prologue.Length));   // the INT3 is gone too
    }

    [Fact]
    public void A_jmp_written_directly_over_a_nop5_is_refused_at_its_first_store()
    {
        _text.Put(Site, Nop5);
        byte[] jmp = Rel32(0xE9, SiteVa, FakeText.Va + 0x40);   // even into the kernel
        Assert.Equal((GuardContent)0, Store(Site, jmp[0..4]));   // memcpy_orig: dword at +0, then dword at +1
        Assert.Equal((GuardContent)0, Store(Site + 1, jmp[1..5]));
        Assert.Equal(Nop5, _text.At(Site, 5));
        Assert.Equal((GuardContent)0, Store(Site, jmp));   // one rep movsb of five bytes
        Assert.Equal(Nop5, _text.At(Site, 5));
    }

    [Fact]
    public void An_inline_hook_over_a_prologue_is_refused_and_the_prologue_put_back_whole()
    {
        _text.Put(Site, Prologue);
        GuardContent[] steps = PokeBp(Site, Rel32(0xE9, SiteVa, FakeText.Va + 0x40));
        Assert.Equal(GuardContent.KernelPatch, steps[0]);   // an INT3 alone is a kprobe
        Assert.Equal((GuardContent)0, steps[1]);            // the tail: not a patch site
        Assert.Equal(Prologue, _text.At(Site, Prologue.Length));   // INT3 removed, nothing half-written
    }

    [Fact]
    public void A_jmp_from_a_patch_site_into_module_code_is_refused_and_undone()
    {
        _text.Put(Site, Nop5);
        GuardContent[] steps = PokeBp(Site, Rel32(0xE9, SiteVa, FakeText.ModuleCode));
        // Under the INT3 the tail could still become a CALL into a later module's trampoline (recorded as such);
        // the completing byte makes it a JMP there, which no kernel path writes: refused, the site undone whole.
        Assert.Equal(GuardContent.JumpIntoNewCode, steps[1]);
        Assert.Equal((GuardContent)0, steps[^1]);
        Assert.Equal(Nop5, _text.At(Site, 5));
        Assert.Equal(0, _tracker.Armed);
    }

    [Fact]
    public void A_call_into_data_is_refused()
    {
        _text.Put(Site, Nop5);
        GuardContent[] steps = PokeBp(Site, Rel32(0xE8, SiteVa, 0xffff_8880_0000_1000));   // the direct map
        Assert.Equal((GuardContent)0, steps[1]);
        Assert.Equal(Nop5, _text.At(Site, 5));
    }

    [Fact]
    public void A_first_byte_that_completes_no_shape_is_refused_after_an_allowed_tail()
    {
        _text.Put(Site, Nop5);
        byte[] call = Rel32(0xE8, SiteVa, FakeText.Va + 0x8000);
        Assert.Equal(GuardContent.KernelPatch, Store(Site, 0xCC));
        Assert.Equal(GuardContent.KernelPatch, Store(Site + 1, call[1..]));
        Assert.Equal((GuardContent)0, Store(Site, 0xFF));   // FF + rel32 bytes: an indirect call/jump through memory
        Assert.Equal(Nop5, _text.At(Site, 5));   // tail and INT3 undone
    }

    [Fact]
    public void A_write_longer_than_a_patch_instruction_is_refused()
    {
        _text.Put(Site, Nop5);
        Assert.Equal(GuardContent.KernelPatch, Store(Site, 0xCC));
        Assert.Equal((GuardContent)0, Store(Site + 1, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90));
        Assert.Equal(Nop5, _text.At(Site, 5));
    }

    [Fact]
    public void Writing_what_is_already_there_is_unchanged()
    {
        _text.Put(Site, Prologue);
        Assert.Equal(GuardContent.Unchanged, Store(Site, Prologue[0..4]));
    }

    [Fact]
    public void A_batch_of_a_page_of_sites_is_tracked_whole()
    {
        // text_poke_bp_batch arms every site of a batch (up to a page of text_poke_loc) before writing any tail.
        const int sites = 256;
        for (int i = 0; i < sites; i++) _text.Put(Site + (ulong)(i * 8), Nop5);
        for (int i = 0; i < sites; i++) Assert.Equal(GuardContent.KernelPatch, Store(Site + (ulong)(i * 8), 0xCC));
        for (int i = 0; i < sites; i++)
        {
            ulong s = Site + (ulong)(i * 8);
            byte[] call = Rel32(0xE8, FakeText.Va + (s - FakeText.Gpa), FakeText.Va + 0x8000);
            Assert.Equal(GuardContent.KernelPatch, Store(s + 1, call[1..]));
        }
        for (int i = 0; i < sites; i++) Assert.Equal(GuardContent.KernelPatch, Store(Site + (ulong)(i * 8), 0xE8));
        Assert.Equal(Rel32(0xE8, SiteVa, FakeText.Va + 0x8000), _text.At(Site, 5));
        Assert.Equal(0, _tracker.Armed);
    }

    [Fact]
    public void A_site_the_tracker_had_to_forget_is_refused_rather_than_guessed()
    {
        _text.Put(Site, Nop5);
        Assert.Equal(GuardContent.KernelPatch, Store(Site, 0xCC));
        for (int i = 1; i <= TextPatchTracker.Capacity; i++)
        {
            _text.Put(Site + 0x1000 + (ulong)i, 0x90);
            Assert.Equal(GuardContent.KernelPatch, Store(Site + 0x1000 + (ulong)i, 0xCC));   // the last one pushes the first arming out
        }
        Assert.Equal(TextPatchTracker.Capacity, _tracker.Armed);
        byte[] call = Rel32(0xE8, SiteVa, FakeText.Va + 0x8000);
        Assert.Equal((GuardContent)0, Store(Site + 1, call[1..]));
    }

    [Fact]
    public void The_tracker_finds_the_nearest_armed_site_at_or_before_an_address_and_forgets_freed_slots()
    {
        var tracker = default(TextPatchTracker);
        Assert.Equal(-1, tracker.Covering(0x1000, out _));
        tracker.Arm(0x1000, [0x0F, 0x1F]);
        tracker.Arm(0x1005, [0x90]);
        tracker.Arm(0x2000, [0x90]);
        Assert.Equal(1, tracker.Covering(0x1007, out ulong site));
        Assert.Equal(0x1005UL, site);
        Assert.Equal(0, tracker.Covering(0x1004, out site));
        Assert.Equal(0x1000UL, site);
        Assert.Equal(1, tracker.Covering(0x1005 + TextPatchTracker.SiteBytes - 1, out site));
        Assert.Equal(-1, tracker.Covering(0x1005 + TextPatchTracker.SiteBytes, out _));
        Assert.Equal(-1, tracker.Covering(0xFFF, out _));
        tracker.Forget(1);
        Assert.Equal(0, tracker.Covering(0x1007, out site));
        Assert.Equal(0x1000UL, site);
        Assert.Equal(-1, tracker.Find(0x1005));
        tracker.Arm(0x3000, [0x90]);                          // the freed slot is used again
        Assert.Equal(1, tracker.Find(0x3000));
        Assert.Equal(2, tracker.Find(0x2000));
        Assert.Equal(3, tracker.Armed);
    }

    [Theory]
    [InlineData(new byte[] { 0x0F, 0x1F, 0x44, 0x00, 0x00 }, PatchKind.Nop, 5)]
    [InlineData(new byte[] { 0x66, 0x90 }, PatchKind.Nop, 2)]
    [InlineData(new byte[] { 0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00 }, PatchKind.Nop, 6)]
    [InlineData(new byte[] { 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 }, PatchKind.Nop, 8)]
    [InlineData(new byte[] { 0xEB, 0xFE }, PatchKind.Jump, 2)]
    [InlineData(new byte[] { 0xE9, 1, 2, 3, 4 }, PatchKind.Jump, 5)]
    [InlineData(new byte[] { 0x0F, 0x84, 1, 2, 3, 4 }, PatchKind.Jump, 6)]
    [InlineData(new byte[] { 0xE8, 1, 2, 3, 4 }, PatchKind.Call, 5)]
    [InlineData(new byte[] { 0xC3, 0xCC, 0xCC, 0xCC, 0xCC }, PatchKind.Return, 5)]
    [InlineData(new byte[] { 0xCC, 0x1F }, PatchKind.Breakpoint, 1)]
    [InlineData(new byte[] { 0x55, 0x48 }, PatchKind.None, 0)]
    [InlineData(new byte[] { 0xFF, 0x15, 0, 0, 0, 0 }, PatchKind.None, 0)]
    public void Shapes_are_recognised(byte[] bytes, PatchKind kind, int length)
    {
        PatchShape shape = PatchShape.At(bytes);
        Assert.Equal(kind, shape.Kind);
        Assert.Equal(length, shape.Length);
    }

    [Fact]
    public void Destinations_are_relative_to_the_end_of_the_instruction()
    {
        Assert.Equal(0x1000UL + 5 + 0x10, PatchShape.At([0xE9, 0x10, 0, 0, 0]).Destination(0x1000));
        Assert.Equal(0x1000UL + 2 - 2, PatchShape.At([0xEB, 0xFE]).Destination(0x1000));
        Assert.Equal(0x1000UL + 6 - 1, PatchShape.At([0x0F, 0x85, 0xFF, 0xFF, 0xFF, 0xFF]).Destination(0x1000));
    }
}
