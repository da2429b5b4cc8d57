// The hypervisor's page source for NestedMap: pages from the shared PagePool, reached by identity
// (host memory is identity-mapped, so a physical address is a pointer). Holds a pointer to the pool,
// so copies of this struct all draw from, and advance, the one pool.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public readonly unsafe struct PoolPageSource : IPageSource
    {
        private readonly PagePool* _pool;

        public PoolPageSource(PagePool* pool)
        {
            _pool = pool;
        }

        public ulong AllocatePage() => _pool->Allocate(1);

        public ulong* Map(ulong physicalAddress) => (ulong*)physicalAddress;
    }
}
