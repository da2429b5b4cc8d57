// The one way to change the nested map (EPT, SDM Vol 3C 29.3; NPT, APM Vol 2 15.25) while guests run
// on other CPUs. NestedMap builds the map before launch and may still change it directly until then
// (APIC page, hidden memory); after launch every change comes here:
//   - serialized: one lock word (LOCK CMPXCHG); a CPU spinning for it keeps acknowledging (below), so a
//     holder waiting for acknowledgements never waits for a CPU that waits for the lock;
//   - from tables reserved at start-up: a change counts the tables its splits need before it writes
//     anything and refuses (nothing changed) when the reserve is short; no allocation mid-change;
//   - large pages split safely: a large page that the range covers only in part is replaced by a table
//     of smaller pages with the same translations, type and access, built while nothing points to it;
//     then the large entry is made not present, every CPU invalidates, and only then the new table is
//     linked. No CPU ever holds a large and a small translation for one address at once, which the SDM
//     leaves undefined (Vol 3A 4.10.2.3, 4.10.4.2; Vol 3C 29.4.3) and which hangs some AMD processors
//     (APM Vol 2 5.5.2 and 15.25: change the page size through a not-present entry). An access to the
//     page meanwhile exits as a nested fault; the fault handlers ask IsSpurious and simply resume;
//   - then the access of every page in the range is rewritten (4 KiB pages only at the range's ends;
//     large pages inside it keep their size), and every CPU invalidates again;
//   - "every CPU invalidates" is a generation number: the changer increments it, invalidates its own
//     CPU, kicks every other active CPU out of the guest (an NMI) and waits until each has
//     acknowledged the generation. A CPU acknowledges on every exit, and in every host wait (the lock
//     above, the start-up wait), after it invalidated its cached translations (VMX: INVEPT; SVM: TLB
//     flush on the next VMRUN). A change is reported Done only when all have; a CPU that does not
//     answer within the wait budget makes it Unconfirmed (the tables are changed all the same).
// Root mode, any CPU, interrupts off (or at start-up). The state shared by all CPUs lives in one
// caller-provided block (lock, generation, per-CPU acknowledgements, the unmapped windows, the table
// reserve); this struct holds only what Initialize set, so copies of it are the same service.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Core
{
    /// <summary>What a change of the nested map came to.</summary>
    public enum NestedMapResult
    {
        /// <summary>Changed, and every active CPU acknowledged the invalidation.</summary>
        Done,

        /// <summary>The range is empty of meaning: it leaves the map, or the service is not initialized. Nothing changed.</summary>
        OutsideMap,

        /// <summary>The table reserve cannot cover the splits the range needs. Nothing changed.</summary>
        NoTables,

        /// <summary>Changed, but some active CPU did not acknowledge within the wait budget.</summary>
        Unconfirmed,
    }

    /// <summary>The part of the service's block every CPU reads and writes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NestedMapShared
    {
        /// <summary>The most large pages one change unmaps at once: one at each end of the range.</summary>
        public const int MaxWindows = 2;

        /// <summary>0 free, 1 held (INestedMapCpus.TryLock).</summary>
        public uint Lock;

        /// <summary>Incremented for every invalidation round (under the lock); CPUs acknowledge it.</summary>
        public volatile uint Generation;

        /// <summary>How many large pages are not present right now (their ranges in WindowBase/WindowEnd).</summary>
        public volatile uint Windows;

        /// <summary>Tables left in the reserve (changed under the lock only).</summary>
        public uint ReserveCount;

        public fixed ulong WindowBase[MaxWindows];
        public fixed ulong WindowEnd[MaxWindows];
    }

    /// <summary>One CPU's part of the service's block.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct NestedMapCpu
    {
        /// <summary>The last generation this CPU invalidated for.</summary>
        public volatile uint Acknowledged;

        /// <summary>1 once the CPU runs (or is about to run) a guest on the map: changes wait for its acknowledgement.</summary>
        public volatile uint Active;
    }

    public static class NestedMapService
    {
        /// <summary>
        /// Tables one change can take from the reserve: a 1 GiB page split at each end of the range (a new PD), and
        /// the 2 MiB page under each end split again (a new PT).
        /// </summary>
        public const int TablesPerChange = 4;

        /// <summary>Bytes of the block for <paramref name="cpus"/> CPUs and a reserve of <paramref name="tables"/> tables.</summary>
        public static unsafe ulong BytesFor(uint cpus, uint tables)
            => (ulong)sizeof(NestedMapShared) + ((ulong)cpus * (ulong)sizeof(NestedMapCpu)) + ((ulong)tables * 8);
    }

    /// <summary>Changes to a 4-level nested map in format <typeparamref name="TFormat"/> whose tables <typeparamref name="TPages"/> reaches.</summary>
    public unsafe struct NestedMapService<TFormat, TPages>
        where TFormat : struct, IPageTableFormat
        where TPages : struct, IPageSource
    {
        private TFormat _format;
        private TPages _pages;
        private ulong _root;
        private ulong _limit;
        private NestedMapShared* _shared;
        private NestedMapCpu* _cpus;
        private ulong* _reserve;
        private uint _count;
        private ulong _waitBudget;

        /// <summary>
        /// Takes over the map at <paramref name="root"/> covering [0, <paramref name="limit"/>) for <paramref name="cpus"/>
        /// CPUs, with the zeroed <paramref name="block"/> (<see cref="NestedMapService.BytesFor"/> bytes) and a reserve of
        /// <paramref name="tables"/> tables taken from <paramref name="pages"/> now (start-up, BSP). A wait for
        /// acknowledgements gives up after <paramref name="waitBudget"/> pauses. False when the pages ran out.
        /// </summary>
        public bool Initialize(TFormat format, TPages pages, ulong root, ulong limit, void* block, uint cpus, uint tables, ulong waitBudget)
        {
            _format = format;
            _pages = pages;
            _root = root;
            _limit = limit;
            _shared = (NestedMapShared*)block;
            _cpus = (NestedMapCpu*)((byte*)block + sizeof(NestedMapShared));
            _reserve = (ulong*)((byte*)_cpus + ((ulong)cpus * (ulong)sizeof(NestedMapCpu)));
            _count = cpus;
            _waitBudget = waitBudget;
            for (uint i = 0; i < tables; i++)
            {
                ulong table = pages.AllocatePage();
                if (table == 0 || (table & 0xFFF) != 0) return false;
                _reserve[i] = table;
                _shared->ReserveCount = i + 1;
            }
            return true;
        }

        public readonly bool IsInitialized => _shared != null;

        /// <summary>Tables left in the reserve.</summary>
        public readonly uint TablesLeft => _shared == null ? 0 : _shared->ReserveCount;

        /// <summary>The current invalidation generation.</summary>
        public readonly uint Generation => _shared == null ? 0 : _shared->Generation;

        /// <summary>
        /// On CPU <paramref name="self"/>, before its first guest entry on the map: from now on changes wait for its
        /// acknowledgement. Its translations are invalidated first (nothing cached before counts).
        /// </summary>
        public readonly void Activate<TCpus>(ref TCpus cpus, uint self)
            where TCpus : struct, INestedMapCpus
        {
            if (_shared == null || self >= _count) return;
            cpus.InvalidateLocal(self);
            _cpus[self].Acknowledged = _shared->Generation;
            _cpus[self].Active = 1;
            cpus.Fence();   // Active visible before this CPU's first walk of the map (a changer must see it)
        }

        /// <summary>CPU <paramref name="self"/> stops running a guest for good: changes no longer wait for it.</summary>
        public readonly void Deactivate(uint self)
        {
            if (_shared != null && self < _count) _cpus[self].Active = 0;
        }

        /// <summary>
        /// On CPU <paramref name="self"/>, in the host, before it enters the guest (every exit) and in every host wait:
        /// when a change happened since its last acknowledgement, invalidate, then say so.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Acknowledge<TCpus>(ref TCpus cpus, uint self)
            where TCpus : struct, INestedMapCpus
        {
            if (_shared == null || self >= _count) return;
            uint generation = _shared->Generation;
            if (_cpus[self].Acknowledged == generation) return;
            cpus.InvalidateLocal(self);
            _cpus[self].Acknowledged = generation;   // after the invalidation: the changer may go on when it sees this
        }

        /// <summary>Whether CPU <paramref name="cpu"/> acknowledged the current generation (tests, diagnostics).</summary>
        public readonly bool HasAcknowledged(uint cpu) => _shared != null && cpu < _count && _cpus[cpu].Acknowledged == _shared->Generation;

        /// <summary>
        /// Gives every 4 KiB page touching [<paramref name="rangeBase"/>, +<paramref name="size"/>) the access
        /// <paramref name="access"/> (its translation and type kept), on behalf of CPU <paramref name="self"/> (in the
        /// host). Large pages the range covers in full keep their size; those across its ends are split safely first.
        /// Returns when every active CPU acknowledged (Done) or the wait gave up (Unconfirmed).
        /// </summary>
        public readonly NestedMapResult Protect<TCpus>(ref TCpus cpus, uint self, ulong rangeBase, ulong size, PageAccess access)
            where TCpus : struct, INestedMapCpus
        {
            if (size == 0) return NestedMapResult.Done;
            ulong end = rangeBase + size;
            if (_shared == null || end < rangeBase || end > _limit || end > ulong.MaxValue - 0xFFF) return NestedMapResult.OutsideMap;
            ulong start = rangeBase & ~0xFFFUL;
            end = (end + 0xFFF) & ~0xFFFUL;
            Lock(ref cpus, self);
            NestedMapResult result = ChangeLocked(ref cpus, self, start, end, access);
            cpus.Unlock(&_shared->Lock);
            return result;
        }

        /// <summary>Gives the pages of the range full access again (the identity map as built; split pages stay split).</summary>
        public readonly NestedMapResult Restore<TCpus>(ref TCpus cpus, uint self, ulong rangeBase, ulong size)
            where TCpus : struct, INestedMapCpus
            => Protect(ref cpus, self, rangeBase, size, PageAccess.All);

        /// <summary>
        /// For a nested fault at <paramref name="gpa"/> that needed <paramref name="needed"/>: true when it is no fault
        /// of the map's design but a change in flight (the large page around it is being split, or the map grants
        /// the access by now and the fault came from a translation invalidated since). The handler resumes the guest.
        /// </summary>
        public readonly bool IsSpurious(ulong gpa, PageAccess needed)
        {
            if (_shared == null) return false;
            uint windows = _shared->Windows;
            for (uint k = 0; k < windows && k < NestedMapShared.MaxWindows; k++)
            {
                if (gpa >= _shared->WindowBase[k] && gpa < _shared->WindowEnd[k]) return true;
            }
            if (gpa >= _limit) return false;
            ulong table = _root;
            for (int level = 4; level >= 1; level--)
            {
                ulong entry = _pages.Map(table)[Index(gpa, level)];
                if (!_format.IsPresent(entry)) return false;
                if (_format.IsLeaf(level, entry)) return (_format.AccessOf(entry) & needed) == needed;
                table = _format.AddressOf(level, entry);
            }
            return false;
        }

        /// <summary>The level of the leaf that maps <paramref name="gpa"/> (1 4 KiB, 2 2 MiB, 3 1 GiB); 0 when none does.</summary>
        public readonly int LeafLevel(ulong gpa)
        {
            if (_shared == null || gpa >= _limit) return 0;
            ulong table = _root;
            for (int level = 4; level >= 1; level--)
            {
                ulong entry = _pages.Map(table)[Index(gpa, level)];
                if (!_format.IsMapped(entry)) return 0;
                if (_format.IsLeaf(level, entry)) return level;
                table = _format.AddressOf(level, entry);
            }
            return 0;
        }

        /// <summary>
        /// The first address from <paramref name="from"/> (in 2 MiB steps) that a large page maps, outside
        /// [<paramref name="avoidBase"/>, +<paramref name="avoidSize"/>); 0 when there is none.
        /// </summary>
        public readonly ulong FindLargePage(ulong from, ulong avoidBase, ulong avoidSize)
        {
            for (ulong a = (from + PageTableBits.PageSize2M - 1) & ~(PageTableBits.PageSize2M - 1); a < _limit; a += PageTableBits.PageSize2M)
            {
                if (a + PageTableBits.PageSize2M > avoidBase && a < avoidBase + avoidSize) continue;
                if (LeafLevel(a) >= 2) return a;
            }
            return 0;
        }

        /// <summary>
        /// A check of the whole path on the machine itself, once, when every CPU runs its guest: the first large page
        /// from 16 MiB up (outside [<paramref name="avoidBase"/>, +<paramref name="avoidSize"/>)) is split around one
        /// 4 KiB page whose access stays full, so the guest sees the same memory, while every other CPU is kicked out
        /// of its guest and acknowledges. <paramref name="page"/> and <paramref name="level"/>: what was split (0: no
        /// large page found, nothing done); <paramref name="rounds"/>: invalidation rounds it took.
        /// </summary>
        public readonly NestedMapResult StartupCheck<TCpus>(ref TCpus cpus, uint self, ulong avoidBase, ulong avoidSize, out ulong page, out int level, out uint rounds)
            where TCpus : struct, INestedMapCpus
        {
            rounds = 0;
            level = 0;
            page = FindLargePage(16UL << 20, avoidBase, avoidSize);
            if (page == 0) return NestedMapResult.Done;
            level = LeafLevel(page);
            uint before = Generation;
            NestedMapResult result = Protect(ref cpus, self, page + PageTableBits.PageSize4K, PageTableBits.PageSize4K, PageAccess.All);
            rounds = Generation - before;
            return result;
        }

        private static int Index(ulong address, int level) => (int)((address >> (3 + (9 * level))) & 0x1FF);

        /// <summary>Spins for the lock, acknowledging meanwhile (the holder may be waiting for this CPU).</summary>
        private readonly void Lock<TCpus>(ref TCpus cpus, uint self)
            where TCpus : struct, INestedMapCpus
        {
            while (!cpus.TryLock(&_shared->Lock))
            {
                Acknowledge(ref cpus, self);
                cpus.Pause();
            }
        }

        /// <summary>A large leaf to replace by a table: where its entry is, its level, and the table built for it.</summary>
        private struct Split
        {
            public ulong* Entry;
            public int Level;
            public ulong Base;
            public ulong Child;
        }

        private readonly NestedMapResult ChangeLocked<TCpus>(ref TCpus cpus, uint self, ulong start, ulong end, PageAccess access)
            where TCpus : struct, INestedMapCpus
        {
            // 1. Plan, writing nothing: the large leaves under the range's ends that it covers only in part, and the
            //    tables their replacement takes.
            Split* splits = stackalloc Split[NestedMapShared.MaxWindows];
            int count = 0;
            uint tables = 0;
            if (!Plan(start, end, start, splits, ref count, ref tables) || !Plan(start, end, end - 1, splits, ref count, ref tables))
                return NestedMapResult.OutsideMap;
            if (tables > _shared->ReserveCount) return NestedMapResult.NoTables;

            bool confirmed = true;
            if (count > 0)
            {
                // 2. Build each replacement where no CPU can see it yet.
                for (int k = 0; k < count; k++) splits[k].Child = Build(splits[k].Entry, splits[k].Level, splits[k].Base, start, end);
                // 3. Unmap the large pages (their ranges announced first, for the fault handlers), invalidate everywhere.
                for (int k = 0; k < count; k++)
                {
                    _shared->WindowBase[k] = splits[k].Base;
                    _shared->WindowEnd[k] = splits[k].Base + PageTableBits.EntrySize(splits[k].Level);
                }
                _shared->Windows = (uint)count;
                for (int k = 0; k < count; k++)
                {
                    ulong entry = *splits[k].Entry;
                    *splits[k].Entry = _format.LeafEntry(splits[k].Level, splits[k].Base, _format.TypeOf(splits[k].Level, entry), PageAccess.None);
                }
                confirmed &= InvalidateEverywhere(ref cpus, self);
                // 4. Link the tables. A not-present entry is never cached (SDM Vol 3A 4.10.2.3, 4.10.3.1; APM Vol 2 5.5.1),
                //    so making it point to a table needs no further invalidation.
                for (int k = 0; k < count; k++) *splits[k].Entry = _format.TableEntry(splits[k].Child);
                _shared->Windows = 0;
            }

            // 5. The new access for every leaf in the range (each lies wholly inside it now), then invalidate everywhere.
            if (Apply(_root, 4, 0, start, end, access)) confirmed &= InvalidateEverywhere(ref cpus, self);
            return confirmed ? NestedMapResult.Done : NestedMapResult.Unconfirmed;
        }

        /// <summary>
        /// Adds the split the leaf at <paramref name="address"/> needs (if the range covers it in part and no split for
        /// it is planned yet), and the tables for it. False when the address is not mapped.
        /// </summary>
        private readonly bool Plan(ulong start, ulong end, ulong address, Split* splits, ref int count, ref uint tables)
        {
            ulong table = _root;
            for (int level = 4; level >= 1; level--)
            {
                ulong* entry = _pages.Map(table) + Index(address, level);
                ulong value = *entry;
                if (!_format.IsMapped(value)) return false;
                if (!_format.IsLeaf(level, value))
                {
                    table = _format.AddressOf(level, value);
                    continue;
                }
                if (level == 1) return true;
                ulong size = PageTableBits.EntrySize(level);
                ulong leafBase = address & ~(size - 1);
                if (leafBase >= start && leafBase + size <= end) return true;   // wholly inside: keeps its size
                for (int k = 0; k < count; k++)
                {
                    if (splits[k].Entry == entry) return true;
                }
                splits[count].Entry = entry;
                splits[count].Level = level;
                splits[count].Base = leafBase;
                splits[count].Child = 0;
                count++;
                tables += 1 + (uint)PartialBelow(level, leafBase, start, end);
                return true;
            }
            return false;
        }

        /// <summary>
        /// How many of the 2 MiB pages inside the 1 GiB page at <paramref name="leafBase"/> the range covers in part
        /// (each needs a page table of its own under the new directory); 0 below level 3.
        /// </summary>
        private static int PartialBelow(int level, ulong leafBase, ulong start, ulong end)
        {
            if (level != 3) return 0;
            ulong leafEnd = leafBase + PageTableBits.PageSize1G;
            bool startInside = start > leafBase && start < leafEnd && (start & (PageTableBits.PageSize2M - 1)) != 0;
            bool endInside = end > leafBase && end < leafEnd && (end & (PageTableBits.PageSize2M - 1)) != 0;
            if (startInside && endInside && (start & ~(PageTableBits.PageSize2M - 1)) == ((end - 1) & ~(PageTableBits.PageSize2M - 1))) return 1;
            return (startInside ? 1 : 0) + (endInside ? 1 : 0);
        }

        /// <summary>A table from the reserve (zeroed here); the plan made sure there is one.</summary>
        private readonly ulong Take()
        {
            uint n = _shared->ReserveCount - 1;
            _shared->ReserveCount = n;
            ulong table = _reserve[n];
            ulong* entries = _pages.Map(table);
            for (int i = 0; i < 512; i++) entries[i] = 0;
            return table;
        }

        /// <summary>
        /// The table that replaces the large leaf at <paramref name="entry"/> (level <paramref name="level"/>, mapping
        /// <paramref name="leafBase"/>): 512 leaves one level down with its translations, type and access; for a 1 GiB
        /// leaf, the 2 MiB leaves under the range's ends split once more (nothing points to these tables yet).
        /// </summary>
        private readonly ulong Build(ulong* entry, int level, ulong leafBase, ulong start, ulong end)
        {
            ulong value = *entry;
            MemoryType type = _format.TypeOf(level, value);
            PageAccess access = _format.AccessOf(value);
            ulong child = Fill(level - 1, leafBase, type, access);
            if (level == 3)
            {
                ulong* children = _pages.Map(child);
                SplitUnder(children, leafBase, start, type, access);
                SplitUnder(children, leafBase, end, type, access);
            }
            return child;
        }

        /// <summary>In a new directory mapping from <paramref name="directoryBase"/>: the 2 MiB leaf a boundary cuts becomes a table of 4 KiB pages.</summary>
        private readonly void SplitUnder(ulong* directory, ulong directoryBase, ulong boundary, MemoryType type, PageAccess access)
        {
            if (boundary <= directoryBase || boundary >= directoryBase + PageTableBits.PageSize1G) return;
            if ((boundary & (PageTableBits.PageSize2M - 1)) == 0) return;
            int index = Index(boundary, 2);
            if (!_format.IsLeaf(2, directory[index])) return;   // both ends in one 2 MiB page: split once
            ulong pageBase = boundary & ~(PageTableBits.PageSize2M - 1);
            directory[index] = _format.TableEntry(Fill(1, pageBase, type, access));
        }

        /// <summary>A table from the reserve with 512 leaves at <paramref name="level"/> from <paramref name="tableBase"/>.</summary>
        private readonly ulong Fill(int level, ulong tableBase, MemoryType type, PageAccess access)
        {
            ulong table = Take();
            ulong* entries = _pages.Map(table);
            ulong size = PageTableBits.EntrySize(level);
            for (int i = 0; i < 512; i++) entries[i] = _format.LeafEntry(level, tableBase + ((ulong)i * size), type, access);
            return table;
        }

        /// <summary>Rewrites the leaves in [<paramref name="start"/>, <paramref name="end"/>) with <paramref name="access"/>; true when any entry changed.</summary>
        private readonly bool Apply(ulong table, int level, ulong tableBase, ulong start, ulong end, PageAccess access)
        {
            ulong* entries = _pages.Map(table);
            int shift = 3 + (9 * level);
            ulong size = 1UL << shift;
            ulong tableEnd = tableBase + (512 * size);
            ulong from = start > tableBase ? start : tableBase;
            ulong to = end < tableEnd ? end : tableEnd;
            if (from >= to) return false;
            bool changed = false;
            for (int i = (int)((from - tableBase) >> shift); i <= (int)((to - 1 - tableBase) >> shift); i++)
            {
                ulong address = tableBase + ((ulong)i * size);
                ulong entry = entries[i];
                if (!_format.IsMapped(entry)) continue;   // beyond the map's limit: nothing to change
                if (!_format.IsLeaf(level, entry))
                {
                    changed |= Apply(_format.AddressOf(level, entry), level - 1, address, start, end, access);
                    continue;
                }
                // The plan split every leaf across an end of the range: this one lies wholly inside it.
                ulong updated = _format.LeafEntry(level, _format.AddressOf(level, entry), _format.TypeOf(level, entry), access);
                if (updated == entry) continue;
                entries[i] = updated;
                changed = true;
            }
            return changed;
        }

        /// <summary>
        /// A new generation: this CPU invalidates, every other active CPU is kicked and waited for. False when one did
        /// not acknowledge within the budget.
        /// </summary>
        private readonly bool InvalidateEverywhere<TCpus>(ref TCpus cpus, uint self)
            where TCpus : struct, INestedMapCpus
        {
            uint generation = _shared->Generation + 1;
            _shared->Generation = generation;
            cpus.Fence();   // the table writes and the generation before any CPU's Active is read (Activate's fence pairs)
            Acknowledge(ref cpus, self);
            for (uint i = 0; i < _count; i++)
            {
                if (i != self && _cpus[i].Active != 0 && _cpus[i].Acknowledged != generation) cpus.Kick(i);
            }
            for (ulong spin = 0; spin <= _waitBudget; spin++)
            {
                bool all = true;
                for (uint i = 0; i < _count && all; i++) all = i == self || _cpus[i].Active == 0 || _cpus[i].Acknowledged == generation;
                if (all) return true;
                cpus.Pause();
            }
            return false;
        }
    }
}
