// The built-in rule set: what the guard does when nobody hands it other rules. It blocks every
// tampering technique the attack suite tries (tests/guest/modules) and lets the kernel's own paths
// through (text patching by target and content, CPU bring-up rewriting its MSRs with the same
// values, LIDT/LGDT of the kernel's own tables). The rules themselves are policy/default.policy and
// policy/strict.policy, compiled into DefaultRules.g.cs by `vigil generate` (each rule commented with
// the technique it stops there). Compiled twice.
using System;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    public static partial class DefaultRules
    {
        /// <summary>
        /// Writes the built-in set into <paramref name="rules"/> and returns its header. <paramref name="strict"/>
        /// blocks text patches that lead into code loaded after Protect (ftrace/kprobe hooks of later modules);
        /// the default only records them, since legitimate tracing does the same.
        /// </summary>
        public static GuardRuleSetHeader Write(Span<GuardRule> rules, bool strict = false)
        {
            if (rules.Length < Count) return default;
            return strict ? WriteStrict(rules) : WriteDefault(rules);
        }
    }
}
