// Delivering a compiled policy (issue 11, item 4): the one place that turns a compiled policy image
// (`vigil policy compile`, hv/Abi/GuardPolicy.cs) into the rule set the guard judges with. vigil.efi
// checks the ESP's file with it before it hands the file over, the hypervisor checks its own copy again
// (it never trusts the loader's check) at launch and for `vigild protect --policy`. Every field is
// checked by GuardPolicyImage.Validate (version, size, hash, every field in range); a refusal is a reason
// in words, never a crash.
// Compiled three times: into vigil.efi, into the hypervisor (root mode, no allocation) and into the tests.
using System;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    public static class PolicyDelivery
    {
        /// <summary>
        /// Validates <paramref name="image"/> whole and copies its rules into <paramref name="rules"/> (room for
        /// GuardRuleSetHeader.MaxRules) and the first bytes of its source hash into <paramref name="hash"/>. Returns null
        /// when the policy can be put in force, else why not.
        /// </summary>
        public static string? Check(ReadOnlySpan<byte> image, out GuardRuleSetHeader header, Span<GuardRule> rules, Span<byte> hash)
        {
            string? problem = Check(image, out header, rules, hash, out int rule);
            return problem == null || rule < 0 ? problem : problem + " (rule " + rule.ToString() + ")";
        }

        /// <summary>As above without allocating (root mode): the reason is a literal, <paramref name="rule"/> the rule it is about (else -1).</summary>
        public static string? Check(ReadOnlySpan<byte> image, out GuardRuleSetHeader header, Span<GuardRule> rules, Span<byte> hash, out int rule)
        {
            header = default;
            rule = -1;
            hash.Clear();
            if (image.Length == 0) return "the file is empty";
            if (image.Length > PolicyStatus.MaxImageBytes) return "larger than the 64 KiB a delivered policy may have";
            GuardPolicyError error = GuardPolicyImage.Validate(image, out GuardPolicyView view, out rule);
            if (error != GuardPolicyError.None) return GuardPolicyImage.Describe(error);
            GuardRuleSetHeader h = view.RuleSetHeader;
            ReadOnlySpan<GuardRule> found = view.Rules;
            if (h.Count > GuardRuleSetHeader.MaxRules || h.Count > (uint)found.Length || h.Count > (uint)rules.Length) return "too many rules";
            // The rule set as the guard keeps it: checked once more with the guard's own rule check (same as a raw rule set).
            string? problem = GuardRules.Validate(h, found);
            if (problem != null) return problem;
            for (int i = 0; i < (int)h.Count; i++) rules[i] = found[i];
            ReadOnlySpan<byte> sourceHash = view.SourceHash;
            int n = Math.Min(sourceHash.Length, hash.Length);
            for (int i = 0; i < n; i++) hash[i] = sourceHash[i];
            header = h;
            return null;
        }
    }
}
