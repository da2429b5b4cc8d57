using System;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

public sealed class GuardRulesTests
{
    private static GuardAttempt Attempt(GuardObject o, GuardAccess a = GuardAccess.Write, GuardContent content = GuardContent.None,
        ActorRegion region = ActorRegion.ModuleArea, byte cpl = 0, bool locked = true, ulong rip = 0xffff_ffff_c000_1234, ulong cr3 = 0x1234_5000, ulong detail = 0)
        => new() { Object = o, Access = a, Content = content, Region = region, Cpl = cpl, Locked = locked, Rip = rip, Cr3 = cr3, Detail = detail };

    private static (GuardRuleSetHeader Header, GuardRule[] Rules) Defaults(bool strict = false)
    {
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        GuardRuleSetHeader header = DefaultRules.Write(rules, strict);
        return (header, rules);
    }

    private static GuardVerdict Judge(GuardAttempt a, bool strict = false)
    {
        var (header, rules) = Defaults(strict);
        return GuardRules.Judge(header, rules, a, out _);
    }

    [Fact]
    public void The_built_in_set_is_valid_and_complete()
    {
        var (header, rules) = Defaults();
        Assert.Null(GuardRules.Validate(header, rules));
        Assert.Equal((uint)DefaultRules.Count, header.Count);
        Assert.Equal(GuardVerdict.Block, header.Default);
        Assert.Equal(GuardContent.JumpIntoNewCode, rules[DefaultRules.JumpIntoNewCodeRule].ContentAll);
    }

