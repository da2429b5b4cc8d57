using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>What the fake platform saw and answers.</summary>
internal sealed class FakeGuardPlatformState
{
    public readonly List<(ulong Gpa, ulong Size, PageAccess Access)> Protected = [];
    public readonly Queue<ulong> Random = new();
    public NestedMapResult? FailAt;
    public int FailIndex;
    public ulong Tsc = 0x1_0000;
    public int WaitSteps;
}

/// <summary>IGuardPlatform for the tests: the nested map is a list, RDRAND a queue, the lock a plain word.</summary>
internal readonly unsafe struct FakeGuardPlatform(FakeGuardPlatformState s) : IGuardPlatform
{
    public NestedMapResult Protect(uint self, ulong gpa, ulong size, PageAccess access)
    {
        if (s.FailAt is NestedMapResult fail && s.Protected.Count == s.FailIndex) return fail;
        s.Protected.Add((gpa, size, access));
        return NestedMapResult.Done;
    }

    public bool TryLock(uint* word)
    {
        if (*word != 0) return false;
        *word = 1;
        return true;
    }

    public void Unlock(uint* word) => *word = 0;

    public void WaitStep(uint self)
    {
        s.WaitSteps++;
        if (s.WaitSteps > 1000) throw new InvalidOperationException("the guard's lock was never released");
    }

    public bool TryRandom(out ulong value) => s.Random.TryDequeue(out value);

    public void Fence()
    {
    }

    public void Kick(uint cpu)
    {
    }

    public void InvalidateLocal(uint cpu)
    {
    }

    public void Pause()
    {
    }

    public ulong Timestamp => s.Tsc += 977;
}

/// <summary>
/// The Protect, Lock and ReadEvents hypercalls over a fake Linux 6.1 kernel with page-table isolation: the caller's CR3
/// is the user half of the PGD pair (bit 12, a user PCID) and maps only the entry text and the CPU entry area; the
/// kernel half maps the image: a 2 MiB text page, 4 KiB text pages, a writable page that must stay unguarded, rodata
/// with sys_call_table across a page boundary, the IDT (idt_table and its CPU-entry-area alias), data.
/// </summary>
[Collection("Hypervisor statics")]
public sealed unsafe partial class GuardControlPlaneTests : IDisposable
{
    private const ulong P = FakeGuest.Present, W = FakeGuest.Writable, U = FakeGuest.User, Nx = 1UL << 63;
    private const ulong Image = 0xFFFF_FFFF_8100_0000;        // _stext with KASLR
    private const ulong Lstar = Image + 0x100;               // entry_SYSCALL_64
    private const ulong SysCallTable = Image + 0x20_5800;    // crosses into the next page (451 * 8 bytes)
    private const ulong IdtTable = Image + 0x40_0000;
    private const ulong CpuEntryArea = 0xFFFF_FE00_0000_0000;
    private const ulong Buffer = 0x40_0000;                  // the agent's buffer (user), 8 pages
    private const ulong Secret = 0x0123_4567_89AB_CDEF;

    private readonly FakeGuest _g = new();
    private readonly ulong _userPgd;
    private readonly FakeVcpuState _cpu = new();
    private readonly FakeGuardPlatformState _platform = new();
    private readonly void* _events;
    private readonly IntPtr _scratch;
    private readonly IntPtr _statistics;

