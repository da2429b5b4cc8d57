// TEMPORARY stand-in for the compiled-policy validator of branch policylang (hv/Core/Guard/GuardPolicyImage.cs):
// the same entry point, over a stand-in format (a GuardRuleSetHeader and its rules, no hash). Deleted when that
// branch is merged; PolicyDelivery.cs is the only caller.
using System;
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    public readonly ref struct GuardPolicyView
    {
        public GuardPolicyView(GuardRuleSetHeader header, ReadOnlySpan<GuardRule> rules, ReadOnlySpan<byte> sourceHash)
        {
            Header = header;
            Rules = rules;
            SourceHash = sourceHash;
        }

        public GuardRuleSetHeader Header { get; }

        public ReadOnlySpan<GuardRule> Rules { get; }

        public ReadOnlySpan<byte> SourceHash { get; }
    }

    public static unsafe class GuardPolicyImage
    {
        public static string? Validate(ReadOnlySpan<byte> image, out GuardPolicyView view)
        {
            view = default;
            if (image.Length < sizeof(GuardRuleSetHeader)) return "shorter than a policy header";
            byte* b = (byte*)Unsafe.AsPointer(ref Unsafe.AsRef(in image[0]));   // stand-in: callers pass memory that does not move
            GuardRuleSetHeader h = *(GuardRuleSetHeader*)b;
            if (h.Count > GuardRuleSetHeader.MaxRules) return "too many rules";
            if (image.Length != sizeof(GuardRuleSetHeader) + ((int)h.Count * sizeof(GuardRule))) return "size does not match the rule count";
            var rules = new ReadOnlySpan<GuardRule>(b + sizeof(GuardRuleSetHeader), (int)h.Count);
            string? problem = GuardRules.Validate(h, rules);
            if (problem != null) return problem;
            view = new GuardPolicyView(h, rules, default);
            return null;
        }
    }
}
