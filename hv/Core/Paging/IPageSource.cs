// Where the page-table builder (NestedMap) gets its tables, behind a struct-constrained generic.
// In the hypervisor, pages come from the pool the loader reserved and memory is identity-mapped, so
// Map returns its argument; tests hand out unmanaged memory under made-up physical addresses.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public unsafe interface IPageSource
    {
        /// <summary>The physical address of a zeroed, 4 KiB-aligned page; 0 when exhausted.</summary>
        ulong AllocatePage();

        /// <summary>A pointer to the 512 entries of the table at <paramref name="physicalAddress"/>.</summary>
        ulong* Map(ulong physicalAddress);
    }
}
