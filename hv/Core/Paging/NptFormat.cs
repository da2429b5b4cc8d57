// AMD nested page table entries (APM Vol 2 15.25): ordinary long-mode entries (X86PageEntry) walked
// with the host's paging mode. Every nested access counts as a user access, so every entry has U/S
// set besides P and R/W (APM Vol 2 15.25.5). The memory type is the host PAT type the entry selects
// combined with the guest's PAT type and then with the MTRRs, which, unlike under EPT, still apply
// (APM Vol 2 15.25.8): the entry names the MTRR type through PWT/PCD, assuming the host's PAT is the
// reset layout (X86PageEntry.DefaultPat; the SVM back end must keep the guest's PAT writes in the
// VMCB's G_PAT so the host PAT stays so). WB → index 0, WT → 1, UC → 3; WC and WP → 0, where the
// MTRR decides (see X86PageEntry.DefaultPatIndex). A guest WB page then ends with the MTRR type.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public readonly struct NptFormat : IPageTableFormat
    {
        private const ulong Permissions = X86PageEntry.Present | X86PageEntry.Writable | X86PageEntry.User;

        public ulong TableEntry(ulong tableAddress) => (tableAddress & PageTableBits.AddressMask4K) | Permissions;

        /// <summary>No execute sets NX, which needs EFER.NXE in the host at VMRUN; the full-access leaves never set it.</summary>
        public ulong LeafEntry(int level, ulong address, MemoryType type, PageAccess access)
            => X86PageEntry.Leaf(level, address, X86PageEntry.DefaultPatIndex(type), access, Permissions);

        public bool IsPresent(ulong entry) => (entry & X86PageEntry.Present) != 0;

        public bool IsMapped(ulong entry) => (entry & (X86PageEntry.Present | PageTableBits.SoftwareMapped)) != 0;

        public bool IsLeaf(int level, ulong entry) => X86PageEntry.IsLeaf(level, entry);

        public ulong AddressOf(int level, ulong entry) => X86PageEntry.AddressOf(level, entry);

        public MemoryType TypeOf(int level, ulong entry) => X86PageEntry.DefaultPatType(X86PageEntry.PatIndex(level, entry));

        public PageAccess AccessOf(ulong entry) => X86PageEntry.AccessOf(entry);
    }
}
