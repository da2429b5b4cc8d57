// Intel EPT paging-structure entries (SDM Vol 3C 29.3.2) and the EPT pointer (SDM Vol 3C 25.6.11).
// Every entry: bit 0 read, bit 1 write, bit 2 execute (all clear = not present), bits 51:12 the
// address. Leaves: bits 5:3 the EPT memory type, bit 6 ignore-PAT, bit 7 page size (1 in a PDPTE for
// a 1 GiB page, in a PDE for a 2 MiB page; ignored in a PTE). Non-leaf entries keep bits 7:3 zero.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public readonly struct EptFormat : IPageTableFormat
    {
        public const ulong Read = 1UL << 0;
        public const ulong Write = 1UL << 1;
        public const ulong Execute = 1UL << 2;
        public const int MemoryTypeShift = 3;
        public const ulong MemoryTypeMask = 7UL << MemoryTypeShift;
        public const ulong IgnorePat = 1UL << 6;
        public const ulong LargePage = 1UL << 7;

        private readonly bool _ignorePat;

        /// <summary>
        /// With <paramref name="ignorePat"/> false (the default) the guest's PAT still combines with the EPT
        /// type exactly as it would with the MTRRs (SDM Vol 3C 29.3.7.2 uses Table 11-7 with the EPT type in
        /// place of the MTRR type), so an EPT type taken from the MTRRs reproduces the machine without Vigil:
        /// the guest's WC framebuffer and UC device mappings keep working. Set it only to force the EPT type.
        /// </summary>
        public EptFormat(bool ignorePat)
        {
            _ignorePat = ignorePat;
        }

        /// <summary>
        /// The EPTP for a PML4 at <paramref name="pml4"/>: bits 2:0 the type of the walks' own accesses (WB;
        /// IA32_VMX_EPT_VPID_CAP bit 14 says it is supported), bits 5:3 the walk length minus one (4 levels),
        /// bit 6 accessed/dirty flags (only if IA32_VMX_EPT_VPID_CAP bit 21).
        /// </summary>
        public static ulong Pointer(ulong pml4, bool accessedDirty = false)
            => (pml4 & PageTableBits.AddressMask4K) | (ulong)MemoryType.WriteBack | (3UL << 3) | (accessedDirty ? 1UL << 6 : 0);

        public ulong TableEntry(ulong tableAddress) => (tableAddress & PageTableBits.AddressMask4K) | Read | Write | Execute;

        /// <summary>
        /// Write without read is an EPT misconfiguration (SDM Vol 3C 29.3.3.1), so write implies read here.
        /// Execute without read needs IA32_VMX_EPT_VPID_CAP bit 0; the caller asks for it only when supported.
        /// </summary>
        public ulong LeafEntry(int level, ulong address, MemoryType type, PageAccess access)
        {
            ulong entry = (address & PageTableBits.LeafAddressMask(level)) | ((ulong)type << MemoryTypeShift);
            if (_ignorePat) entry |= IgnorePat;
            if (level > 1) entry |= LargePage;
            if ((access & PageAccess.Write) != 0) entry |= Write | Read;
            if ((access & PageAccess.Read) != 0) entry |= Read;
            if ((access & PageAccess.Execute) != 0) entry |= Execute;
            if ((entry & (Read | Write | Execute)) == 0) entry |= PageTableBits.SoftwareMapped;
            return entry;
        }

        public bool IsPresent(ulong entry) => (entry & (Read | Write | Execute)) != 0;

        public bool IsMapped(ulong entry) => IsPresent(entry) || (entry & PageTableBits.SoftwareMapped) != 0;

        public bool IsLeaf(int level, ulong entry) => level == 1 || ((level == 2 || level == 3) && (entry & LargePage) != 0);

        public ulong AddressOf(int level, ulong entry)
            => entry & (IsLeaf(level, entry) ? PageTableBits.LeafAddressMask(level) : PageTableBits.AddressMask4K);

        public MemoryType TypeOf(int level, ulong entry)
        {
            ulong type = (entry & MemoryTypeMask) >> MemoryTypeShift;
            return type == 1 || type == 4 || type == 5 || type == 6 ? (MemoryType)type : MemoryType.Uncacheable;
        }

        public PageAccess AccessOf(ulong entry) => (PageAccess)(int)(entry & (Read | Write | Execute));
    }
}