    // Each technique of the attack suite (issue #10 item 7), as the guard will see its attempt.
    public static TheoryData<string, GuardAttempt> Attacks => new()
    {
        { "a: raw MOV CR0 clearing WP", Attempt(GuardObject.ControlRegister0, GuardAccess.RegisterWrite, GuardContent.PinnedBitCleared, detail: 1UL << 16) },
        { "a/b/c: write sys_call_table", Attempt(GuardObject.SysCallTable) },
        { "d: text_poke JMP to module code", Attempt(GuardObject.KernelText) },
        { "e: JMP over a prologue through the direct map", Attempt(GuardObject.KernelText, region: ActorRegion.ModuleArea) },
        { "f: IDT gate", Attempt(GuardObject.InterruptTable) },
        { "g: LIDT to a module IDT", Attempt(GuardObject.InterruptTableRegister, GuardAccess.RegisterWrite) },
        { "h: LGDT", Attempt(GuardObject.GlobalTableRegister, GuardAccess.RegisterWrite) },
        { "i: WRMSR LSTAR", Attempt(GuardObject.SyscallMsr, GuardAccess.RegisterWrite, detail: 0xC000_0082) },
        { "j: clear SMEP", Attempt(GuardObject.ControlRegister4, GuardAccess.RegisterWrite, GuardContent.PinnedBitCleared, detail: 1UL << 20) },
        { "k: clear SMAP", Attempt(GuardObject.ControlRegister4, GuardAccess.RegisterWrite, GuardContent.PinnedBitCleared, detail: 1UL << 21) },
        { "l: const ops table in rodata", Attempt(GuardObject.KernelReadOnlyData) },
        { "m: the hypervisor's memory", Attempt(GuardObject.HypervisorMemory) },
        { "undecodable write to text", Attempt(GuardObject.KernelText, content: GuardContent.Undecodable) },
        { "user space writing a guarded page", Attempt(GuardObject.KernelText, region: ActorRegion.User, cpl: 3) },
        { "clear EFER.NXE", Attempt(GuardObject.Efer, GuardAccess.RegisterWrite, GuardContent.PinnedBitCleared, detail: 1UL << 11) },
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public void Every_technique_is_blocked_by_the_built_in_set(string technique, GuardAttempt attempt)
    {
        Assert.Equal(GuardVerdict.Block, Judge(attempt));
        Assert.Equal(GuardVerdict.Block, Judge(attempt, strict: true));
        Assert.False(string.IsNullOrEmpty(technique));
    }

    // The kernel's own paths (item 8): allowed, at most recorded.
    public static TheoryData<string, GuardAttempt, GuardVerdict> Benign => new()
    {
        { "jump label / static key", Attempt(GuardObject.KernelText, content: GuardContent.KernelPatch, region: ActorRegion.KernelText), GuardVerdict.Allow },
        { "ftrace into ftrace_caller", Attempt(GuardObject.KernelText, content: GuardContent.KernelPatch, region: ActorRegion.KernelText), GuardVerdict.Allow },
        { "ftrace/BPF trampoline of a later module", Attempt(GuardObject.KernelText, content: GuardContent.KernelPatch | GuardContent.JumpIntoNewCode), GuardVerdict.Audit },
        { "CPU online rewrites LSTAR", Attempt(GuardObject.SyscallMsr, GuardAccess.RegisterWrite, GuardContent.ExpectedValue, detail: 0xC000_0082), GuardVerdict.Allow },
        { "CPU online LIDT of idt_table", Attempt(GuardObject.InterruptTableRegister, GuardAccess.RegisterWrite, GuardContent.ExpectedValue), GuardVerdict.Allow },
        { "CR4.PGE toggle", Attempt(GuardObject.ControlRegister4, GuardAccess.RegisterWrite, detail: 1UL << 7), GuardVerdict.Allow },
        { "setting CR0.WP", Attempt(GuardObject.ControlRegister0, GuardAccess.RegisterWrite, detail: 1UL << 16), GuardVerdict.Allow },
        { "a write of what is there", Attempt(GuardObject.SysCallTable, content: GuardContent.Unchanged), GuardVerdict.Allow },
    };

    [Theory]
    [MemberData(nameof(Benign))]
    public void The_kernels_own_paths_go_through(string path, GuardAttempt attempt, GuardVerdict expected)
    {
        Assert.Equal(expected, Judge(attempt));
        Assert.False(string.IsNullOrEmpty(path));
    }

    [Fact]
    public void A_strict_set_blocks_calls_into_code_loaded_after_protect()
    {
        var a = Attempt(GuardObject.KernelText, content: GuardContent.KernelPatch | GuardContent.JumpIntoNewCode);
        Assert.Equal(GuardVerdict.Audit, Judge(a));
        Assert.Equal(GuardVerdict.Block, Judge(a, strict: true));
        var (header, rules) = Defaults();
        GuardRules.Judge(header, rules, a, out ushort index);
        Assert.Equal(DefaultRules.JumpIntoNewCodeRule, index);
    }

    [Fact]
    public void The_first_matching_rule_wins_and_no_match_gives_the_default()
    {
        var rules = new GuardRule[]
        {
            new() { Objects = GuardRules.Bit(GuardObject.SyscallMsr), Verdict = GuardVerdict.Audit },
            new() { Objects = GuardRules.Bit(GuardObject.SyscallMsr), Verdict = GuardVerdict.Allow },
        };
        var header = new GuardRuleSetHeader { Signature = GuardRuleSetHeader.ExpectedSignature, Version = 1, Count = 2, Default = GuardVerdict.BlockAndFault };
        Assert.Equal(GuardVerdict.Audit, GuardRules.Judge(header, rules, Attempt(GuardObject.SyscallMsr), out ushort first));
        Assert.Equal(0, first);
        Assert.Equal(GuardVerdict.BlockAndFault, GuardRules.Judge(header, rules, Attempt(GuardObject.KernelText), out ushort none));
        Assert.Equal(GuardEvent.DefaultRule, none);
    }

    [Fact]
    public void Audit_only_turns_every_block_into_an_audit()
    {
        var (header, rules) = Defaults();
        header.AuditOnly = 1;
        Assert.Equal(GuardVerdict.Audit, GuardRules.Judge(header, rules, Attempt(GuardObject.SysCallTable), out _));
        header.Default = GuardVerdict.BlockAndFault;
        header.Count = 0;
        Assert.Equal(GuardVerdict.Audit, GuardRules.Judge(header, rules, Attempt(GuardObject.SysCallTable), out _));
    }

    [Fact]
    public void Every_condition_of_a_rule_must_hold()
    {
        var rule = new GuardRule
        {
            Objects = GuardRules.Bit(GuardObject.KernelText),
            Accesses = GuardRules.Bit(GuardAccess.Write),
            Regions = GuardRules.Bit(ActorRegion.KernelText),
            Cpls = 1,
            Lock = LockCondition.Locked,
            ContentAll = GuardContent.KernelPatch,
            ContentNone = GuardContent.JumpIntoNewCode,
            RipFirst = 0xffff_ffff_8100_0000,
            RipLast = 0xffff_ffff_81ff_ffff,
            Cr3 = 0x1234_5000,
            Verdict = GuardVerdict.Allow,
        };
        var match = Attempt(GuardObject.KernelText, content: GuardContent.KernelPatch, region: ActorRegion.KernelText, rip: 0xffff_ffff_8100_1000, cr3: 0x1234_5001);
        Assert.True(GuardRules.Matches(rule, match));   // CR3's PCID bits do not count
        Assert.False(GuardRules.Matches(rule, match with { Object = GuardObject.KernelReadOnlyData }));
        Assert.False(GuardRules.Matches(rule, match with { Access = GuardAccess.RegisterWrite }));
        Assert.False(GuardRules.Matches(rule, match with { Region = ActorRegion.ModuleArea }));
        Assert.False(GuardRules.Matches(rule, match with { Cpl = 3 }));
        Assert.False(GuardRules.Matches(rule, match with { Locked = false }));
        Assert.False(GuardRules.Matches(rule, match with { Content = GuardContent.None }));
        Assert.False(GuardRules.Matches(rule, match with { Content = GuardContent.KernelPatch | GuardContent.JumpIntoNewCode }));
        Assert.False(GuardRules.Matches(rule, match with { Rip = 0xffff_ffff_c000_0000 }));
        Assert.False(GuardRules.Matches(rule, match with { Cr3 = 0x9999_9000 }));
        Assert.True(GuardRules.Matches(rule with { Lock = LockCondition.Unlocked }, match with { Locked = false }));
        Assert.False(GuardRules.Matches(rule with { Lock = LockCondition.Unlocked }, match));
    }

    [Fact]
    public void Msr_rules_name_an_index_and_register_rules_name_bits()
    {
        var lstar = new GuardRule { Objects = GuardRules.Bit(GuardObject.SyscallMsr), Detail = 0xC000_0082 };
        Assert.True(GuardRules.Matches(lstar, Attempt(GuardObject.SyscallMsr, detail: 0xC000_0082)));
        Assert.False(GuardRules.Matches(lstar, Attempt(GuardObject.SyscallMsr, detail: 0xC000_0081)));
        var smepSmap = new GuardRule { Objects = GuardRules.Bit(GuardObject.ControlRegister4), Detail = (1UL << 20) | (1UL << 21) };
        Assert.True(GuardRules.Matches(smepSmap, Attempt(GuardObject.ControlRegister4, detail: 1UL << 21)));
        Assert.False(GuardRules.Matches(smepSmap, Attempt(GuardObject.ControlRegister4, detail: 1UL << 11)));
    }

    [Fact]
    public void Validation_names_what_is_wrong()
    {
        var (good, rules) = Defaults();
        Assert.Null(GuardRules.Validate(good, rules));
        Assert.Equal("not a rule set (signature)", GuardRules.Validate(good with { Signature = 1 }, rules));
        Assert.Equal("rule set version not supported", GuardRules.Validate(good with { Version = 2 }, rules));
        Assert.Equal("too many rules", GuardRules.Validate(good with { Count = GuardRuleSetHeader.MaxRules + 1 }, rules));
        Assert.Equal("default verdict out of range", GuardRules.Validate(good with { Default = (GuardVerdict)7 }, rules));
        Assert.Equal("audit-only flag out of range", GuardRules.Validate(good with { AuditOnly = 2 }, rules));

        string? Bad(Func<GuardRule, GuardRule> change)
        {
            var copy = (GuardRule[])rules.Clone();
            copy[3] = change(copy[3]);
            return GuardRules.Validate(good, copy);
        }
        Assert.Equal("rule names an unknown object class", Bad(r => r with { Objects = 1u << 20 }));
        Assert.Equal("rule names an unknown object class", Bad(r => r with { Objects = 1 }));   // GuardObject.None
        Assert.Equal("rule names an unknown access", Bad(r => r with { Accesses = 1 << 5 }));
        Assert.Equal("rule names an unknown actor region", Bad(r => r with { Regions = 1 << 6 }));
        Assert.Equal("rule names a privilege level above 3", Bad(r => r with { Cpls = 0x10 }));
        Assert.Equal("rule lock condition out of range", Bad(r => r with { Lock = (LockCondition)3 }));
        Assert.Equal("rule names unknown content", Bad(r => r with { ContentAll = (GuardContent)0x8000 }));
        Assert.Equal("rule verdict out of range", Bad(r => r with { Verdict = (GuardVerdict)4 }));
        Assert.Equal("rule RIP range is empty", Bad(r => r with { RipFirst = 2, RipLast = 1 }));
    }

    [Fact]
    public unsafe void Layouts_are_fixed()
    {
        Assert.Equal(64, sizeof(GuardRule));
        Assert.Equal(24, sizeof(GuardRuleSetHeader));
        Assert.Equal(112, sizeof(GuardEvent));
        Assert.Equal(0, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.Sequence)));
        Assert.Equal(16, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.Cpu)));
        Assert.Equal(24, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.Rule)));
        Assert.Equal(32, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.Gpa)));
        Assert.Equal(64, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.Detail)));
        Assert.Equal(80, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.Old)));
        Assert.Equal(96, (int)Marshal.OffsetOf<GuardEvent>(nameof(GuardEvent.New)));
        Assert.Equal(8, (int)Marshal.OffsetOf<GuardRule>(nameof(GuardRule.ContentAll)));
        Assert.Equal(16, (int)Marshal.OffsetOf<GuardRule>(nameof(GuardRule.RipFirst)));
        Assert.Equal(GuardEventLog.HeaderSize, sizeof(GuardEventLog));
        Assert.Equal("VIGILRUL", System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(GuardRuleSetHeader.ExpectedSignature)));
    }
}