    public GuardControlPlaneTests()
    {
        GuardState.Reset();
        GuardHypercalls.Reset();
        _userPgd = _g.NewTable();   // the second page of the 8 KiB pair (FakeGuest's first table is at 0x100000)
        Assert.Equal(_g.Cr3 + 0x1000, _userPgd);

        // Kernel half: text (a 2 MiB page, then 3 pages), a writable page, rodata (4 pages), the IDT page, data.
        _g.Map(Image, 0x100_0000, P, level: 2);
        for (ulong i = 0; i < 3; i++) _g.Map(Image + 0x20_0000 + (i * 0x1000), 0x120_0000 + (i * 0x1000), P);
        _g.Map(Image + 0x20_3000, 0x120_3000, P | W | Nx);
        for (ulong i = 0; i < 4; i++) _g.Map(Image + 0x20_4000 + (i * 0x1000), 0x120_4000 + (i * 0x1000), P | Nx);
        _g.Map(IdtTable, 0x140_0000, P | Nx);
        _g.Map(IdtTable + 0x1000, 0x140_1000, P | W | Nx);
        _g.Map(CpuEntryArea, 0x140_0000, P | Nx);
        for (ulong i = 0; i < 8; i++) _g.Map(Buffer + (i * 0x1000), 0x90_0000 + (i * 0x1000), P | W | U);

        // User half: the same user pages, the entry text page and the CPU entry area only.
        for (ulong i = 0; i < 8; i++) _g.Map(Buffer + (i * 0x1000), 0x90_0000 + (i * 0x1000), P | W | U, root: _userPgd);
        _g.Map(Image, 0x100_0000, P, root: _userPgd);
        _g.Map(CpuEntryArea, 0x140_0000, P | Nx, root: _userPgd);

        _cpu.Cr3 = _userPgd | (1UL << 11) | 1;   // user PCID 1 with the PTI user bit
        _cpu.Cpl = 3;
        _cpu.Cr0 = 0x8005_0033;                  // PG, WP, NE, ET, MP, PE
        _cpu.Cr4 = 0x0030_06F0 | (1UL << 11);   // SMEP, SMAP, UMIP, PAE, PGE, ...
        _cpu.Efer = 0xD01;                       // SCE, LME, LMA, NXE
        _cpu.IdtBase = CpuEntryArea;
        _cpu.IdtLimit = 0xFFF;
        _cpu.GdtBase = 0xFFFF_FE00_0000_1000;
        _cpu.GdtLimit = 127;
        _cpu.GuardedMsrs[GuardMsrs.Lstar] = Lstar;
        _cpu.GuardedMsrs[GuardMsrs.Star] = 0x0023_0010_0000_0000;
        _cpu.GuardedMsrs[GuardMsrs.Sfmask] = 0x47700;
        _cpu.GuardedMsrs[GuardMsrs.SysenterCs] = 0x10;
        _platform.Random.Enqueue(Secret);

        ulong bytes = GuardEventLog.BytesFor(4);
        _events = NativeMemory.AlignedAlloc((nuint)bytes, 16);
        GuardState.Events = GuardEventLog.Initialize(_events, bytes);
        _scratch = (IntPtr)NativeMemory.AllocZeroed((nuint)Hypercalls.ScratchBytesPerCpu);
        _statistics = (IntPtr)NativeMemory.AllocZeroed((nuint)ExitStatistics.StorageBytes(1));
        uint id = 0;
        ExitStatistics.Initialize((CpuStatus*)_statistics, 1, &id);
        Hypercalls.Initialize(Vendor.AmdSvm, 0x7000_0000, 0x10_0000, (byte*)_scratch, 1);
    }

    public void Dispose()
    {
        GuardState.Reset();
        GuardHypercalls.Reset();
        NativeMemory.AlignedFree(_events);
        NativeMemory.Free((void*)_scratch);
        NativeMemory.Free((void*)_statistics);
    }

    private HypercallStatus Call(HypercallFunction f, ulong rbx = 0, ulong rcx = 0, ulong rdx = 0, ulong rsi = 0)
    {
        _cpu.Regs = new GuestRegisters { Rax = Hypercall.Rax(f), Rbx = rbx, Rcx = rcx, Rdx = rdx, Rsi = rsi };
        var v = new FakeVcpu(_cpu);
        var memory = _g.View;
        var platform = new FakeGuardPlatform(_platform);
        HypercallStatus status = Hypercalls.Dispatch(ref v, ref memory, ref platform);
        Assert.Equal((ulong)status, _cpu.Regs.Rax);
        Assert.Equal(0u, *GuardState.LockWord);   // released on every path
        return status;
    }

    /// <summary>Writes <paramref name="request"/> into the agent's buffer and makes the Protect call.</summary>
    private HypercallStatus Protect(GuardProtectRequest request, ulong secret = 0)
    {
        WriteGuest(Buffer, MemoryMarshal.AsBytes(new ReadOnlySpan<GuardProtectRequest>(in request)));
        return Call(HypercallFunction.Protect, Buffer, (ulong)sizeof(GuardProtectRequest), secret);
    }

    private static GuardProtectRequest WithHints(ulong sysCallTable = SysCallTable)
    {
        var r = GuardProtectRequest.Create(GuardProtectFlags.None);
        r.SysCallTable = sysCallTable;
        r.TextStart = Image;
        r.TextEnd = Image + 0x20_3000;
        r.ReadOnlyDataStart = Image + 0x20_4000;
        r.ReadOnlyDataEnd = Image + 0x20_8000;
        r.InterruptTable = IdtTable;
        return r;
    }

