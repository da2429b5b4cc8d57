// The identity map: the second-level tables (EPT, SDM Vol 3C 29.3; NPT, APM Vol 2 15.25) that give
// the guest all of physical memory 1:1 with the MTRRs' memory types, and the host's own page tables,
// built by one piece of code generic over the entry format (IPageTableFormat) and the page source
// (IPageSource), both struct-constrained: no interface dispatch, no allocation, no exceptions —
// failures (pool exhausted, address outside the map) are return values.
//
// Pages are as large as the MTRRs allow (SDM Vol 3A 11.11.9: a page must not straddle memory types):
// 1 GiB where allowed and uniform, else 2 MiB, else 4 KiB. SetAccess/Protect change access with 4 KiB
// granularity, splitting large pages on demand; the pages split off keep their type and access.
//
// Build runs at initialization (BSP, before launch). SetAccess and SplitTo4K may run later, in root
// mode: they are not thread-safe (callers serialize), they fill a new table before publishing it with
// one 8-byte store, and the caller invalidates afterwards (INVEPT on every CPU using the EPTP;
// TLB_CONTROL/flush by ASID for NPT; a CR3 reload for the host).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    /// <summary>What <see cref="NestedMap{TFormat}.Lookup"/> found for one address.</summary>
    public struct PageMapping
    {
        /// <summary>The leaf's level: 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB).</summary>
        public int Level;

        /// <summary>The raw leaf entry.</summary>
        public ulong Entry;

        /// <summary>The physical address the looked-up address translates to.</summary>
        public ulong PhysicalAddress;

        public MemoryType Type;

        public PageAccess Access;
    }

    /// <summary>Sizing and the page-size decision shared by every <see cref="NestedMap{TFormat}"/>.</summary>
    public static class NestedMap
    {
        /// <summary>What 4 levels reach: 256 TiB.</summary>
        public const ulong MaxLimit = 1UL << 48;

        /// <summary>
        /// The most tables one <see cref="NestedMap{TFormat}.SetAccess"/> call can add: each end of the range can
        /// split one 1 GiB page (a new PD) and one 2 MiB page (a new PT).
        /// </summary>
        public const int TablesPerAccessChange = 4;

        /// <summary>
        /// Exactly the tables <see cref="NestedMap{TFormat}.Build"/> uses for these arguments (a dry run of the
        /// same decisions); the loader sizes the pool with it plus <see cref="TablesPerAccessChange"/> per range
        /// it will protect. 0 for a limit Build refuses.
        /// </summary>
        public static ulong EstimateTables(ulong limit, in MtrrSet mtrrs, bool allow1GiB)
        {
            limit = AlignUp(limit);
            if (limit == 0 || limit > MaxLimit) return 0;
            return 1 + CountBelow(4, 0, limit, mtrrs, allow1GiB);
        }

        /// <summary>
        /// Tables for [0, <paramref name="limit"/>) whatever the MTRRs say (every 2 MiB split to 4 KiB): an upper
        /// bound for sizing before the MTRRs are read. Large: 2 MiB of tables per GiB.
        /// </summary>
        public static ulong WorstCaseTables(ulong limit)
        {
            limit = AlignUp(limit);
            if (limit == 0 || limit > MaxLimit) return 0;
            return 1 + DivideUp(limit, PageTableBits.EntrySize(4)) + DivideUp(limit, PageTableBits.EntrySize(3))
                + DivideUp(limit, PageTableBits.EntrySize(2));
        }

        /// <summary>
        /// Whether the entry at <paramref name="level"/> for [<paramref name="address"/>, +entry size) is a leaf, and
        /// its type: level 1 always; level 2, and level 3 when <paramref name="allow1GiB"/>, when the page lies
        /// below <paramref name="limit"/> and the MTRRs give it one type; never level 4.
        /// </summary>
        public static bool LeafFits(int level, ulong address, ulong limit, in MtrrSet mtrrs, bool allow1GiB, out MemoryType type)
        {
            type = MemoryType.Uncacheable;
            if (level == 1)
            {
                type = mtrrs.TypeOf(address);
                return true;
            }
            if (level == 4 || (level == 3 && !allow1GiB)) return false;
            ulong size = PageTableBits.EntrySize(level);
            return address + size <= limit && mtrrs.IsUniform(address, size, out type);
        }

        internal static ulong AlignUp(ulong value) => value > ulong.MaxValue - 0xFFF ? 0 : (value + 0xFFF) & ~0xFFFUL;

        private static ulong DivideUp(ulong value, ulong divisor) => (value + divisor - 1) / divisor;

        /// <summary>Tables needed under one table at <paramref name="level"/> that maps from <paramref name="start"/>.</summary>
        private static ulong CountBelow(int level, ulong start, ulong limit, in MtrrSet mtrrs, bool allow1GiB)
        {
            if (level == 1) return 0;
            ulong count = 0;
            ulong size = PageTableBits.EntrySize(level);
            for (ulong i = 0; i < 512; i++)
            {
                ulong address = start + (i * size);
                if (address >= limit) break;
                if (LeafFits(level, address, limit, mtrrs, allow1GiB, out _)) continue;
                count += 1 + CountBelow(level - 1, address, limit, mtrrs, allow1GiB);
            }
            return count;
        }
    }

    /// <summary>A 4-level identity map in the entry format <typeparamref name="TFormat"/>.</summary>
    public unsafe struct NestedMap<TFormat>
        where TFormat : struct, IPageTableFormat
    {
        private readonly TFormat _format;
        private ulong _root;
        private ulong _limit;
        private ulong _tables;

        public NestedMap(TFormat format)
        {
            _format = format;
        }

        /// <summary>The PML4's physical address (for the EPTP, nCR3 or CR3); 0 before <see cref="Build"/>.</summary>
        public readonly ulong Root => _root;

        /// <summary>The end of the mapped range once <see cref="Build"/> succeeded; 0 otherwise.</summary>
        public readonly ulong Limit => _limit;

        /// <summary>Tables taken from the page source so far (the PML4 included).</summary>
        public readonly ulong TablesUsed => _tables;

        /// <summary>
        /// Maps [0, <paramref name="limit"/>) (rounded up to 4 KiB, at most <see cref="NestedMap.MaxLimit"/>) to
        /// itself with full access and the MTRRs' types, in the largest pages that have one type. Beyond the
        /// limit nothing is mapped. False when the pool ran out (the map is then unusable), the limit is
        /// invalid, or the map was already built.
        /// </summary>
        public bool Build<TPages>(ref TPages pages, ulong limit, in MtrrSet mtrrs, bool allow1GiB)
            where TPages : struct, IPageSource
        {
            limit = NestedMap.AlignUp(limit);
            if (_root != 0 || limit == 0 || limit > NestedMap.MaxLimit) return false;
            _root = NewTable(ref pages);
            if (_root == 0 || !Fill(ref pages, _root, 4, 0, limit, mtrrs, allow1GiB)) return false;
            _limit = limit;
            return true;
        }

        /// <summary>Makes every 4 KiB page touching [<paramref name="rangeBase"/>, +<paramref name="size"/>) inaccessible.</summary>
        public bool Protect<TPages>(ref TPages pages, ulong rangeBase, ulong size)
            where TPages : struct, IPageSource
            => SetAccess(ref pages, rangeBase, size, PageAccess.None);

        /// <summary>Gives every 4 KiB page touching the range full access again (its type unchanged).</summary>
        public bool Unprotect<TPages>(ref TPages pages, ulong rangeBase, ulong size)
            where TPages : struct, IPageSource
            => SetAccess(ref pages, rangeBase, size, PageAccess.All);

        /// <summary>
        /// Gives every 4 KiB page touching [<paramref name="rangeBase"/>, +<paramref name="size"/>) the access
        /// <paramref name="access"/>. Large pages wholly inside the range stay large; those across its ends are
        /// split first (at most <see cref="NestedMap.TablesPerAccessChange"/> new tables), so every other page keeps
        /// its type and access. False, with no access changed, when the range leaves the map or the pool runs out
        /// (pages already split stay split: same translation).
        /// </summary>
        public bool SetAccess<TPages>(ref TPages pages, ulong rangeBase, ulong size, PageAccess access)
            where TPages : struct, IPageSource
        {
            if (size == 0) return true;
            ulong end = rangeBase + size;
            if (_limit == 0 || end < rangeBase || end > _limit) return false;
            ulong start = rangeBase & ~0xFFFUL;
            end = NestedMap.AlignUp(end);
            // First split every large page across an end of the range, then change access: an exhausted pool
            // stops the first pass, before any access changed.
            if (!Change(ref pages, _root, 4, 0, start, end, access, apply: false)) return false;
            return Change(ref pages, _root, 4, 0, start, end, access, apply: true);
        }

        /// <summary>Splits whatever large pages map <paramref name="address"/> down to a 4 KiB page (its type and access kept).</summary>
        public bool SplitTo4K<TPages>(ref TPages pages, ulong address)
            where TPages : struct, IPageSource
        {
            if (address >= _limit) return false;
            ulong table = _root;
            for (int level = 4; level >= 2; level--)
            {
                ulong* entries = pages.Map(table);
                int index = Index(address, level);
                ulong entry = entries[index];
                if (!_format.IsMapped(entry)) return false;
                if (_format.IsLeaf(level, entry))
                {
                    if (!Split(ref pages, entries, index, level)) return false;
                    entry = entries[index];
                }
                table = _format.AddressOf(level, entry);
            }
            return true;
        }

        /// <summary>The leaf that maps <paramref name="address"/>; false when nothing does.</summary>
        public readonly bool Lookup<TPages>(ref TPages pages, ulong address, out PageMapping mapping)
            where TPages : struct, IPageSource
        {
            mapping = default;
            if (_root == 0 || address >= NestedMap.MaxLimit) return false;
            ulong table = _root;
            for (int level = 4; level >= 1; level--)
            {
                ulong entry = pages.Map(table)[Index(address, level)];
                if (!_format.IsMapped(entry)) return false;
                if (!_format.IsLeaf(level, entry))
                {
                    table = _format.AddressOf(level, entry);
                    continue;
                }
                mapping.Level = level;
                mapping.Entry = entry;
                mapping.PhysicalAddress = _format.AddressOf(level, entry) + (address & (PageTableBits.EntrySize(level) - 1));
                mapping.Type = _format.TypeOf(level, entry);
                mapping.Access = _format.AccessOf(entry);
                return true;
            }
            return false;
        }

        /// <summary>
        /// Points the 4 KiB page at <paramref name="address"/> to the page at <paramref name="target"/> with
        /// <paramref name="access"/>, keeping its memory type (splitting large pages first): the one break of the
        /// identity, for a page the guest must see something else in (the blank page read in place of hidden
        /// memory). False when the address is outside the map or the pool runs out (nothing redirected).
        /// </summary>
        public bool Redirect<TPages>(ref TPages pages, ulong address, ulong target, PageAccess access)
            where TPages : struct, IPageSource
        {
            if (!SplitTo4K(ref pages, address)) return false;
            ulong table = _root;
            for (int level = 4; level >= 2; level--) table = _format.AddressOf(level, pages.Map(table)[Index(address, level)]);
            ulong* entry = &pages.Map(table)[Index(address, 1)];
            *entry = _format.LeafEntry(1, target & PageTableBits.AddressMask4K, _format.TypeOf(1, *entry), access);
            return true;
        }

        private static int Index(ulong address, int level) => (int)((address >> (3 + (9 * level))) & 0x1FF);

        /// <summary>A zeroed table from the pool, counted; 0 when the pool is exhausted.</summary>
        private ulong NewTable<TPages>(ref TPages pages)
            where TPages : struct, IPageSource
        {
            ulong table = pages.AllocatePage();
            if (table == 0 || (table & 0xFFF) != 0) return 0;
            ulong* entries = pages.Map(table);
            for (int i = 0; i < 512; i++) entries[i] = 0;   // the source promises zeroed pages; be sure
            _tables++;
            return table;
        }

        /// <summary>Fills the table at <paramref name="level"/> that maps from <paramref name="start"/>, up to the limit.</summary>
        private bool Fill<TPages>(ref TPages pages, ulong table, int level, ulong start, ulong limit, in MtrrSet mtrrs, bool allow1GiB)
            where TPages : struct, IPageSource
        {
            ulong* entries = pages.Map(table);
            ulong size = PageTableBits.EntrySize(level);
            for (int i = 0; i < 512; i++)
            {
                ulong address = start + ((ulong)i * size);
                if (address >= limit) break;
                if (NestedMap.LeafFits(level, address, limit, mtrrs, allow1GiB, out MemoryType type))
                {
                    entries[i] = _format.LeafEntry(level, address, type, PageAccess.All);
                    continue;
                }
                ulong child = NewTable(ref pages);
                if (child == 0 || !Fill(ref pages, child, level - 1, address, limit, mtrrs, allow1GiB)) return false;
                entries[i] = _format.TableEntry(child);
            }
            return true;
        }

        /// <summary>
        /// Replaces the large leaf at <paramref name="entries"/>[<paramref name="index"/>] (level 2 or 3) by a table
        /// of 512 leaves one level down with the same type and access, written before the one store that links it.
        /// </summary>
        private bool Split<TPages>(ref TPages pages, ulong* entries, int index, int level)
            where TPages : struct, IPageSource
        {
            ulong entry = entries[index];
            ulong child = NewTable(ref pages);
            if (child == 0) return false;
            ulong* children = pages.Map(child);
            ulong address = _format.AddressOf(level, entry);
            MemoryType type = _format.TypeOf(level, entry);
            PageAccess access = _format.AccessOf(entry);
            ulong size = PageTableBits.EntrySize(level - 1);
            for (int i = 0; i < 512; i++) children[i] = _format.LeafEntry(level - 1, address + ((ulong)i * size), type, access);
            entries[index] = _format.TableEntry(child);
            return true;
        }

        /// <summary>
        /// One pass of <see cref="SetAccess"/> over the table at <paramref name="level"/> mapping from
        /// <paramref name="tableBase"/>: the first pass (<paramref name="apply"/> false) splits the leaves that
        /// [<paramref name="start"/>, <paramref name="end"/>) covers only in part; the second rewrites the leaves
        /// inside it.
        /// </summary>
        private bool Change<TPages>(ref TPages pages, ulong table, int level, ulong tableBase, ulong start, ulong end, PageAccess access, bool apply)
            where TPages : struct, IPageSource
        {
            ulong* entries = pages.Map(table);
            int shift = 3 + (9 * level);
            ulong size = 1UL << shift;
            ulong tableEnd = tableBase + (512 * size);
            ulong from = start > tableBase ? start : tableBase;
            ulong to = end < tableEnd ? end : tableEnd;
            if (from >= to) return true;
            int first = (int)((from - tableBase) >> shift);
            int last = (int)((to - 1 - tableBase) >> shift);
            for (int i = first; i <= last; i++)
            {
                ulong address = tableBase + ((ulong)i * size);
                ulong entry = entries[i];
                if (!_format.IsMapped(entry)) return false;
                bool inside = address >= start && address + size <= end;
                if (_format.IsLeaf(level, entry))
                {
                    if (inside)
                    {
                        if (apply) entries[i] = _format.LeafEntry(level, _format.AddressOf(level, entry), _format.TypeOf(level, entry), access);
                        continue;
                    }
                    if (apply || !Split(ref pages, entries, i, level)) return false;
                    entry = entries[i];
                }
                else if (inside && !apply)
                {
                    continue;   // the first pass only works on the range's ends
                }
                if (!Change(ref pages, _format.AddressOf(level, entry), level - 1, address, start, end, access, apply)) return false;
            }
            return true;
        }
    }
}
