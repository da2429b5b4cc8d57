// The GDT's fixed descriptors (issue 10 item 2), checked rather than write-protected: Linux rewrites the
// TLS descriptors of the current CPU's GDT on every context switch (native_load_tls) and the LDT
// descriptor whenever a process with an LDT is switched in, so a write-protected GDT page would cost an
// exit per switch. Instead each CPU's GDT is compared with what it held when the guard first saw it:
//   - when: before an entry on that CPU (both back ends call BeforeEntry), at most once per CheckInterval
//     TSC ticks, only while the guard is in force, the CPU runs in long-mode paging outside its bring-up
//     window, and GDTR is the CPU's known GDT (GuardState.GdtBase, the pinned limit; LGDT itself is judged
//     by GuardRegisters); and for every CPU at once when events or the status are read (CheckAll). The
//     first check of a CPU (its first entry after Protect) takes its snapshot; an attempt that finds the CPU
//     outside those conditions also waits the interval (not every exit); the GDT is walked with supervisor
//     rights, as the CPU reads it, so an exit from user code checks it too;
//   - what: Linux x86-64's layout (arch/x86/include/asm/segment.h): entries 0-7 (null, kernel and user code
//     and data, the unused 7) and 15 (CPUNODE: vgetcpu's per-CPU limit) must equal the snapshot; the TSS
//     (8-9) too, with the busy bit (type bit 1) ignored (LTR sets it, a CPU coming back online writes it
//     clear again before LTR); the LDT (10-11) and TLS (12-14) slots change legitimately and are checked by
//     shape: empty, or what Linux puts there (an LDT system descriptor of DPL 0; a user code or data
//     segment of DPL 3), never a call gate, a ring-0 segment or a second TSS;
//   - a difference is an attempt on GlobalTableDescriptor (access Write, Detail the entry index, old the
//     expected 8 bytes, new the found ones, Gpa/Linear the entry) judged by the rules with an unknown actor
//     (the check runs after the write: RIP, CR3 and CPL of the writer are not known, recorded as 0, region
//     Unknown). Block and BlockAndFault put the expected bytes back (nothing to fault: the writer is gone);
//     Allow and Audit accept the new bytes into the snapshot (recorded once).
// Detection is therefore not at the attempt: the window is the time to the CPU's next entry after the
// interval, or the next read of events/status. Root mode, interrupts off. Compiled twice; no allocation.
using System.Runtime.CompilerServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core.Guard
{
    public static unsafe class GuardDescriptors
    {
        /// <summary>Entries a snapshot holds (Linux's GDT has 16; a longer table is checked up to here).</summary>
        public const int MaxEntries = 32;

        /// <summary>TSC ticks between two checks of one CPU's GDT before an entry (about 1 ms at 2 GHz).</summary>
        public const ulong CheckInterval = 1UL << 21;

        /// <summary>Linux x86-64 GDT slots (arch/x86/include/asm/segment.h).</summary>
        public const int TssEntry = 8, LdtEntry = 10, TlsFirst = 12, TlsLast = 14;

        private const ulong Present = 1UL << 47, System = 1UL << 44, TssBusy = 1UL << 41;
        private const int TypeShift = 40, DplShift = 45;
        private const ulong LdtType = 2;

        private static Storage s_storage;

        private struct Watch
        {
            public ulong Linear;
            public ulong Gpa;
            public ulong LastCheck;
            public uint Entries;
            public uint Valid;
            public uint Tried;   // an attempt was made (LastCheck holds its time)
            public fixed ulong Snapshot[MaxEntries];
        }

        [InlineArray(GuardState.MaxCpus)]
        private struct Storage
        {
            private Watch _element;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Watch* Of(uint cpu) => (Watch*)Unsafe.AsPointer(ref s_storage[(int)(cpu % GuardState.MaxCpus)]);

        /// <summary>Whether CPU <paramref name="cpu"/>'s GDT has a snapshot (tests, Status).</summary>
        public static bool Watched(uint cpu) => Of(cpu)->Valid != 0;

        /// <summary>The guest-physical address of CPU <paramref name="cpu"/>'s GDT as last checked (0: none).</summary>
        public static ulong GpaOf(uint cpu) => Of(cpu)->Valid != 0 ? Of(cpu)->Gpa : 0;

        /// <summary>
        /// Whether <see cref="BeforeEntry"/> would look at CPU <paramref name="cpu"/>'s GDT at <paramref name="now"/>: the guard is in
        /// force and the interval passed (or nothing was snapshotted yet). The back ends ask this on every entry, a few
        /// instructions, and call BeforeEntry only then.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Due(uint cpu, ulong now)
        {
            if (!GuardState.Protected) return false;
            Watch* w = Of(cpu);
            return w->Tried == 0 || now - w->LastCheck >= CheckInterval;
        }

        /// <summary>
        /// Before an entry on <paramref name="vcpu"/>'s CPU, at <paramref name="now"/> (TSC): checks its GDT when the interval
        /// passed (or <paramref name="force"/>). Returns the number of entries found changed (0 also when nothing was checked).
        /// </summary>
        public static int BeforeEntry<T, TMemory, TCpus>(ref T vcpu, ref TMemory memory, ref TCpus cpus, ulong now, bool force = false)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TCpus : struct, INestedMapCpus
        {
            if (!GuardState.Protected) return 0;
            uint cpu = vcpu.Index % GuardState.MaxCpus;
            Watch* w = Of(cpu);
            if (!force && w->Tried != 0 && now - w->LastCheck < CheckInterval) return 0;
            // An attempt, whatever comes of it: the next one after the interval, not at the next exit (a CPU running user
            // code or still starting up would otherwise pay for this on every exit).
            ulong last = w->LastCheck;
            uint tried = w->Tried;
            w->LastCheck = now;
            w->Tried = 1;
            if ((vcpu.Efer & GuardMsrs.EferLma) == 0 || (vcpu.Cr0 & (1UL << 31)) == 0 || GuardArming.InBringUp(cpu)) return 0;
            ulong known = GuardState.GdtBase(cpu);
            if (known == 0) return 0;
            vcpu.ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out _, out _);
            if (gdtBase != known || gdtLimit != GuardState.Pins.GdtLimit) return 0;
            uint entries = (gdtLimit + 1) / 8;
            if (entries > MaxEntries) entries = MaxEntries;
            if (entries == 0 || ((gdtBase & 0xFFF) + (entries * 8)) > 0x1000) return 0;   // one page (Linux: page-aligned, 128 bytes)
            // The CPU reads the GDT with supervisor rights whatever the CPL (an implicit supervisor access, SDM Vol 3A
            // 4.6.1): walked as CPL 0, or an exit from user code could never check it.
            var paging = new GuestPaging(vcpu.Cr0, vcpu.Cr3, vcpu.Cr4, vcpu.Efer, 0);
            if (GuestMemory.Translate(ref memory, paging, gdtBase, false, out ulong gpa) != WalkResult.Ok) return 0;
            if (memory.Bounds.Check(gpa, entries * 8) != WalkResult.Ok) return 0;
            if (!GuardLock.TryEnter(ref cpus))
            {
                w->LastCheck = last;   // busy: the next entry tries again
                w->Tried = tried;
                return 0;
            }
            int changed = 0;
            if (w->Valid == 0 || w->Linear != gdtBase || w->Entries != entries)
            {
                Snapshot(ref memory, w, gdtBase, gpa, entries);
            }
            else
            {
                w->Gpa = gpa;   // the GDT's alias may have been remapped: what the CPU uses now is what counts
                changed = Compare(ref memory, w, cpu);
            }
            GuardLock.Exit(ref cpus);
            return changed;
        }

        /// <summary>
        /// Every watched CPU's GDT at its last known guest-physical address (events or status read; the caller holds the
        /// guard's lock). Returns the entries found changed.
        /// </summary>
        public static int CheckAll<TMemory>(ref TMemory memory) where TMemory : struct, IPhysicalMemory
        {
            if (!GuardState.Protected) return 0;
            int changed = 0;
            for (uint cpu = 0; cpu < GuardState.MaxCpus; cpu++)
            {
                Watch* w = Of(cpu);
                if (w->Valid == 0 || memory.Bounds.Check(w->Gpa, w->Entries * 8) != WalkResult.Ok) continue;
                changed += Compare(ref memory, w, cpu);
            }
            return changed;
        }

        /// <summary>Back to launch state (tests; a reset guard).</summary>
        public static void Reset() => s_storage = default;

        private static void Snapshot<TMemory>(ref TMemory memory, Watch* w, ulong linear, ulong gpa, uint entries) where TMemory : struct, IPhysicalMemory
        {
            w->Linear = linear;
            w->Gpa = gpa;
            w->Entries = entries;
            for (uint i = 0; i < entries; i++) w->Snapshot[i] = memory.ReadUInt64(gpa + (i * 8));
            w->Valid = 1;
        }

        private static int Compare<TMemory>(ref TMemory memory, Watch* w, uint cpu) where TMemory : struct, IPhysicalMemory
        {
            int changed = 0;
            for (uint i = 0; i < w->Entries; i++)
            {
                ulong address = w->Gpa + (i * 8);
                ulong found = memory.ReadUInt64(address);
                if (Acceptable((int)i, found, w->Snapshot[i])) continue;
                ulong expected = IsShaped((int)i) ? 0 : w->Snapshot[i];
                changed++;
                GuardVerdict verdict = Judge(cpu, i, w->Linear + (i * 8), address, expected, found);
                if (verdict is GuardVerdict.Block or GuardVerdict.BlockAndFault)
                {
                    for (int b = 0; b < 8; b++) memory.WriteByte(address + (ulong)b, (byte)(expected >> (8 * b)));
                }
                else if (!IsShaped((int)i))
                {
                    w->Snapshot[i] = found;
                }
            }
            return changed;
        }

        /// <summary>Slots Linux rewrites at run time, judged by shape, not against the snapshot (LDT, TLS).</summary>
        public static bool IsShaped(int index) => index is LdtEntry or (LdtEntry + 1) or (>= TlsFirst and <= TlsLast);

        /// <summary>Whether <paramref name="found"/> in slot <paramref name="index"/> is what the kernel may have there.</summary>
        public static bool Acceptable(int index, ulong found, ulong snapshot)
        {
            if (index == LdtEntry) return found == 0 || ((found & System) == 0 && ((found >> TypeShift) & 0xF) == LdtType && ((found >> DplShift) & 3) == 0);
            if (index == LdtEntry + 1) return true;   // the LDT's upper base bits (written with the lower half)
            if (index is >= TlsFirst and <= TlsLast) return found == 0 || ((found & System) != 0 && ((found >> DplShift) & 3) == 3);
            if (index == TssEntry) return (found & ~TssBusy) == (snapshot & ~TssBusy);
            return found == snapshot;
        }

        private static GuardVerdict Judge(uint cpu, uint index, ulong linear, ulong gpa, ulong expected, ulong found)
        {
            var a = new GuardAttempt
            {
                Object = GuardObject.GlobalTableDescriptor,
                Access = GuardAccess.Write,
                Content = GuardContent.None,
                Detail = index,
                Region = ActorRegion.Unknown,
                Locked = GuardState.Locked,
            };
            GuardVerdict verdict = GuardState.Judge(a, out ushort rule);
            var e = new GuardEvent
            {
                Tsc = LogRings.Timestamp(),
                Cpu = (ushort)cpu,
                Object = a.Object,
                Access = a.Access,
                Verdict = verdict,
                Region = a.Region,
                Rule = rule,
                Gpa = gpa,
                Linear = linear,
                Detail = index,
                ContentLength = 8,
            };
            for (int b = 0; b < 8; b++)
            {
                e.Old[b] = (byte)(expected >> (8 * b));
                e.New[b] = (byte)(found >> (8 * b));
            }
            GuardState.Record(ref e);
            return verdict;
        }
    }
}
