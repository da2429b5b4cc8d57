// The entry format of a 4-level page table, as the identity-map builder (NestedMap) sees it: Intel
// EPT (SDM Vol 3C 29.3.2), AMD nested page tables (APM Vol 2 15.25, ordinary long-mode entries) and
// the host's own long-mode tables (SDM Vol 3A 4.5, APM Vol 2 5.3). The builder is generic over a
// struct implementing it, so every call is resolved at compile time (no interface dispatch).
// Levels: 1 = PT entry (4 KiB page), 2 = PD entry (2 MiB), 3 = PDPT entry (1 GiB), 4 = PML4 entry.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    /// <summary>What the guest (or the host) may do with a page. Write implies read in every format.</summary>
    [System.Flags]
    public enum PageAccess
    {
        None = 0,
        Read = 1,
        Write = 2,
        Execute = 4,
        All = Read | Write | Execute,
    }

    public interface IPageTableFormat
    {
        /// <summary>A non-leaf entry at any level pointing to the next table, granting every access.</summary>
        ulong TableEntry(ulong tableAddress);

        /// <summary>
        /// A leaf at level 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB) mapping <paramref name="address"/> (aligned to the
        /// page size) with a memory type. With <see cref="PageAccess.None"/> the entry is not present for the
        /// hardware (every access faults: EPT violation, #NPF, #PF) but keeps its address, size and type, marked
        /// by <see cref="PageTableBits.SoftwareMapped"/>, so access can be given back and large pages split.
        /// </summary>
        ulong LeafEntry(int level, ulong address, MemoryType type, PageAccess access);

        /// <summary>The hardware translates through the entry (it grants some access).</summary>
        bool IsPresent(ulong entry);

        /// <summary>Present, or a no-access leaf made by <see cref="LeafEntry"/>; false for an empty entry.</summary>
        bool IsMapped(ulong entry);

        /// <summary>The entry maps a page (level 1, or the page-size bit at level 2 or 3) rather than a table.</summary>
        bool IsLeaf(int level, ulong entry);

        /// <summary>The page's (leaf) or next table's (non-leaf) physical address.</summary>
        ulong AddressOf(int level, ulong entry);

        /// <summary>A leaf's memory type as this format encodes it.</summary>
        MemoryType TypeOf(int level, ulong entry);

        /// <summary>A leaf's access.</summary>
        PageAccess AccessOf(ulong entry);
    }

    /// <summary>Bits and sizes shared by the formats.</summary>
    public static class PageTableBits
    {
        public const ulong PageSize4K = 0x1000;
        public const ulong PageSize2M = 0x20_0000;
        public const ulong PageSize1G = 0x4000_0000;

        /// <summary>
        /// Set by Vigil in a not-present leaf that still describes a mapping (see <see cref="IPageTableFormat.LeafEntry"/>).
        /// Bit 52 is ignored by the hardware in not-present entries of every format (SDM Vol 3C 29.3.2: bits 62:3
        /// of an EPT entry with bits 2:0 clear; SDM Vol 3A 4.5 / APM Vol 2 5.3: bits 63:1 of an entry with P clear).
        /// </summary>
        public const ulong SoftwareMapped = 1UL << 52;

        /// <summary>Physical address bits of a table or 4 KiB page (51:12), 2 MiB page (51:21), 1 GiB page (51:30).</summary>
        public const ulong AddressMask4K = 0x000F_FFFF_FFFF_F000;
        public const ulong AddressMask2M = 0x000F_FFFF_FFE0_0000;
        public const ulong AddressMask1G = 0x000F_FFFF_C000_0000;

        /// <summary>Bytes one entry at <paramref name="level"/> (1-4) maps.</summary>
        public static ulong EntrySize(int level) => 1UL << (3 + (9 * level));

        /// <summary>The address bits of a leaf at <paramref name="level"/>; tables use <see cref="AddressMask4K"/>.</summary>
        public static ulong LeafAddressMask(int level)
            => level == 3 ? AddressMask1G : level == 2 ? AddressMask2M : AddressMask4K;
    }
}