    private void WriteGuest(ulong va, ReadOnlySpan<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            ulong pa = 0x90_0000 + (va - Buffer) + (ulong)i;
            _g.Page(pa)[pa & 0xFFF] = bytes[i];
        }
    }

    private byte[] ReadGuest(ulong va, int length)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++)
        {
            ulong pa = 0x90_0000 + (va - Buffer) + (ulong)i;
            bytes[i] = _g.Page(pa)[pa & 0xFFF];
        }
        return bytes;
    }

    private static List<(ulong Gpa, ulong Size, GuardObject Object)> Ranges()
    {
        var list = new List<(ulong, ulong, GuardObject)>();
        for (int i = 0; i < GuardState.RangeCount; i++) list.Add((GuardState.Range(i).Gpa, GuardState.Range(i).Size, GuardState.Range(i).Object));
        return list;
    }

    [Fact]
    public void Kernel_cr3_is_the_even_page_of_the_pti_pair_without_the_pcid()
    {
        Assert.Equal(0x10_0000UL, KernelDiscovery.KernelCr3(0x10_1000 | 0x801));
        Assert.Equal(0x10_0000UL, KernelDiscovery.KernelCr3(0x10_0000 | 0x5));
        Assert.Equal(0x10_0000UL, KernelDiscovery.KernelCr3(0x8000_0000_0010_1000));   // CR3 bit 63 (no-flush) is not an address bit
    }

    [Fact]
    public void Protect_finds_text_rodata_syscall_table_and_idt_in_the_kernels_own_tables()
    {
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Assert.Equal(Secret, _cpu.Regs.Rdx);
        Assert.Equal(
            [
                (0x100_0000UL, 0x20_3000UL, GuardObject.KernelText),            // the 2 MiB page and the 3 pages after it, coalesced
                (0x120_4000UL, 0x1000UL, GuardObject.KernelReadOnlyData),       // the writable page before it is not guarded
                (0x120_5000UL, 0x2000UL, GuardObject.SysCallTable),             // both pages sys_call_table touches
                (0x120_7000UL, 0x1000UL, GuardObject.KernelReadOnlyData),
                (0x140_0000UL, 0x1000UL, GuardObject.InterruptTable),           // idt_table, the same page as the entry-area alias
            ],
            Ranges());
        Assert.Equal((ulong)GuardState.RangeCount, _cpu.Regs.Rcx);
        // The core text's mapping for the text-patch judge and actor regions: where it executes and where it lies.
        Assert.Equal((Image, 0x100_0000UL, 0x20_3000UL), (GuardState.TextLinear, GuardState.TextGpa, GuardState.TextSize));
        Assert.Equal(GuardObject.None, GuardState.ObjectAt(0x120_3000));
        Assert.Equal(GuardObject.None, GuardState.ObjectAt(0x140_1000));

        // Every range write-protected in the nested map (read + execute), in order.
        Assert.Equal(Ranges().ConvertAll(r => (r.Gpa, r.Size, PageAccess.Read | PageAccess.Execute)), _platform.Protected);

        // Every hint accepted, none rejected.
        Assert.Equal((ulong)(GuardHint.SysCallTable | GuardHint.KernelText | GuardHint.ReadOnlyData | GuardHint.InterruptTable), _cpu.Regs.Rsi);

        // Pins: this CPU's state.
        GuardPins pins = GuardState.Pins;
        Assert.Equal(1UL << 16, pins.Cr0Set);
        Assert.Equal((1UL << 20) | (1UL << 21) | (1UL << 11), pins.Cr4Set);
        Assert.Equal((1UL << 11) | 1UL, pins.EferSet);
        Assert.Equal(Lstar, pins.Lstar);
        Assert.Equal(0x0023_0010_0000_0000UL, pins.Star);
        Assert.Equal(0x47700UL, pins.Sfmask);
        Assert.Equal(0x10UL, pins.SysenterCs);
        Assert.Equal(CpuEntryArea, pins.IdtBase);
        Assert.Equal(0xFFF, pins.IdtLimit);
        Assert.Equal(127, pins.GdtLimit);
        Assert.Equal(0xFFFF_FE00_0000_1000UL, GuardState.GdtBase(0));

        // Rules in force, published, protected, not locked.
        Assert.True(GuardState.Protected);
        Assert.False(GuardState.Locked);
        Assert.Equal((uint)DefaultRules.Count, GuardState.RuleHeader.Count);
        Assert.Equal(1u, GuardState.Generation);
    }

    [Fact]
    public void Discovery_walks_five_level_tables_and_splits_large_pages_around_the_special_pages()
    {
        GuardState.Reset();
        var g = new FakeGuest(levels: 5);
        g.Map(Image, 0x100_0000, P, level: 2);                      // text: one 2 MiB page
        g.Map(Image + 0x20_0000, 0x120_0000, P | Nx, level: 2);     // rodata: one 2 MiB page, the IDT's page inside it
        g.Map(Image + 0x40_0000, 0x140_0000, P | W | Nx, level: 2); // data
        var memory = g.View;
        var special = new SpecialPages { Idt0 = 0x128_0000 };
        Assert.Equal(DiscoveryResult.Ok, KernelDiscovery.Discover(ref memory, g.Paging(), special, out ulong text));
        Assert.Equal(0x20_0000UL, text);
        Assert.Equal(
            [
                (0x100_0000UL, 0x20_0000UL, GuardObject.KernelText),
                (0x120_0000UL, 0x8_0000UL, GuardObject.KernelReadOnlyData),
                (0x128_0000UL, 0x1000UL, GuardObject.InterruptTable),
                (0x128_1000UL, 0x17_F000UL, GuardObject.KernelReadOnlyData),
            ],
            Ranges());
    }

    [Fact]
    public void Discovery_of_tables_without_kernel_code_finds_nothing()
    {
        GuardState.Reset();
        var g = new FakeGuest();
        g.Map(Image, 0x100_0000, P | W, level: 2);   // all writable: nothing is text or rodata
        var memory = g.View;
        Assert.Equal(DiscoveryResult.NoKernelText, KernelDiscovery.Discover(ref memory, g.Paging(), default, out _));
        Assert.Equal(DiscoveryResult.NotLongMode, KernelDiscovery.Discover(ref memory, new GuestPaging(0x8000_0011, g.Cr3, 0x20, 0, 0), default, out _));
    }

    [Fact]
    public void A_caller_whose_cr3_is_the_kernel_half_finds_the_same_ranges()
    {
        _cpu.Cr3 = _g.Cr3 | 3;
        _cpu.Cpl = 0;
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Assert.Equal(5, GuardState.RangeCount);
    }

    [Fact]
    public void A_sys_call_table_hint_outside_the_read_only_data_is_rejected_and_shrinks_nothing()
    {
        Assert.Equal(HypercallStatus.Success, Protect(WithHints(sysCallTable: Image + 0x20_3010)));   // the writable page
        Assert.Equal((ulong)GuardHint.SysCallTable << 32, _cpu.Regs.Rsi & 0xFFFF_FFFF_0000_0000);
        Assert.Equal(
            [
                (0x100_0000UL, 0x20_3000UL, GuardObject.KernelText),
                (0x120_4000UL, 0x4000UL, GuardObject.KernelReadOnlyData),     // all of rodata, its own class
                (0x140_0000UL, 0x1000UL, GuardObject.InterruptTable),
            ],
            Ranges());
    }

    [Fact]
    public void Hints_in_text_or_unmapped_are_rejected()
    {
        GuardProtectRequest r = WithHints(sysCallTable: Image + 0x10);   // in text
        r.TextEnd = Image + 0x20_4000;                                  // ends in the writable page
        r.InterruptTable = IdtTable + 0x1000;                           // not the IDT's page
        r.ReadOnlyDataStart = 0xFFFF_FFFF_9000_0000;                    // not mapped
        Assert.Equal(HypercallStatus.Success, Protect(r));
        Assert.Equal(0UL, _cpu.Regs.Rsi & 0xFFFF_FFFF);
        Assert.Equal((ulong)(GuardHint.SysCallTable | GuardHint.KernelText | GuardHint.ReadOnlyData | GuardHint.InterruptTable) << 32, _cpu.Regs.Rsi);
        Assert.Equal(3, GuardState.RangeCount);   // text, rodata (one range), the IDT: nothing shrunk
        Assert.Equal(0x20_3000UL + 0x4000 + 0x1000, TotalBytes());
    }

    private static ulong TotalBytes()
    {
        ulong total = 0;
        foreach (var r in Ranges()) total += r.Size;
        return total;
    }

    [Fact]
    public void Protect_without_a_request_uses_no_hints()
    {
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Protect));
        Assert.Equal(Secret, _cpu.Regs.Rdx);
        Assert.Equal(0UL, _cpu.Regs.Rsi);
        Assert.Equal(GuardObject.KernelReadOnlyData, GuardState.ObjectAt(0x120_5000));
    }

    [Fact]
    public void The_secret_guards_every_later_call_and_lock_is_one_way()
    {
        Assert.Equal(HypercallStatus.NotPermitted, Call(HypercallFunction.Lock, rdx: 0));   // nothing protected yet
        Assert.Equal(HypercallStatus.NotPermitted, Call(HypercallFunction.ReadEvents, Buffer, 0x1000, 0));
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        ulong secret = _cpu.Regs.Rdx;
        Assert.Equal(Secret, secret);
        int ranges = GuardState.RangeCount;

        Assert.Equal(HypercallStatus.NotPermitted, Protect(WithHints(), secret: 0));
        Assert.Equal(HypercallStatus.NotPermitted, Protect(WithHints(), secret: secret ^ 1));
        Assert.Equal(HypercallStatus.Success, Protect(WithHints(), secret: secret));
        Assert.Equal(0UL, _cpu.Regs.Rdx);                 // handed out once
        Assert.Equal(ranges, GuardState.RangeCount);      // nothing new: nothing added twice

        Assert.Equal(HypercallStatus.NotPermitted, Call(HypercallFunction.Lock, rdx: secret + 1));
        Assert.False(GuardState.Locked);
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Lock, rdx: secret));
        Assert.True(GuardState.Locked);
        uint generation = GuardState.Generation;

        Assert.Equal(HypercallStatus.NotPermitted, Protect(WithHints(), secret: secret));
        Assert.Equal(HypercallStatus.NotPermitted, Call(HypercallFunction.Lock, rdx: secret));
        Assert.True(GuardState.Locked);
        Assert.Equal(generation, GuardState.Generation);
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.ReadEvents, Buffer, 0x1000, secret));   // reading stays open to the agent
    }

    [Fact]
    public void Protect_with_the_lock_flag_locks_in_the_same_call()
    {
        Assert.Equal(HypercallStatus.Success, Protect(GuardProtectRequest.Create(GuardProtectFlags.Lock)));
        Assert.True(GuardState.Protected);
        Assert.True(GuardState.Locked);
        Assert.Equal(HypercallStatus.NotPermitted, Protect(WithHints(), secret: Secret));
    }

    [Fact]
    public void Without_rdrand_the_secret_comes_from_the_tsc_and_is_never_zero()
    {
        _platform.Random.Clear();
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Protect));
        Assert.NotEqual(0UL, _cpu.Regs.Rdx);
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Lock, rdx: _cpu.Regs.Rdx));
    }

    [Fact]
    public void Strict_and_audit_only_flags_and_a_handed_over_rule_set()
    {
        Assert.Equal(HypercallStatus.Success, Protect(GuardProtectRequest.Create(GuardProtectFlags.StrictRules | GuardProtectFlags.AuditOnly)));
        Assert.Equal(1, GuardState.RuleHeader.AuditOnly);
        Assert.Equal(GuardVerdict.Block, GuardState.Rules[DefaultRules.JumpIntoNewCodeRule].Verdict);
        Assert.Equal(GuardRuleSource.BuiltInStrict, GuardState.RuleSource);
        Assert.Equal(GuardRuleSource.BuiltInStrict, StatusGuard().RuleSource);

        // A rule set of its own: header + 1 rule after the request in the buffer.
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        GuardRuleSetHeader header = DefaultRules.Write(rules, strict: false);
        header.Count = 1;
        WriteGuest(Buffer + 0x1000, MemoryMarshal.AsBytes(new ReadOnlySpan<GuardRuleSetHeader>(in header)));
        WriteGuest(Buffer + 0x1000 + (ulong)sizeof(GuardRuleSetHeader), MemoryMarshal.AsBytes(rules.AsSpan(0, 1)));
        var r = GuardProtectRequest.Create(GuardProtectFlags.None);
        r.RuleSet = Buffer + 0x1000;
        r.RuleSetSize = (ulong)sizeof(GuardRuleSetHeader) + (ulong)sizeof(GuardRule);
        Assert.Equal(HypercallStatus.Success, Protect(r, Secret));
        Assert.Equal(1u, GuardState.RuleHeader.Count);
        Assert.Equal(0, GuardState.RuleHeader.AuditOnly);
        Assert.Equal(GuardRuleSource.HandedOver, StatusGuard().RuleSource);

        // Bad sets: a count beyond the size, a bad signature, a size beyond the most rules.
        header.Count = 2;
        WriteGuest(Buffer + 0x1000, MemoryMarshal.AsBytes(new ReadOnlySpan<GuardRuleSetHeader>(in header)));
        Assert.Equal(HypercallStatus.BadRequest, Protect(r, Secret));
        header.Count = 1;
        header.Signature = 0;
        WriteGuest(Buffer + 0x1000, MemoryMarshal.AsBytes(new ReadOnlySpan<GuardRuleSetHeader>(in header)));
        Assert.Equal(HypercallStatus.BadRequest, Protect(r, Secret));
        r.RuleSetSize = 0x10_0000;
        Assert.Equal(HypercallStatus.BadBufferSize, Protect(r, Secret));
        Assert.Equal(1u, GuardState.RuleHeader.Count);   // unchanged by the refused calls
    }

    [Fact]
    public void Bad_requests_get_their_status_and_change_nothing()
    {
        Assert.Equal(HypercallStatus.BadBufferSize, Call(HypercallFunction.Protect, Buffer, 16));
        Assert.Equal(HypercallStatus.BadBufferSize, Call(HypercallFunction.Protect, Buffer, 0x10_0000));
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.Protect, 0x7777_0000, 128));
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.Protect, Image, 128));                 // kernel address from CPL 3
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.Protect, 0x8000_0000_0000_0000, 128)); // not canonical
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.Protect, Buffer + 0x7FC0, 128));       // runs off the mapping
        var r = GuardProtectRequest.Create(GuardProtectFlags.None);
        r.Version = 2;
        Assert.Equal(HypercallStatus.BadRequest, Protect(r));
        r = GuardProtectRequest.Create((GuardProtectFlags)0x80);
        Assert.Equal(HypercallStatus.BadRequest, Protect(r));
        r = GuardProtectRequest.Create(GuardProtectFlags.None);
        r.Signature = 1;
        Assert.Equal(HypercallStatus.BadRequest, Protect(r));
        var unknown = Call((HypercallFunction)0x7FFF);
        Assert.Equal(HypercallStatus.UnknownFunction, unknown);
        Assert.False(GuardState.Protected);
        Assert.Equal(0, GuardState.RangeCount);
        Assert.False(GuardHypercalls.SecretIssued);
        Assert.Empty(_platform.Protected);
    }

    [Fact]
    public void A_caller_not_in_long_mode_or_without_a_kernel_gets_unsupported()
    {
        _cpu.GuardedMsrs[GuardMsrs.Lstar] = 0xFFFF_FFFF_9000_0000;   // LSTAR not mapped: no kernel found
        Assert.Equal(HypercallStatus.Unsupported, Call(HypercallFunction.Protect));
        _cpu.GuardedMsrs[GuardMsrs.Lstar] = Lstar;
        _cpu.Efer = 0;
        _cpu.Cr4 = 0x20;
        _cpu.Cr3 = 0x10_0000;
        Assert.Equal(HypercallStatus.Unsupported, Call(HypercallFunction.Protect));
        Assert.False(GuardState.Protected);
        Assert.False(GuardHypercalls.SecretIssued);
    }

    [Fact]
    public void A_nested_map_that_cannot_change_a_range_fails_protect_and_keeps_only_what_it_protected()
    {
        _platform.FailAt = NestedMapResult.NoTables;
        _platform.FailIndex = 2;
        Assert.Equal(HypercallStatus.Unsupported, Protect(WithHints()));
        Assert.Equal(2, GuardState.RangeCount);
        Assert.Equal(2, _platform.Protected.Count);
        Assert.False(GuardState.Protected);
        Assert.False(GuardHypercalls.SecretIssued);

        // A retry once the map can: the rest is added, the first two are not protected twice.
        _platform.FailAt = null;
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Assert.Equal(5, GuardState.RangeCount);
        Assert.Equal(5, _platform.Protected.Count);
    }

    [Fact]
    public void Too_many_ranges_fail_protect_and_add_nothing()
    {
        // 70 more rodata pages right after the rodata, each in a page of its own physically: more ranges than GuardState holds.
        for (ulong i = 0; i < 70; i++) _g.Map(Image + 0x20_8000 + (i * 0x1000), 0x200_0000 + (i * 0x2000), P | Nx);
        Assert.Equal(HypercallStatus.Unsupported, Call(HypercallFunction.Protect));
        Assert.Equal(0, GuardState.RangeCount);
        Assert.Empty(_platform.Protected);
    }

    [Fact]
    public void Read_only_pages_after_the_images_rodata_run_are_not_guarded()
    {
        // A freed image page reused by a module or BPF program and made read-only (CPA changes the image alias too):
        // after a writable page, beyond the rodata run, so not the kernel's own.
        _g.Map(Image + 0x20_9000, 0x300_0000, P | Nx);
        _g.Map(Image + 0x20_a000, 0x300_1000, P | Nx);
        _g.Map(Image + 0x20_8000, 0x300_2000, P | W | Nx);
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Assert.Equal(GuardObject.None, GuardState.ObjectAt(0x300_0000));
        Assert.Equal(GuardObject.None, GuardState.ObjectAt(0x300_1000));
        Assert.Equal(GuardObject.KernelReadOnlyData, GuardState.ObjectAt(0x120_7000));
    }

    [Fact]
    public void Hypervisor_memory_mapped_by_the_kernel_is_not_a_range()
    {
        _g.Bounds = new PhysicalBounds(1UL << 52, 0x120_5000, 0x1000);   // one rodata page is the hypervisor's
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Protect));
        Assert.Equal(GuardObject.None, GuardState.ObjectAt(0x120_5000));
        Assert.Equal(GuardObject.KernelReadOnlyData, GuardState.ObjectAt(0x120_6000));
    }

    private void Record(int n, GuardVerdict verdict = GuardVerdict.Block)
    {
        for (int i = 0; i < n; i++)
        {
            var e = new GuardEvent { Object = GuardObject.SysCallTable, Verdict = verdict, Rip = 0xFFFF_FFFF_C000_1000 + (ulong)i };
            GuardState.Record(ref e);
        }
    }

    private GuardEvent[] EventsInBuffer(int count)
    {
        byte[] bytes = ReadGuest(Buffer, count * sizeof(GuardEvent));
        return MemoryMarshal.Cast<byte, GuardEvent>(bytes).ToArray();
    }

    [Fact]
    public void Read_events_copies_after_the_cursor_and_reports_what_was_missed()
    {
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Record(3);
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.ReadEvents, Buffer, 0x4000, Secret, rsi: 0));
        Assert.Equal(3UL, _cpu.Regs.Rbx);
        Assert.Equal(3UL, _cpu.Regs.Rcx);
        Assert.Equal(0UL, _cpu.Regs.Rsi);
        GuardEvent[] read = EventsInBuffer(3);
        Assert.Equal([1UL, 2UL, 3UL], Array.ConvertAll(read, e => e.Sequence));
        Assert.Equal(0xFFFF_FFFF_C000_1002UL, read[2].Rip);

        // After 2: one event. Room for one event only: the oldest first.
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.ReadEvents, Buffer, 0x4000, Secret, rsi: 2));
        Assert.Equal(1UL, _cpu.Regs.Rbx);
        Record(4);   // 7 in all, the ring holds 4: 1-3 overwritten
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.ReadEvents, Buffer, (ulong)sizeof(GuardEvent) + 5, Secret, rsi: 1));
        Assert.Equal(1UL, _cpu.Regs.Rbx);
        Assert.Equal(7UL, _cpu.Regs.Rcx);
        Assert.Equal(2UL, _cpu.Regs.Rsi);   // 2 and 3 were lost to this reader
        Assert.Equal(4UL, EventsInBuffer(1)[0].Sequence);
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.ReadEvents, Buffer, 0x4000, Secret, rsi: 7));
        Assert.Equal(0UL, _cpu.Regs.Rbx);
    }

    [Fact]
    public void Read_events_refuses_bad_buffers_and_writes_nothing()
    {
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Record(2);
        Assert.Equal(HypercallStatus.BadBufferSize, Call(HypercallFunction.ReadEvents, Buffer, 16, Secret));
        Assert.Equal((ulong)sizeof(GuardEvent), _cpu.Regs.Rcx);
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.ReadEvents, 0x7777_0000, 0x1000, Secret));
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.ReadEvents, Buffer + 0x7FC0, 0x1000, Secret));   // second event off the mapping
        Assert.All(ReadGuest(Buffer + 0x7FC0, 64), b => Assert.Equal(0, b));
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.ReadEvents, Image + 0x20_4000, 0x1000, Secret)); // kernel rodata from CPL 3

        // Ring 0 with CR0.WP clear passes the walk's write check: the guarded page is refused all the same.
        _cpu.Cpl = 0;
        _cpu.Cr3 = _g.Cr3;
        _cpu.Cr0 &= ~(1UL << 16);
        Assert.Equal(HypercallStatus.BadAddress, Call(HypercallFunction.ReadEvents, Image + 0x20_5000, 0x1000, Secret));
        Assert.All(_g.Page(0x120_5000), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Status_reports_the_guard_in_counts()
    {
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Lock, rdx: Secret));
        Record(5);
        Record(2, GuardVerdict.Audit);
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Status, Buffer, 0x8000));
        StatusReport report = MemoryMarshal.Read<StatusReport>(ReadGuest(Buffer, sizeof(StatusReport)));
        GuardStatus g = report.Guard;
        Assert.Equal(1u, g.Protected);
        Assert.Equal(1u, g.Locked);
        Assert.Equal(0u, g.AuditOnly);
        Assert.Equal(5u, g.RangeCount);
        Assert.Equal(2u, g.Ranges[(int)GuardObject.KernelReadOnlyData]);
        Assert.Equal(0x20_3000UL, g.Bytes[(int)GuardObject.KernelText]);
        Assert.Equal(0x2000UL, g.Bytes[(int)GuardObject.SysCallTable]);
        Assert.Equal(0x1000UL, g.Bytes[(int)GuardObject.InterruptTable]);
        Assert.Equal(5UL, g.Verdicts[((int)GuardObject.SysCallTable * GuardStatus.VerdictSlots) + (int)GuardVerdict.Block]);
        Assert.Equal(2UL, g.Verdicts[((int)GuardObject.SysCallTable * GuardStatus.VerdictSlots) + (int)GuardVerdict.Audit]);
        Assert.Equal(7UL, g.NewestEvent);
        Assert.Equal(3UL, g.EventsLost);
        Assert.Equal(4u, g.EventCapacity);
        Assert.Equal(7u, g.PinnedMsrs);
        Assert.Equal(1UL << 16, g.PinnedCr0);
        Assert.Equal((uint)DefaultRules.Count, g.RuleCount);
        Assert.Equal(GuardRuleSource.BuiltIn, g.RuleSource);
        Assert.Equal(GuardVerdict.Audit, GuardState.Rules[DefaultRules.JumpIntoNewCodeRule].Verdict);
        Assert.Equal(1u, g.RangesHidden);   // no secret presented: counts only
        Assert.Equal(0u, g.ListedCount);
    }

    [Fact]
    public void Status_lists_the_ranges_to_the_caller_with_the_secret_only()
    {
        Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Status, Buffer, 0x8000, Secret ^ 1));
        GuardStatus hidden = MemoryMarshal.Read<StatusReport>(ReadGuest(Buffer, sizeof(StatusReport))).Guard;
        Assert.Equal(1u, hidden.RangesHidden);
        Assert.Equal(0u, hidden.ListedCount);
        Assert.Equal(0UL, hidden.Listed[0].Gpa);

        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Status, Buffer, 0x8000, Secret));
        GuardStatus g = MemoryMarshal.Read<StatusReport>(ReadGuest(Buffer, sizeof(StatusReport))).Guard;
        Assert.Equal(0u, g.RangesHidden);
        Assert.Equal(g.RangeCount, g.ListedCount);
        for (int i = 0; i < g.ListedCount; i++)
        {
            ref GuardedRange r = ref GuardState.Range(i);
            Assert.Equal(r.Gpa, g.Listed[i].Gpa);
            Assert.Equal(r.Size, g.Listed[i].Size);
            Assert.Equal(r.Object, g.Listed[i].Object);
        }
        ulong text = 0;
        for (int i = 0; i < g.ListedCount; i++) if (g.Listed[i].Object == GuardObject.KernelText) text += g.Listed[i].Size;
        Assert.Equal(g.Bytes[(int)GuardObject.KernelText], text);
    }

    /// <summary>The guard's part of the Status report, through the hypercall.</summary>
    private GuardStatus StatusGuard()
    {
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Status, Buffer, 0x8000));
        return MemoryMarshal.Read<StatusReport>(ReadGuest(Buffer, sizeof(StatusReport))).Guard;
    }

    [Fact]
    public void Guard_abi_layouts()
    {
        Assert.Equal(128, sizeof(GuardProtectRequest));
        Assert.Equal(0, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.Signature)));
        Assert.Equal(16, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.Flags)));
        Assert.Equal(24, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.SysCallTable)));
        Assert.Equal(32, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.TextStart)));
        Assert.Equal(64, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.InterruptTable)));
        Assert.Equal(72, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.RuleSet)));
        Assert.Equal(80, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.RuleSetSize)));
        Assert.Equal("VIGILPRO", System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(GuardProtectRequest.ExpectedSignature)));
        Assert.Equal(1184, sizeof(GuardStatus));
        Assert.Equal(784, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.RuleSource)));
        Assert.Equal(788, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.GdtWatched)));
        Assert.Equal(792, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.ListedCount)));
        Assert.Equal(796, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.RangesHidden)));
        Assert.Equal(800, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.Listed)));
        Assert.Equal(24, sizeof(GuardRangeStatus));
        Assert.Equal(40 + (64 * 272), (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Guard)));
        Assert.Equal(0, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.Protected)));
        Assert.Equal(32, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.NewestEvent)));
        Assert.Equal(40, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.EventsLost)));
        Assert.Equal(80, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.Ranges)));
        Assert.Equal(144, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.Bytes)));
        Assert.Equal(272, (int)Marshal.OffsetOf<GuardStatus>(nameof(GuardStatus.Verdicts)));
        Assert.True(GuardStatus.ObjectSlots > (int)GuardObject.GlobalTableDescriptor);
        Assert.Equal((ushort)2, (ushort)HypercallFunction.Protect);
        Assert.Equal((ushort)3, (ushort)HypercallFunction.Lock);
        Assert.Equal((ushort)4, (ushort)HypercallFunction.ReadEvents);
        Assert.True(Hypercalls.ScratchBytesPerCpu >= (ulong)sizeof(GuardEvent) * 64);

        // The pool holds a log of 1024 events, and tables for every guarded range split at both ends.
        Assert.True(GuardEventLog.BytesFor(1024) <= PoolSize.GuardEventLogBytes && PoolSize.GuardEventLogBytes < GuardEventLog.BytesFor(2048));
        Assert.Equal(0UL, PoolSize.GuardEventLogBytes % 4096);
        Assert.True(PoolSize.NestedReserveTables >= NestedMapService.TablesPerChange * GuardState.MaxRanges);
    }
}
