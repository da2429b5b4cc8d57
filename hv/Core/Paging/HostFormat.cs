// The host's own long-mode page tables (SDM Vol 3A 4.5, APM Vol 2 5.3): the hypervisor's CR3, an
// identity map of physical memory so that a physical address is a pointer. Supervisor only (U/S
// clear), writable, executable. Every leaf selects PAT index 0 (WB in the reset PAT the host keeps):
// the MTRRs still apply to the host's accesses and a WB PAT type yields to them (SDM Vol 3A Table
// 11-7), so MMIO stays UC. Large pages still follow MTRR boundaries (SDM Vol 3A 11.11.9), which the
// builder (NestedMap) takes care of.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public readonly struct HostFormat : IPageTableFormat
    {
        private const ulong Permissions = X86PageEntry.Present | X86PageEntry.Writable;

        public ulong TableEntry(ulong tableAddress) => (tableAddress & PageTableBits.AddressMask4K) | Permissions;

        /// <summary><paramref name="type"/> is not encoded: WB, which defers to the MTRRs.</summary>
        public ulong LeafEntry(int level, ulong address, MemoryType type, PageAccess access)
            => X86PageEntry.Leaf(level, address, 0, access, Permissions);

        public bool IsPresent(ulong entry) => (entry & X86PageEntry.Present) != 0;

        public bool IsMapped(ulong entry) => (entry & (X86PageEntry.Present | PageTableBits.SoftwareMapped)) != 0;

        public bool IsLeaf(int level, ulong entry) => X86PageEntry.IsLeaf(level, entry);

        public ulong AddressOf(int level, ulong entry) => X86PageEntry.AddressOf(level, entry);

        public MemoryType TypeOf(int level, ulong entry) => X86PageEntry.DefaultPatType(X86PageEntry.PatIndex(level, entry));

        public PageAccess AccessOf(ulong entry) => X86PageEntry.AccessOf(entry);
    }
}
