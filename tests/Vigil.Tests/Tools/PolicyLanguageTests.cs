using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Tool;
using Vigil.Tool.Commands;
using Vigil.Tool.Policy;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Tools;

/// <summary>The policy language: grammar, errors at exact positions, suggestions, compile/show round trip, replay, the fuzzer.</summary>
public sealed class PolicyLanguageTests(ITestOutputHelper output)
{
    private static PolicyCompilation Compile(string text) => PolicyCompiler.Compile("test.policy", text);

    private static CompiledPolicy Ok(string text)
    {
        PolicyCompilation c = Compile(text);
        Assert.True(c.Policy != null, c.Format("test.policy"));
        return c.Policy!;
    }

    private const string Header = "enforce\ndefault block\n";

    // ---- grammar ---------------------------------------------------------------------------------------------------

    [Fact]
    public void Every_matcher_compiles_into_its_field()
    {
        CompiledPolicy p = Ok("""
            # every construct once
            audit-only
            default audit

            block-and-fault write, read hypervisor-memory by user, kernel-other cpl 0, 3 after-lock   # trailing comment
            block register-write cr4.smep, cr4.smap, msr.lstar, msr.star, cr0.wp, idtr when pinned-bit-cleared and expected-value unless unchanged or undecodable before-lock
            	allow kernel-text rip 0xffff_ffff_c000_0000..0xffffffffc0ffffff cr3 0x1234000 by module-area
            audit anything
            allow gdt-descriptor, efer.nxe rip 0xffffffff81000000 cpl 0
            """);
        Assert.Equal(GuardPolicyMode.AuditOnly, p.Mode);
        Assert.Equal(GuardVerdict.Audit, p.Default);
        Assert.Equal(10, p.Rules.Count);

        GuardRule r = p.Rules[0];
        Assert.Equal(GuardVerdict.BlockAndFault, r.Verdict);
        Assert.Equal(GuardRules.Bit(GuardObject.HypervisorMemory), r.Objects);
        Assert.Equal(GuardRules.Bit(GuardAccess.Write) | GuardRules.Bit(GuardAccess.Read), r.Accesses);
        Assert.Equal(GuardRules.Bit(ActorRegion.User) | GuardRules.Bit(ActorRegion.KernelOther), r.Regions);
        Assert.Equal(0b1001, r.Cpls);
        Assert.Equal(LockCondition.Locked, r.Lock);
        Assert.Equal(new RuleOrigin(5, "# every construct once\naudit-only\ndefault audit\n\n".Length,
            "block-and-fault write, read hypervisor-memory by user, kernel-other cpl 0, 3 after-lock   # trailing comment".Length), p.Origins[0]);

        // One source rule naming bits of two registers, two MSRs and a plain class: a rule per register and MSR, in the order named.
        GuardRule[] expanded = [.. p.Rules.Skip(1).Take(5)];
        Assert.All(p.Origins.Skip(1).Take(5), o => Assert.Equal(6, o.Line));
        Assert.Equal((GuardRules.Bit(GuardObject.ControlRegister4), GuardDetail.Cr4Smep | GuardDetail.Cr4Smap), (expanded[0].Objects, expanded[0].Detail));
        Assert.Equal((GuardRules.Bit(GuardObject.SyscallMsr), (ulong)GuardDetail.Lstar), (expanded[1].Objects, expanded[1].Detail));
        Assert.Equal((GuardRules.Bit(GuardObject.SyscallMsr), (ulong)GuardDetail.Star), (expanded[2].Objects, expanded[2].Detail));
        Assert.Equal((GuardRules.Bit(GuardObject.ControlRegister0), GuardDetail.Cr0Wp), (expanded[3].Objects, expanded[3].Detail));
        Assert.Equal((GuardRules.Bit(GuardObject.InterruptTableRegister), 0UL), (expanded[4].Objects, expanded[4].Detail));
        Assert.All(expanded, x =>
        {
            Assert.Equal(GuardVerdict.Block, x.Verdict);
            Assert.Equal(GuardRules.Bit(GuardAccess.RegisterWrite), x.Accesses);
            Assert.Equal(GuardContent.PinnedBitCleared | GuardContent.ExpectedValue, x.ContentAll);
            Assert.Equal(GuardContent.Unchanged | GuardContent.Undecodable, x.ContentNone);
            Assert.Equal(LockCondition.Unlocked, x.Lock);
        });

        r = p.Rules[6];
        Assert.Equal((0xffff_ffff_c000_0000UL, 0xffff_ffff_c0ff_ffffUL, 0x123_4000UL), (r.RipFirst, r.RipLast, r.Cr3));
        Assert.Equal(GuardRules.Bit(ActorRegion.ModuleArea), r.Regions);
        Assert.Equal(0u, p.Rules[7].Objects);
        Assert.Equal(GuardVerdict.Audit, p.Rules[7].Verdict);
        Assert.Equal((GuardRules.Bit(GuardObject.GlobalTableDescriptor), 0UL), (p.Rules[8].Objects, p.Rules[8].Detail));
        Assert.Equal((GuardRules.Bit(GuardObject.Efer), GuardDetail.EferNxe), (p.Rules[9].Objects, p.Rules[9].Detail));
        Assert.Equal((0xffffffff81000000UL, 0xffffffff81000000UL, (byte)1), (p.Rules[9].RipFirst, p.Rules[9].RipLast, p.Rules[9].Cpls));

        // What the compiler writes, the hypervisor accepts.
        Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(p.ToBlob(), out _));
    }

    [Fact]
    public void Names_are_unique_lowercase_and_cover_every_enum_value()
    {
        foreach (GuardObject o in Enum.GetValues<GuardObject>().Where(o => o != GuardObject.None)) Assert.Contains(PolicyNames.Objects, x => x.Object == o && x.Detail == 0);
        foreach (GuardVerdict v in Enum.GetValues<GuardVerdict>()) Assert.Contains(PolicyNames.Verdicts, x => x.Value == v);
        foreach (GuardAccess a in Enum.GetValues<GuardAccess>().Where(a => a != GuardAccess.None)) Assert.Contains(PolicyNames.Accesses, x => x.Value == a);
        foreach (ActorRegion r in Enum.GetValues<ActorRegion>()) Assert.Contains(PolicyNames.Regions, x => x.Value == r);
        foreach (GuardContent c in Enum.GetValues<GuardContent>().Where(c => c != 0)) Assert.Contains(PolicyNames.Shapes, x => x.Value == c);
        var all = new[] { PolicyNames.Objects.Select(o => o.Name), PolicyNames.Verdicts.Select(v => v.Name), PolicyNames.Accesses.Select(a => a.Name),
            PolicyNames.Shapes.Select(s => s.Name), PolicyNames.Clauses.Select(c => c.Name), ["default", "enforce", "audit-only", PolicyNames.Anything] };
        foreach (var names in all) Assert.Equal(names.Count(), names.Distinct().Count());
        Assert.All(all.SelectMany(n => n), n => Assert.Equal(n.ToLowerInvariant(), n));
        // The brief's spellings.
        foreach (string name in new[] { "kernel-text", "kernel-rodata", "sys-call-table", "idt", "idtr", "gdtr", "gdt-descriptor", "cr0.wp", "cr4.smep", "cr4.smap",
            "cr4.umip", "efer.nxe", "efer.sce", "msr.lstar", "msr.star", "msr.cstar", "msr.sfmask", "msr.sysenter-cs", "msr.sysenter-esp", "msr.sysenter-eip", "hypervisor-memory" })
        {
            Assert.Contains(PolicyNames.Objects, o => o.Name == name);
        }
    }

    [Fact]
    public void Blank_lines_comments_tabs_and_crlf_are_fine_and_origins_are_byte_exact()
    {
        string text = "\uFEFF# ünïcode comment\r\n\r\n\tenforce\t# mode\r\ndefault   block\r\nallow kernel-text when patch-site # ok\r\n";
        CompiledPolicy p = Ok(text);
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        RuleOrigin o = p.Origins[0];
        Assert.Equal(5, o.Line);
        Assert.Equal("allow kernel-text when patch-site # ok", Encoding.UTF8.GetString(bytes, o.SourceOffset, o.SourceLength));
        Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(p.ToBlob(), out GuardPolicyView view));
        Assert.Equal("allow kernel-text when patch-site # ok", Encoding.UTF8.GetString(view.RuleText(0)));
    }

    // ---- errors ----------------------------------------------------------------------------------------------------

    // A line after the header, the error's column and length, words its message must contain, the suggestion.
    public static TheoryData<string, int, int, string, string?> Mistakes => new()
    {
        { "block write kernel-txt unless patch-site", 13, 10, "unknown object 'kernel-txt'", "kernel-text" },
        { "write sys-call-table", 1, 5, "has no verdict", null },
        { "block rip 0xffffffffc0ffffff..0xffffffffc0000000", 0, 0, "", null },
        { "block kernel-text rip 0xffffffffc0ffffff..0xffffffffc0000000", 23, 38, "empty RIP range: 0xffffffffc0ffffff is above 0xffffffffc0000000", null },
        { "block kernel-text rip 0xfffffffgc0000000", 23, 18, "'0xfffffffgc0000000' is not a number", null },
        { "block kernel-text rip 0x1_0000_0000_0000_0000", 23, 23, "does not fit in 64 bits", null },
        { "block kernel-text rip", 22, 1, "a number is missing", null },
        { "block kernel-text rip 0", 23, 1, "`rip 0` cannot be expressed", null },
        { "blokc idt", 1, 5, "unexpected 'blokc'", "block" },
        { "Block idt", 1, 5, "unexpected 'Block'", "block" },
        { "block kernel-text idt", 19, 3, "unexpected 'idt' after the rule's objects", null },
        { "block kernel-text wehn unchanged", 19, 4, "after the rule's objects", "when" },
        { "block msr.lstr", 7, 8, "unknown object 'msr.lstr'", "msr.lstar" },
        { "block kernel-text by modules", 22, 7, "unknown actor region 'modules'", "module-area" },
        { "block kernel-text by", 21, 1, "`by` names no region", null },
        { "allow cr4 when expectd-value", 16, 13, "unknown content shape 'expectd-value'", "expected-value" },
        { "allow cr4 when", 15, 1, "`when` names no content shape", null },
        { "block msr.lstar when patch-site, unchanged", 32, 1, "joined with `and`", null },
        { "block msr.lstar unless patch-site and unchanged", 35, 3, "joined with `or`, not `and`", null },
        { "block msr.lstar when patch-site or unchanged", 33, 2, "joined with `and`, not `or`", null },
        { "audit write cr0.wp", 13, 6, "'cr0.wp' is never touched by write", null },
        { "audit register-write kernel-text", 22, 11, "'kernel-text' is never touched by register-write", null },
        { "block anything cpl 4", 20, 1, "privilege level 4 does not exist", null },
        { "block anything cpl 0, 0", 23, 1, "privilege level 0 named twice", null },
        { "block anything cpl", 19, 1, "a number is missing", null },
        { "block kernel-text cr3 0x1234567", 23, 9, "0x1234567 is not a page-table base", null },
        { "allow kernel-text when unchanged unless unchanged", 41, 9, "both required (`when`) and excluded (`unless`)", null },
        { "block cr4, cr4.smep", 12, 8, "'cr4.smep' is already covered by 'cr4'", null },
        { "block idt, idt", 12, 3, "object 'idt' named twice", null },
        { "block write, write idt", 14, 5, "access 'write' named twice", null },
        { "block write, idt", 14, 3, "unexpected 'idt'", null },
        { "block anything, idt", 7, 8, "`anything` together with other objects", null },
        { "block idt after-lock before-lock", 22, 11, "given twice in one rule", null },
        { "block idt by user by kernel-other", 19, 2, "`by` given twice in one rule (first at column 11)", null },
        { "block", 6, 1, "the rule names no object", null },
        { "block module-area", 7, 11, "expected an object, found 'module-area'", null },
        { "block idt $", 11, 1, "unexpected '$' after the rule's objects", null },
        { "block idt .", 11, 1, "unexpected '.'", null },
        { "block kernel-text rip -1", 23, 1, "expected a number, found '-'", null },
        { "enforce now", 9, 3, "unexpected 'now'", null },
        { "default", 8, 1, "the default verdict is missing", null },
        { "default blok", 9, 4, "unknown verdict 'blok'", "block" },
        { "default block block", 15, 5, "unexpected 'block'", null },
        { "mode enforce", 1, 4, "the mode line is the mode alone", null },
        { "block idt \u00e9", 11, 1, "unexpected 'é'", null },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public void Each_mistake_is_reported_at_its_exact_place(string line, int column, int length, string message, string? suggestion)
    {
        PolicyCompilation c = Compile(Header + line + "\n");
        Assert.Null(c.Policy);
        if (column == 0)
        {
            // `rip` right after the verdict: rip is no object.
            Assert.Contains(c.Diagnostics, d => d.Line == 3 && d.Message.Contains("rip", StringComparison.Ordinal));
            return;
        }
        PolicyDiagnostic d = Assert.Single(c.Diagnostics);
        Assert.Equal(PolicySeverity.Error, d.Severity);
        Assert.Equal(3, d.Line);
        Assert.Equal((column, length), (d.Column, d.Length));
        Assert.Contains(message, d.Message, StringComparison.Ordinal);
        Assert.Equal(suggestion, d.Suggestion);
        Assert.False(string.IsNullOrEmpty(d.Expected) && !d.Message.Contains("twice", StringComparison.Ordinal), "no 'expected' for: " + d.Message);
    }

    [Fact]
    public void A_diagnostic_shows_file_line_column_the_line_a_caret_what_was_expected_and_the_nearest_name()
    {
        PolicyCompilation c = Compile(Header + "block write kernel-txt unless patch-site\n");
        string text = c.Format("mistakes.policy");
        string expectedObjects = string.Join(", ", PolicyNames.Objects.Select(o => o.Name)) + " or `anything`";
        Assert.Equal(
            "mistakes.policy:3:13: error: unknown object 'kernel-txt'\n"
            + " 3 | block write kernel-txt unless patch-site\n"
            + "   |             ^~~~~~~~~~\n"
            + "   = expected: an object: " + expectedObjects + "\n"
            + "   = did you mean 'kernel-text'?\n", text);
    }

    [Fact]
    public void Every_error_of_a_file_is_reported_not_only_the_first()
    {
        PolicyCompilation c = Compile("enforce\nblokc idt\nblock idt\nwrite idt\nblock kernel-text rip 2..1\n");
        Assert.Equal([2, 4, 5, 6], c.Diagnostics.Select(d => d.Line));
        PolicyDiagnostic eof = c.Diagnostics[^1];
        Assert.Contains("no default verdict", eof.Message, StringComparison.Ordinal);
        Assert.Contains("(end of file)", c.Format("x.policy"), StringComparison.Ordinal);
    }

    [Fact]
    public void Mode_and_default_are_required_once()
    {
        PolicyCompilation c = Compile("block idt\n");
        Assert.Equal(2, c.Diagnostics.Count);
        Assert.All(c.Diagnostics, d => Assert.Equal((2, 1), (d.Line, d.Column)));
        Assert.Contains(c.Diagnostics, d => d.Message.Contains("no mode line", StringComparison.Ordinal));
        c = Compile("enforce\ndefault block\naudit-only\ndefault allow\n");
        Assert.Equal(["a second mode line (the first is on line 1)", "a second default verdict (the first is on line 2)"], c.Diagnostics.Select(d => d.Message));
    }

    [Fact]
    public void More_than_64_rules_is_an_error_at_the_rule_that_overflows()
    {
        var text = new StringBuilder(Header);
        for (int i = 0; i < 32; i++) text.Append($"block msr.lstar, msr.star rip 0x{i + 1:x}\n");   // two rules each: 64
        Assert.Equal(64, Ok(text.ToString()).Rules.Count);
        text.Append("block idt\n");
        PolicyDiagnostic d = Assert.Single(Compile(text.ToString()).Diagnostics);
        Assert.Equal((35, 1), (d.Line, d.Column));
        Assert.Contains("64 rules", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rule_an_earlier_rule_always_takes_first_is_a_warning()
    {
        PolicyCompilation c = Compile(Header + "block kernel-text, idt\nallow kernel-text when patch-site\nallow cr4.smep\nblock cr4 by user\nblock cr4.smep, cr4.smap by user\n");
        Assert.NotNull(c.Policy);
        Assert.Equal([4, 7], c.Diagnostics.Select(d => d.Line));
        Assert.All(c.Diagnostics, d => Assert.Equal(PolicySeverity.Warning, d.Severity));
        Assert.Contains("the rule on line 3 matches every attempt it does", c.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("line 6", c.Diagnostics[1].Message, StringComparison.Ordinal);
        Assert.Empty(Compile(ReadPolicy("default.policy")).Diagnostics);
    }

    [Fact]
    public void Text_that_is_not_utf8_or_holds_nul_is_refused_where_it_is()
    {
        byte[] bad = [.. Encoding.UTF8.GetBytes(Header + "block idt # caf"), 0xE9, .. "\n"u8];
        PolicyDiagnostic d = Assert.Single(PolicyCompiler.Compile("x.policy", bad).Diagnostics);
        Assert.Equal((3, 16), (d.Line, d.Column));
        Assert.Contains("not UTF-8", d.Message, StringComparison.Ordinal);
        d = Assert.Single(Compile(Header + "block idt\0\n").Diagnostics);
        Assert.Equal((3, 10), (d.Line, d.Column));
    }

    [Fact]
    public void Nearest_names_are_suggested_only_when_close()
    {
        string[] objects = [.. PolicyNames.Objects.Select(o => o.Name)];
        Assert.Equal("kernel-text", PolicyNames.Nearest("kernel-txt", objects));
        Assert.Equal("kernel-rodata", PolicyNames.Nearest("kernel-ro", objects));
        Assert.Equal("sys-call-table", PolicyNames.Nearest("syscall-table", objects));
        Assert.Equal("cr4.smep", PolicyNames.Nearest("cr4.semp", objects));
        Assert.Equal("msr.lstar", PolicyNames.Nearest("MSR.LSTAR", objects));
        Assert.Equal("hypervisor-memory", PolicyNames.Nearest("hypervisor", objects));
        Assert.Null(PolicyNames.Nearest("banana", objects));
        Assert.Null(PolicyNames.Nearest("x", objects));
    }

    // ---- compile, show, round trip -----------------------------------------------------------------------------------

    private const string EveryConstruct = "audit-only\ndefault allow\nblock-and-fault write, read hypervisor-memory by user, kernel-other cpl 0, 3 after-lock\n"
        + "block register-write cr4.smep, cr4.umip, msr.sysenter-esp, efer.sce, gdtr when pinned-bit-cleared and expected-value unless unchanged or undecodable before-lock\n"
        + "allow kernel-text rip 0xffffffffc0000000..0xffffffffc0ffffff cr3 0x1234000 by module-area\naudit anything\nallow gdt-descriptor rip 0x10\n";

    public static TheoryData<string> RoundTrips => new()
    {
        ReadPolicy("default.policy"),
        ReadPolicy("strict.policy"),
        EveryConstruct,
        "enforce\ndefault block\n",
    };

    [Theory]
    [MemberData(nameof(RoundTrips))]
    public void Compile_show_compile_gives_the_same_rules(string text)
    {
        CompiledPolicy p = Ok(text);
        byte[] blob = p.ToBlob();
        Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(blob, out GuardPolicyView view));
        string shown = PolicyText.Show(view, "x.pol");
        CompiledPolicy again = Ok(shown);
        Assert.Equal(p.Rules, again.Rules);
        Assert.Equal((p.Mode, p.Default), (again.Mode, again.Default));
        // Every rule of the shown text carries its source line.
        string[] lines = text.Split('\n');
        for (int i = 0; i < p.Rules.Count; i++)
        {
            Assert.Contains($"# rule {i}, test.policy line {p.Origins[i].Line}: {lines[p.Origins[i].Line - 1].Trim()}\n{PolicyText.Rule(p.Rules[i])}\n", shown, StringComparison.Ordinal);
        }
    }

    // ---- the default policy and the built-in rules -------------------------------------------------------------------

    [Theory]
    [InlineData("default.policy", false)]
    [InlineData("strict.policy", true)]
    public void The_policy_files_compile_to_exactly_the_built_in_rules(string file, bool strict)
    {
        CompiledPolicy p = Ok(ReadPolicy(file));
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        GuardRuleSetHeader header = DefaultRules.Write(rules, strict);
        Assert.Equal(rules.AsSpan(0, (int)header.Count).ToArray(), p.Rules);
        Assert.Equal(header.Default, p.Default);
        Assert.Equal(header.AuditOnly != 0, p.Mode == GuardPolicyMode.AuditOnly);
        Assert.Equal(DefaultRules.Count, p.Rules.Count);
        Assert.Equal(strict ? DefaultRules.StrictSourceHash : DefaultRules.DefaultSourceHash, PolicyText.SourceHash(p.Source));
    }

    [Fact]
    public void The_generated_built_in_rules_are_up_to_date()
    {
        string root = Repository.Root();
        var (path, content) = DefaultRulesSource.Generate(root);
        Assert.True(File.ReadAllText(Path.Combine(root, path)) == content, $"{path} is stale: run `make generate`");
    }

    [Fact]
    public void Default_and_strict_differ_only_in_the_jump_into_new_code_rule()
    {
        CompiledPolicy normal = Ok(ReadPolicy("default.policy")), strict = Ok(ReadPolicy("strict.policy"));
        var differ = Enumerable.Range(0, normal.Rules.Count).Where(i => !normal.Rules[i].Equals(strict.Rules[i])).ToList();
        Assert.Equal([DefaultRules.JumpIntoNewCodeRule], differ);
        Assert.Equal(GuardVerdict.Audit, normal.Rules[DefaultRules.JumpIntoNewCodeRule].Verdict);
        Assert.Equal(GuardVerdict.Block, strict.Rules[DefaultRules.JumpIntoNewCodeRule].Verdict);
    }

    [Fact]
    public void The_reference_lists_every_name_and_its_examples_compile()
    {
        string doc = File.ReadAllText(Path.Combine(Repository.Root(), "docs", "policy.md"));
        var names = PolicyNames.Objects.Select(o => o.Name).Concat(PolicyNames.Verdicts.Select(v => v.Name)).Concat(PolicyNames.Accesses.Select(a => a.Name))
            .Concat(PolicyNames.Regions.Select(r => r.Name)).Concat(PolicyNames.Shapes.Select(x => x.Name)).Append(PolicyNames.Anything);
        foreach (string name in names) Assert.Contains($"| `{name}` |", doc, StringComparison.Ordinal);
        foreach (var clause in PolicyNames.Clauses) Assert.Contains($"`{clause.Syntax.Split(' ')[0]}", doc, StringComparison.Ordinal);
        // The first example is a whole policy; the rule examples compile under a header.
        string[] blocks = doc.Split("```");
        Assert.Empty(Compile(blocks[1].TrimStart('\n')).Diagnostics);
        string rules = blocks.Single(b => b.Contains("block write, read hypervisor-memory", StringComparison.Ordinal));
        Assert.Empty(Compile(Header + rules.TrimStart('\n')).Diagnostics);
        // The three typical mistakes it shows are what `check` prints for them today.
        string shown = blocks.Single(b => b.Contains("$ vigil policy check mistakes.policy", StringComparison.Ordinal));
        string dir = Directory.CreateTempSubdirectory("vigil-policy-").FullName;
        try
        {
            string file = Path.Combine(dir, "mistakes.policy");
            File.WriteAllText(file, Header + "block write kernel-txt unless patch-site\nwrite sys-call-table\n"
                + "block write kernel-text by module-area rip 0xffffffffc0ffffff..0xffffffffc0000000\n");
            var (rc, _, stderr) = Run("check", file);
            Assert.Equal(1, rc);
            Assert.Equal(shown.Trim().Split('\n', 2)[1], stderr.Replace(file, "mistakes.policy", StringComparison.Ordinal).TrimEnd('\n'));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    internal static string ReadPolicy(string name) => File.ReadAllText(Path.Combine(Repository.Root(), "policy", name));

    // ---- replay -------------------------------------------------------------------------------------------------------

    // What `vigild events --json` printed for some of the guard scenario's attempts (technique letters from attack.c).
    private const string Events = """
        {"seq":1,"tsc":100,"cpu":0,"object":"kernel-text","access":"write","verdict":"allow","rule":2,"region":"kernel-text","cpl":0,"rip":"0xffffffff81c3a2e5","cr3":"0x1f4e000","gpa":"0x10a2000","linear":"0xffffffff812a2000","detail":"0x0","content":"kernel-patch","old":"0f1f440000","new":"e8b6f2d100"}
        {"seq":2,"tsc":200,"cpu":1,"object":"cr0","access":"register-write","verdict":"block","rule":6,"region":"module-area","cpl":0,"rip":"0xffffffffc0a01234","cr3":"0x2b3c000","gpa":"0x0","linear":"0x0","detail":"0x10000","content":"pinned-bit-cleared","old":"3300058000000000","new":"3300048000000000"}
        {"seq":3,"tsc":300,"cpu":1,"object":"sys-call-table","access":"write","verdict":"block","rule":5,"region":"module-area","cpl":0,"rip":"0xffffffffc0a01300","cr3":"0x2b3c000","gpa":"0x2200a98","linear":"0xffffffff82200a98","detail":"0x0","content":"","old":"1111111111111111","new":"2222222222222222"}

        {"seq":4,"tsc":400,"cpu":0,"object":"syscall-msr","access":"register-write","verdict":"block","rule":9,"region":"module-area","cpl":0,"rip":"0xffffffffc0a01400","cr3":"0x2b3c000","gpa":"0x0","linear":"0x0","detail":"0xc0000082","content":"","old":"","new":""}
        {"seq":5,"tsc":500,"cpu":0,"object":"kernel-text","access":"write","verdict":"audit","rule":3,"region":"kernel-text","cpl":0,"rip":"0xffffffff81c3a2e5","cr3":"0x1f4e000","gpa":"0x10a3000","linear":"0xffffffff812a3000","detail":"0x0","content":"jump-into-new-code","old":"0f1f440000","new":"e8deadbeef"}
        {"seq":6,"tsc":600,"cpu":0,"object":"syscall-msr","access":"register-write","verdict":"allow","rule":8,"region":"kernel-text","cpl":0,"rip":"0xffffffff81001000","cr3":"0x1f4e000","gpa":"0x0","linear":"0x0","detail":"0xc0000082","content":"expected-value","old":"","new":""}
        """;

    private const string Change = """
        enforce
        default block
        block hypervisor-memory
        # try the rollout of a stricter rule for hooks, and let the test module's LSTAR write through
        block kernel-text when jump-into-post-lock-code
        allow kernel-text when patch-site
        allow msr.lstar rip 0xffffffffc0a01400
        block cr0.wp by module-area
        audit anything
        """;

    [Fact]
    public void Replaying_recorded_events_gives_each_the_verdict_and_rule_of_the_policy()
    {
        var errors = new List<string>();
        List<RecordedEvent> events = PolicyReplay.Read(Events.Split('\n'), locked: true, errors);
        Assert.Empty(errors);
        Assert.Equal(6, events.Count);
        Assert.Equal(GuardObject.SyscallMsr, events[3].Attempt.Object);
        Assert.Equal(0xC000_0082UL, events[3].Attempt.Detail);
        Assert.Equal(GuardContent.JumpIntoNewCode, events[4].Attempt.Content);
        Assert.Equal(ActorRegion.ModuleArea, events[1].Attempt.Region);
        Assert.Equal((GuardVerdict.Block, 6), (events[1].Verdict!.Value, events[1].Rule!.Value));

        // The built-in policy gives what was recorded.
        CompiledPolicy builtIn = Ok(ReadPolicy("default.policy"));
        var header = new GuardRuleSetHeader { Count = (uint)builtIn.Rules.Count, Default = builtIn.Default };
        var replayed = PolicyReplay.Replay(header, [.. builtIn.Rules], events);
        Assert.All(replayed, r => Assert.Equal((r.Event.Verdict, r.Event.Rule), (r.Verdict, r.Rule)));

        CompiledPolicy change = Ok(Change);
        header = new GuardRuleSetHeader { Count = (uint)change.Rules.Count, Default = change.Default };
        replayed = PolicyReplay.Replay(header, [.. change.Rules], events);
        Assert.Equal([(GuardVerdict.Allow, 2), (GuardVerdict.Block, 4), (GuardVerdict.Audit, 5), (GuardVerdict.Allow, 3), (GuardVerdict.Block, 1), (GuardVerdict.Audit, 5)],
            replayed.Select(r => (r.Verdict, r.Rule)));
        string text = PolicyReplay.Format(replayed, i => $"line {change.Origins[i].Line}", auditOnly: false);
        output.WriteLine(text);
        Assert.Contains("seq 4 (line 5): register-write msr.lstar by rip 0xffffffffc0a01400 (module-area, cpl 0, cr3 0x2b3c000) after lock\n"
            + "    -> allow by rule 3, line 7  [CHANGED, recorded: block by rule 9]\n", text, StringComparison.Ordinal);
        Assert.Contains("6 events: allow 2, audit 2, block 2, 4 changed from the recorded verdict (allow -> audit: 1, audit -> block: 1, block -> allow: 1, block -> audit: 1)", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Audit_only_and_before_lock_replays_say_so()
    {
        var events = PolicyReplay.Read(Events.Split('\n'), locked: false, []);
        Assert.All(events, e => Assert.False(e.Attempt.Locked));
        CompiledPolicy p = Ok("audit-only\ndefault block\nblock cr0 after-lock\nblock-and-fault cr0 before-lock\n");
        var header = new GuardRuleSetHeader { Count = (uint)p.Rules.Count, Default = p.Default, AuditOnly = 1 };
        var replayed = PolicyReplay.Replay(header, [.. p.Rules], events);
        Assert.Equal((GuardVerdict.Audit, 1, GuardVerdict.BlockAndFault), (replayed[1].Verdict, replayed[1].Rule, replayed[1].Written));
        Assert.Contains("-> audit (audit-only; enforced: block-and-fault) by rule 1", PolicyReplay.Format(replayed, i => "x", auditOnly: true), StringComparison.Ordinal);
    }

    [Fact]
    public void Event_lines_that_cannot_be_used_are_errors_with_their_line()
    {
        var errors = new List<string>();
        var events = PolicyReplay.Read(["{\"object\":\"kernel-txt\",\"access\":\"write\"}", "not json", "[1]", "{\"object\":\"idt\",\"access\":\"write\",\"rip\":\"0xzz\"}",
            "{\"object\":\"idt\",\"access\":\"write\",\"content\":\"kernel-patch,bogus\"}", "{\"object\":\"object-12\",\"access\":\"write\"}"], true, errors);
        Assert.Equal(5, errors.Count);
        Assert.StartsWith("line 1: unknown object \"kernel-txt\" (did you mean \"kernel-text\"?)", errors[0], StringComparison.Ordinal);
        Assert.StartsWith("line 2: not JSON", errors[1], StringComparison.Ordinal);
        Assert.StartsWith("line 3: expected a JSON object", errors[2], StringComparison.Ordinal);
        Assert.StartsWith("line 4: \"rip\": '0xzz' is not a number", errors[3], StringComparison.Ordinal);
        Assert.StartsWith("line 5: unknown content \"bogus\"", errors[4], StringComparison.Ordinal);
        Assert.Equal(GuardObject.GlobalTableDescriptor, Assert.Single(events).Attempt.Object);
    }

    // ---- the command ------------------------------------------------------------------------------------------------

    [Fact]
    public void The_command_checks_compiles_shows_and_tests()
    {
        string dir = Directory.CreateTempSubdirectory("vigil-policy-").FullName;
        try
        {
            string good = Path.Combine(dir, "change.policy"), bad = Path.Combine(dir, "bad.policy"), pol = Path.Combine(dir, "out", "change.pol"), events = Path.Combine(dir, "events.jsonl");
            File.WriteAllText(good, Change);
            File.WriteAllText(bad, Header + "block write kernel-txt\n");
            File.WriteAllText(events, Events);

            var (rc, stdout, stderr) = Run("check", good);
            Assert.Equal(0, rc);
            Assert.Contains("ok: enforce, default block, 6 rules of 64, source sha256 ", stdout, StringComparison.Ordinal);
            Assert.Equal("", stderr);

            (rc, stdout, stderr) = Run("check", bad);
            Assert.Equal(1, rc);
            Assert.StartsWith(bad + ":3:13: error: unknown object 'kernel-txt'", stderr, StringComparison.Ordinal);
            Assert.EndsWith(bad + ": 1 error\n", stderr.ReplaceLineEndings("\n"), StringComparison.Ordinal);

            (rc, _, _) = Run("compile", bad, "-o", pol);
            Assert.Equal(1, rc);
            Assert.False(File.Exists(pol));
            (rc, stdout, _) = Run("compile", good, "-o", pol);
            Assert.Equal(0, rc);
            Assert.Contains($"-> {pol} (", stdout, StringComparison.Ordinal);

            (rc, stdout, _) = Run("show", pol);
            Assert.Equal(0, rc);
            Assert.Contains("# rule 3, change.policy line 7: allow msr.lstar rip 0xffffffffc0a01400\nallow msr.lstar rip 0xffffffffc0a01400\n", stdout.ReplaceLineEndings("\n"), StringComparison.Ordinal);

            // The same replay from the text and from the compiled file.
            (rc, stdout, _) = Run("test", good, events);
            Assert.Equal(0, rc);
            Assert.Contains("-> allow by rule 3, line 7: allow msr.lstar rip 0xffffffffc0a01400  [CHANGED, recorded: block by rule 9]", stdout, StringComparison.Ordinal);
            (rc, string fromBlob, _) = Run("test", pol, events);
            Assert.Equal(0, rc);
            Assert.Contains("-> allow by rule 3, change.policy line 7: allow msr.lstar rip 0xffffffffc0a01400  [CHANGED", fromBlob, StringComparison.Ordinal);
            (rc, stdout, _) = Run("test", good, events, "--before-lock");
            Assert.Contains("as before Lock", stdout, StringComparison.Ordinal);

            byte[] damaged = File.ReadAllBytes(pol);
            damaged[^1] ^= 1;
            File.WriteAllBytes(pol, damaged);
            (rc, _, stderr) = Run("show", pol);
            Assert.Equal(1, rc);
            Assert.Contains("integrity hash mismatch", stderr, StringComparison.Ordinal);

            Assert.Throws<UsageException>(() => Run("compile", good));
            Assert.Throws<UsageException>(() => Run("frobnicate", good));
            Assert.Throws<ToolException>(() => Run("check", Path.Combine(dir, "missing.policy")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int Rc, string Stdout, string Stderr) Run(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int rc = PolicyCommand.Run(args, stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    // ---- the fuzzer -------------------------------------------------------------------------------------------------

    /// <summary>
    /// Thousands of random and mutated texts: the compiler never throws, always says where the error is (a line of the
    /// text or the one after it, a column on that line), and whatever it accepts the hypervisor's validator accepts.
    /// </summary>
    [Fact]
    public void Random_and_mutated_text_never_makes_the_compiler_throw()
    {
        var random = new Random(1111);
        string[] seeds = [ReadPolicy("default.policy"), ReadPolicy("strict.policy"), EveryConstruct, Change];
        string[] words = [.. PolicyNames.Objects.Select(o => o.Name), .. PolicyNames.Verdicts.Select(v => v.Name), .. PolicyNames.Accesses.Select(a => a.Name),
            .. PolicyNames.Regions.Select(r => r.Name), .. PolicyNames.Shapes.Select(s => s.Name), .. PolicyNames.Clauses.Select(c => c.Name),
            "default", "enforce", "audit-only", "anything", ",", "..", "#", "0x", "0xffffffffc0000000", "3", "99999999999999999999999", "\n", "\r\n", "\t", "\0", "é", "\uD83D\uDE00", "and", "or"];
        int accepted = 0, errors = 0;
        const int Cases = 4000;
        for (int n = 0; n < Cases; n++)
        {
            byte[] text = (n % 4) switch
            {
                0 => RandomBytes(random),
                1 => Encoding.UTF8.GetBytes(string.Join(random.Next(3) == 0 ? "\n" : " ", Enumerable.Range(0, random.Next(1, 40)).Select(_ => words[random.Next(words.Length)]))),
                _ => MutateText(Encoding.UTF8.GetBytes(seeds[random.Next(seeds.Length)]), random, words),
            };
            PolicyCompilation c;
            try
            {
                c = PolicyCompiler.Compile("fuzz.policy", text);
                _ = c.Format("fuzz.policy");
            }
            catch (Exception e)
            {
                Assert.Fail($"case {n}: {e}\ntext: {Convert.ToBase64String(text)}");
                return;
            }
            foreach (var d in c.Diagnostics)
            {
                Assert.InRange(d.Line, 1, c.Lines.Count + 1);
                if (d.Line <= c.Lines.Count) Assert.InRange(d.Column, 1, c.Lines[d.Line - 1].Length + 1);
                Assert.False(string.IsNullOrWhiteSpace(d.Message));
            }
            if (c.Policy != null)
            {
                accepted++;
                Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(c.Policy.ToBlob(), out _));
            }
            else
            {
                errors++;
            }
        }
        output.WriteLine($"{Cases} texts: {accepted} compiled, {errors} refused with errors");
        Assert.True(accepted > 100 && errors > 1000);
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 300)];
        random.NextBytes(bytes);
        // Mostly printable, so lines and words form.
        for (int i = 0; i < bytes.Length; i++)
        {
            if (random.Next(4) != 0) bytes[i] = (byte)" \n,.#0123456789abcdefxlockwriteblkidt-"[random.Next(38)];
        }
        return bytes;
    }

    private static byte[] MutateText(byte[] text, Random random, string[] words)
    {
        var list = new List<byte>(text);
        for (int k = random.Next(1, 6); k > 0; k--)
        {
            int at = list.Count == 0 ? 0 : random.Next(list.Count);
            switch (random.Next(5))
            {
                case 0 when list.Count > 0: list.RemoveRange(at, Math.Min(list.Count - at, random.Next(1, 20))); break;
                case 1: list.InsertRange(at, Encoding.UTF8.GetBytes(words[random.Next(words.Length)])); break;
                case 2 when list.Count > 0: list[at] ^= (byte)(1 << random.Next(8)); break;
                case 3 when list.Count > 0: list[at] = (byte)random.Next(256); break;
                default: list.InsertRange(at, Encoding.UTF8.GetBytes(" ")); break;
            }
        }
        return [.. list];
    }
}
