// The built-in rule set: what the guard does when nobody hands it other rules. It blocks every
// tampering technique the attack suite tries (tests/guest/modules) and lets the kernel's own paths
// through (text patching by target and content, CPU bring-up rewriting its MSRs with the same
// values, LIDT/LGDT of the kernel's own tables). Compiled twice.
using System;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    public static class DefaultRules
    {
        /// <summary>Rules in the built-in set.</summary>
        public const int Count = 12;

        /// <summary>The index of the rule for a text patch that jumps into code the kernel did not have at Protect.</summary>
        public const int JumpIntoNewCodeRule = 3;

        /// <summary>
        /// Writes the built-in set into <paramref name="rules"/> and returns its header. <paramref name="strict"/>
        /// blocks text patches that lead into code loaded after Protect (ftrace/kprobe hooks of later modules);
        /// the default only records them, since legitimate tracing does the same.
        /// </summary>
        public static GuardRuleSetHeader Write(Span<GuardRule> rules, bool strict = false)
        {
            if (rules.Length < Count) return default;
            const uint memory = (1u << (int)GuardObject.KernelText) | (1u << (int)GuardObject.KernelReadOnlyData)
                | (1u << (int)GuardObject.SysCallTable) | (1u << (int)GuardObject.InterruptTable) | (1u << (int)GuardObject.GlobalTableDescriptor);
            const uint pinnedRegisters = (1u << (int)GuardObject.ControlRegister0) | (1u << (int)GuardObject.ControlRegister4) | (1u << (int)GuardObject.Efer);
            const uint tableRegisters = (1u << (int)GuardObject.InterruptTableRegister) | (1u << (int)GuardObject.GlobalTableRegister);
            const uint msrs = 1u << (int)GuardObject.SyscallMsr;

            int i = 0;
            // The hypervisor's memory: never, by anyone.
            rules[i++] = Rule(1u << (int)GuardObject.HypervisorMemory, GuardVerdict.Block);
            // A write that changes nothing changes nothing (a value written again, bytes equal to what is there).
            rules[i++] = Rule(memory | pinnedRegisters | msrs | tableRegisters, GuardVerdict.Allow, GuardContent.Unchanged);
            // The kernel's own text patching: jump labels, static calls, ftrace, kprobes, BPF — judged by shape and destination.
            rules[i++] = Rule(1u << (int)GuardObject.KernelText, GuardVerdict.Allow, GuardContent.KernelPatch, GuardContent.JumpIntoNewCode);
            // The same shapes leading into code loaded after Protect: how ftrace/kprobe-based rootkits hook.
            rules[i++] = Rule(1u << (int)GuardObject.KernelText, strict ? GuardVerdict.Block : GuardVerdict.Audit, GuardContent.JumpIntoNewCode);
            // The page walker setting an accessed/dirty bit in an entry on a guarded page: not an attack, but Linux keeps no
            // page tables there, so it is recorded.
            rules[i++] = Rule(memory, GuardVerdict.Audit, GuardContent.PageWalkUpdate);
            // Any other write to code, read-only data, the syscall table, an IDT, or a GDT's fixed descriptors.
            rules[i++] = Rule(memory, GuardVerdict.Block);
            // Clearing CR0.WP, CR4.SMEP/SMAP/UMIP, EFER.NXE/SCE.
            rules[i++] = Rule(pinnedRegisters, GuardVerdict.Block, GuardContent.PinnedBitCleared);
            // Setting them, or changing bits that are not pinned.
            rules[i++] = Rule(pinnedRegisters, GuardVerdict.Allow);
            // CPU bring-up (boot, hotplug, resume) writes the syscall MSRs with the values they had at Protect.
            rules[i++] = Rule(msrs, GuardVerdict.Allow, GuardContent.ExpectedValue);
            rules[i++] = Rule(msrs, GuardVerdict.Block);
            // LIDT/LGDT of the kernel's own tables (CPU bring-up, resume, the null IDT before reboot).
            rules[i++] = Rule(tableRegisters, GuardVerdict.Allow, GuardContent.ExpectedValue);
            rules[i++] = Rule(tableRegisters, GuardVerdict.Block);
            return new GuardRuleSetHeader
            {
                Signature = GuardRuleSetHeader.ExpectedSignature,
                Version = GuardRuleSetHeader.CurrentVersion,
                Count = (uint)i,
                Default = GuardVerdict.Block,   // fail closed: an attempt no rule foresaw is blocked and recorded
            };
        }

        private static GuardRule Rule(uint objects, GuardVerdict verdict, GuardContent all = GuardContent.None, GuardContent none = GuardContent.None)
            => new GuardRule { Objects = objects, Verdict = verdict, ContentAll = all, ContentNone = none };
    }
}
