// The guard's verdicts: an ordered rule list, first match wins, the set's default otherwise. Pure
// logic over hv/Abi/Guard.cs, compiled twice (into the hypervisor, where it runs in root mode with no
// allocation, and into the tests).
using System;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>One attempt as the rules see it: what, how, by whom, with what content, in which lock state.</summary>
    public struct GuardAttempt
    {
        public GuardObject Object;
        public GuardAccess Access;
        public ActorRegion Region;
        public byte Cpl;
        public GuardContent Content;
        public bool Locked;
        public ulong Rip;
        public ulong Cr3;

        /// <summary>MSR index or the control-register bits concerned (<see cref="GuardRule.Detail"/>).</summary>
        public ulong Detail;
    }

    public static class GuardRules
    {
        /// <summary>CR3's address bits (PCID and the no-flush bit left out), for matching an actor's address space.</summary>
        public const ulong Cr3AddressMask = 0x000F_FFFF_FFFF_F000;

        public static uint Bit(GuardObject o) => 1u << (int)o;

        public static byte Bit(GuardAccess a) => (byte)(1 << (int)a);

        public static byte Bit(ActorRegion r) => (byte)(1 << (int)r);

        /// <summary>True when every condition of <paramref name="rule"/> holds for <paramref name="a"/>.</summary>
        public static bool Matches(in GuardRule rule, in GuardAttempt a)
        {
            if (rule.Objects != 0 && (rule.Objects & Bit(a.Object)) == 0) return false;
            if (rule.Accesses != 0 && (rule.Accesses & Bit(a.Access)) == 0) return false;
            if (rule.Regions != 0 && (rule.Regions & Bit(a.Region)) == 0) return false;
            if (rule.Cpls != 0 && (a.Cpl > 3 || (rule.Cpls & (1 << a.Cpl)) == 0)) return false;
            if (rule.Lock == LockCondition.Locked && !a.Locked) return false;
            if (rule.Lock == LockCondition.Unlocked && a.Locked) return false;
            if ((a.Content & rule.ContentAll) != rule.ContentAll) return false;
            if ((a.Content & rule.ContentNone) != 0) return false;
            if ((rule.RipFirst | rule.RipLast) != 0 && (a.Rip < rule.RipFirst || a.Rip > rule.RipLast)) return false;
            if (rule.Cr3 != 0 && (a.Cr3 & Cr3AddressMask) != (rule.Cr3 & Cr3AddressMask)) return false;
            if (rule.Detail != 0 && !DetailMatches(rule.Detail, a)) return false;
            return true;
        }

        // A syscall MSR is named by its index; a control register's rule names bits, any of which may be concerned.
        private static bool DetailMatches(ulong ruleDetail, in GuardAttempt a)
            => a.Object is GuardObject.ControlRegister0 or GuardObject.ControlRegister4 or GuardObject.Efer
                ? (ruleDetail & a.Detail) != 0
                : ruleDetail == a.Detail;

        /// <summary>
        /// The verdict for <paramref name="a"/>: the first matching rule's, else the set's default; in audit-only
        /// mode a block becomes an audit. <paramref name="rule"/> is the matching rule's index, or
        /// <see cref="GuardEvent.DefaultRule"/>.
        /// </summary>
        public static GuardVerdict Judge(in GuardRuleSetHeader header, ReadOnlySpan<GuardRule> rules, in GuardAttempt a, out ushort rule)
        {
            GuardVerdict verdict = header.Default;
            rule = GuardEvent.DefaultRule;
            int count = (int)Math.Min(header.Count, (uint)rules.Length);
            for (int i = 0; i < count; i++)
            {
                if (!Matches(rules[i], a)) continue;
                verdict = rules[i].Verdict;
                rule = (ushort)i;
                break;
            }
            if (header.AuditOnly != 0 && verdict >= GuardVerdict.Block) verdict = GuardVerdict.Audit;
            return verdict;
        }

        /// <summary>
        /// Checks a rule set handed to the hypervisor: signature, version, count, every field in range. Returns
        /// null when it can be used, else what is wrong (for the caller's error and log).
        /// </summary>
        public static string? Validate(in GuardRuleSetHeader header, ReadOnlySpan<GuardRule> rules)
        {
            if (header.Signature != GuardRuleSetHeader.ExpectedSignature) return "not a rule set (signature)";
            if (header.Version != GuardRuleSetHeader.CurrentVersion) return "rule set version not supported";
            if (header.Count > GuardRuleSetHeader.MaxRules || header.Count > (uint)rules.Length) return "too many rules";
            if (header.Default > GuardVerdict.BlockAndFault) return "default verdict out of range";
            if (header.AuditOnly > 1) return "audit-only flag out of range";
            const uint knownObjects = (1u << ((int)GuardObject.GlobalTableDescriptor + 1)) - 2;   // bits 1..12
            const byte knownAccesses = (1 << ((int)GuardAccess.RegisterWrite + 1)) - 2;
            const byte knownRegions = (1 << ((int)ActorRegion.User + 1)) - 1;
            const ushort knownContent = (ushort)((((ushort)GuardContent.PageWalkUpdate) << 1) - 1);
            for (int i = 0; i < (int)header.Count; i++)
            {
                ref readonly GuardRule r = ref rules[i];
                if ((r.Objects & ~knownObjects) != 0) return "rule names an unknown object class";
                if ((r.Accesses & ~knownAccesses) != 0) return "rule names an unknown access";
                if ((r.Regions & ~knownRegions) != 0) return "rule names an unknown actor region";
                if ((r.Cpls & ~0xF) != 0) return "rule names a privilege level above 3";
                if (r.Lock > LockCondition.Locked) return "rule lock condition out of range";
                if (((ushort)r.ContentAll & ~knownContent) != 0 || ((ushort)r.ContentNone & ~knownContent) != 0) return "rule names unknown content";
                if (r.Verdict > GuardVerdict.BlockAndFault) return "rule verdict out of range";
                if (r.RipFirst > r.RipLast) return "rule RIP range is empty";
            }
            return null;
        }
    }
}
