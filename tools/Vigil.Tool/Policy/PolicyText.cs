using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Tool.Policy;

/// <summary>Compiled rules back to the language: each GuardRule as one line that compiles to exactly that rule.</summary>
public static class PolicyText
{
    /// <summary>One rule as a line of the policy language.</summary>
    public static string Rule(GuardRule r)
    {
        var parts = new List<string> { PolicyNames.Name(r.Verdict) };
        var accesses = PolicyNames.Accesses.Where(a => (r.Accesses & GuardRules.Bit(a.Value)) != 0).Select(a => a.Name).ToList();
        if (accesses.Count > 0) parts.Add(string.Join(", ", accesses));
        parts.Add(Objects(r));
        var regions = PolicyNames.Regions.Where(x => (r.Regions & GuardRules.Bit(x.Value)) != 0).Select(x => x.Name).ToList();
        if (regions.Count > 0) parts.Add("by " + string.Join(", ", regions));
        if ((r.RipFirst | r.RipLast) != 0) parts.Add(r.RipFirst == r.RipLast ? $"rip 0x{r.RipFirst:x}" : $"rip 0x{r.RipFirst:x}..0x{r.RipLast:x}");
        var cpls = Enumerable.Range(0, 4).Where(c => (r.Cpls & (1 << c)) != 0).Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (cpls.Count > 0) parts.Add("cpl " + string.Join(", ", cpls));
        if (r.Cr3 != 0) parts.Add($"cr3 0x{r.Cr3:x}");
        if (r.ContentAll != 0) parts.Add("when " + string.Join(" and ", PolicyNames.ShapeNames(r.ContentAll)));
        if (r.ContentNone != 0) parts.Add("unless " + string.Join(" or ", PolicyNames.ShapeNames(r.ContentNone)));
        if (r.Lock == LockCondition.Locked) parts.Add("after-lock");
        if (r.Lock == LockCondition.Unlocked) parts.Add("before-lock");
        return string.Join(' ', parts);
    }

    /// <summary>The rule's objects: class names, or for a register rule with a detail the bits or MSR it names.</summary>
    public static string Objects(GuardRule r)
    {
        if (r.Objects == 0) return PolicyNames.Anything;
        var names = new List<string>();
        for (int bit = 0; bit < 32; bit++)
        {
            if ((r.Objects & (1u << bit)) == 0) continue;
            var o = (GuardObject)bit;
            if (r.Detail == 0)
            {
                names.Add(PolicyNames.Name(o));
                continue;
            }
            ulong detail = r.Detail;
            var named = PolicyNames.Objects.Where(x => x.Object == o && x.Detail != 0
                && (o == GuardObject.SyscallMsr ? x.Detail == detail : (x.Detail & detail) == x.Detail)).ToList();
            names.AddRange(named.Select(x => x.Name));
            ulong left = o == GuardObject.SyscallMsr ? (named.Count == 0 ? detail : 0) : detail & ~named.Aggregate(0UL, (all, x) => all | x.Detail);
            if (left != 0) names.Add($"{PolicyNames.Name(o)}(detail 0x{left:x})");
        }
        return string.Join(", ", names);
    }

    /// <summary>What `vigil policy show` prints for a validated blob: a policy that compiles to the same rules, each with its source line.</summary>
    public static string Show(GuardPolicyView view, string file)
    {
        var sb = new StringBuilder();
        string name = Encoding.UTF8.GetString(view.Name);
        sb.Append("# ").Append(file).Append(": compiled from ").Append(name).Append(", format ").Append(GuardPolicyHeader.CurrentVersion)
            .Append(", ").Append(view.Rules.Length).Append(view.Rules.Length == 1 ? " rule" : " rules").Append('\n');
        sb.Append("# source sha256 ").Append(Convert.ToHexStringLower(view.SourceHash)).Append(" (").Append(view.Source.Length).Append(" bytes embedded)\n");
        sb.Append(view.Mode == GuardPolicyMode.AuditOnly ? "audit-only" : "enforce").Append('\n');
        sb.Append("default ").Append(PolicyNames.Name(view.Default)).Append('\n');
        for (int i = 0; i < view.Rules.Length; i++)
        {
            string source = Encoding.UTF8.GetString(view.RuleText(i)).Trim();
            sb.Append('\n').Append("# rule ").Append(i).Append(", ").Append(name).Append(" line ").Append(view.Lines[i].Line).Append(": ").Append(source).Append('\n');
            sb.Append(Rule(view.Rules[i])).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>SHA-256 of a policy's text, as `check` and `compile` print it.</summary>
    public static string SourceHash(byte[] source) => Convert.ToHexStringLower(SHA256.HashData(source));
}
