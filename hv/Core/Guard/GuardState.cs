// The guard's state, shared by every CPU: whether the kernel is protected and locked, what is guarded
// (guest-physical ranges with their object class), the pinned register state, the rule set and the
// event log. Written only by the Protect/Lock hypercalls (one CPU at a time, under the lock below);
// read by every CPU's exit handlers. A CPU arms its own interception (CR masks or intercepts, MSR
// bitmap bits, descriptor-table exiting) when the generation it armed differs from Generation, so a
// CPU that comes back online, or that was in the guest when Protect ran, picks the pins up before its
// next entry. Memory ranges are shared by all CPUs through the one nested map (write-protected there
// through the nested-map service). Compiled twice; no allocation (storage is static or from the pool).
using System;
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>A guest-physical range the guard write-protects, and what it is.</summary>
    public struct GuardedRange
    {
        /// <summary>First byte (page-aligned).</summary>
        public ulong Gpa;

        /// <summary>Bytes (a multiple of 4 KiB).</summary>
        public ulong Size;

        public GuardObject Object;

        public readonly bool Contains(ulong gpa) => gpa - Gpa < Size;
    }

    /// <summary>The register state the guard pins, as the kernel had it at Protect.</summary>
    public struct GuardPins
    {
        /// <summary>CR0 bits that must stay set (WP).</summary>
        public ulong Cr0Set;

        /// <summary>CR4 bits that must stay set (SMEP, SMAP, UMIP where set at Protect).</summary>
        public ulong Cr4Set;

        /// <summary>EFER bits that must stay set (NXE, SCE).</summary>
        public ulong EferSet;

        public ulong Lstar;
        public ulong Star;
        public ulong Cstar;
        public ulong Sfmask;
        public ulong SysenterCs;
        public ulong SysenterEsp;
        public ulong SysenterEip;

        /// <summary>The kernel's IDT (one table shared by every CPU in Linux), as LIDT loads it.</summary>
        public ulong IdtBase;

        public ushort IdtLimit;

        /// <summary>The GDT limit every CPU's GDT has (Linux: one page per CPU, GDT_SIZE - 1).</summary>
        public ushort GdtLimit;
    }

    public static unsafe class GuardState
    {
        /// <summary>Guarded ranges the state holds (the kernel's text, rodata, syscall table, IDT: a handful in practice).</summary>
        public const int MaxRanges = 64;

        /// <summary>CPUs whose GDT base the guard remembers (Vigil supports at most 64 CPUs).</summary>
        public const int MaxCpus = 64;

#pragma warning disable CS0649   // s_lock and Storage.Ranges are written through pointers (LockWord, Range)
        private static uint s_lock;
#pragma warning restore CS0649

        private static Storage s_storage;

        /// <summary>The kernel asked to be guarded and the guard is in force.</summary>
        public static volatile bool Protected;

        /// <summary>One-way until reset: nothing can be unguarded or relaxed.</summary>
        public static volatile bool Locked;

        /// <summary>Bumped after every change of pins or ranges; each CPU re-arms when its own copy differs.</summary>
        public static volatile uint Generation;

        public static GuardPins Pins;

        /// <summary>
        /// The core kernel's text as the kernel executes it (filled by Protect with the ranges; 0 size: unknown):
        /// its first linear address, the guest-physical address that maps there, and its size. The write handler
        /// classifies actors by it (ActorRegion.KernelText) and the text-patch judge finds where a guest-physical
        /// byte of text executes (Linux's core text is physically contiguous: one image).
        /// </summary>
        public static ulong TextLinear, TextGpa, TextSize;

        /// <summary>The rule set in force (DefaultRules until someone hands over another one).</summary>
        public static GuardRuleSetHeader RuleHeader;

        /// <summary>Where the rule set in force came from (Status reports it).</summary>
        public static GuardRuleSource RuleSource;

        /// <summary>The event log (from the pool, set once at Protect), or null.</summary>
        public static GuardEventLog* Events;

        public static int RangeCount { get; private set; }

        public static ReadOnlySpan<GuardRule> Rules => new ReadOnlySpan<GuardRule>(Unsafe.AsPointer(ref s_storage.Rules[0]), (int)Math.Min(RuleHeader.Count, GuardRuleSetHeader.MaxRules));

        public static ref GuardedRange Range(int index) => ref ((GuardedRange*)Unsafe.AsPointer(ref s_storage.Ranges[0]))[index];

        /// <summary>The GDT base CPU <paramref name="cpu"/> had when it was last armed (0: not known).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ref ulong GdtBase(uint cpu) => ref s_storage.GdtBases[cpu % MaxCpus];

        /// <summary>The class of the guarded range holding <paramref name="gpa"/>, or None.</summary>
        public static GuardObject ObjectAt(ulong gpa)
        {
            int count = RangeCount;
            for (int i = 0; i < count; i++)
            {
                ref GuardedRange r = ref Range(i);
                if (r.Contains(gpa)) return r.Object;
            }

            return GuardObject.None;
        }

        /// <summary>Adds a range (Protect, holding <see cref="LockWord"/>). False when the table is full.</summary>
        public static bool AddRange(ulong gpa, ulong size, GuardObject o)
        {
            if (RangeCount >= MaxRanges || size == 0) return false;
            Range(RangeCount) = new GuardedRange { Gpa = gpa, Size = size, Object = o };
            RangeCount++;
            return true;
        }

        /// <summary>
        /// Takes back the ranges from <paramref name="count"/> on (Protect, holding <see cref="LockWord"/>, when it could
        /// not finish: ranges found but not write-protected in the nested map). Never below what was published before.
        /// </summary>
        public static void TruncateRanges(int count)
        {
            if (count >= 0 && count < RangeCount) RangeCount = count;
        }

        /// <summary>Replaces the rule set (already validated by GuardRules.Validate).</summary>
        public static void SetRules(in GuardRuleSetHeader header, ReadOnlySpan<GuardRule> rules)
        {
            int n = Math.Min(rules.Length, GuardRuleSetHeader.MaxRules);
            for (int i = 0; i < n; i++) s_storage.Rules[i] = rules[i];
            GuardRuleSetHeader h = header;
            h.Count = (uint)n;
            RuleHeader = h;
        }

        /// <summary>Judges an attempt against the rules in force (audit-only turns a block into audit).</summary>
        public static GuardVerdict Judge(in GuardAttempt attempt, out ushort rule)
        {
            GuardVerdict v = GuardRules.Judge(RuleHeader, Rules, attempt, out rule);
            if (RuleHeader.AuditOnly != 0 && v is GuardVerdict.Block or GuardVerdict.BlockAndFault) v = GuardVerdict.Audit;
            return v;
        }

        /// <summary>Counts the verdict and appends the event when the verdict records one. Returns its sequence (0: not recorded).</summary>
        public static ulong Record(ref GuardEvent e)
        {
            GuardEventLog* log = Events;
            if (log == null) return 0;
            log->Count(e.Object, e.Verdict);
            return e.Verdict == GuardVerdict.Allow ? 0 : log->Append(ref e);
        }

        /// <summary>
        /// The word that serializes the writers of the state (Protect, Lock, rule changes): taken with the CPU's
        /// lock primitive (INestedMapCpus.TryLock / Unlock in the hypervisor).
        /// </summary>
        public static uint* LockWord => (uint*)Unsafe.AsPointer(ref s_lock);

        /// <summary>Publishes a change (writer, holding the lock): every CPU re-arms before its next entry.</summary>
        public static void Publish() => Generation = Generation + 1;

        /// <summary>Back to the state at launch (tests).</summary>
        public static void Reset()
        {
            Protected = false;
            Locked = false;
            Generation = 0;
            Pins = default;
            TextLinear = TextGpa = TextSize = 0;
            RuleHeader = default;
            RuleSource = GuardRuleSource.None;
            Events = null;
            RangeCount = 0;
            s_storage = default;
            LaunchPins.Reset();
            GuardDescriptors.Reset();
        }

        private struct Storage
        {
#pragma warning disable CS0649
            public RangeArray Ranges;
#pragma warning restore CS0649
            public RuleArray Rules;
            public fixed ulong GdtBases[MaxCpus];
        }

        [InlineArray(MaxRanges)]
        private struct RangeArray
        {
            private GuardedRange _element;
        }

        [InlineArray(GuardRuleSetHeader.MaxRules)]
        private struct RuleArray
        {
            private GuardRule _element;
        }
    }
}
