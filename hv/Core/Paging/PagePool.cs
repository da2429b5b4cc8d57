// Physical pages for the hypervisor: a bump allocator over the pool the loader reserved.
// Memory is identity-mapped in the host, so a page's address is its physical address.
// Runs at initialization (boot services still alive, BSP) — never on an exit path.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public unsafe struct PagePool
    {
        public const ulong PageSize = 4096;

        private ulong _base;
        private ulong _next;
        private ulong _end;

        public PagePool(ulong poolBase, ulong size)
        {
            _base = (poolBase + PageSize - 1) & ~(PageSize - 1);
            _next = _base;
            _end = poolBase + size;
        }

        public readonly ulong Used => _next - _base;

        public readonly ulong Free => _end > _next ? _end - _next : 0;

        /// <summary>Zeroed, page-aligned pages; 0 when the pool is exhausted (the caller reports it).</summary>
        public ulong Allocate(ulong pages, ulong alignment = PageSize)
        {
            ulong start = (_next + alignment - 1) & ~(alignment - 1);
            ulong bytes = pages * PageSize;
            if (pages == 0 || start + bytes > _end || start + bytes < start) return 0;
            _next = start + bytes;
            ulong* p = (ulong*)start;
            for (ulong i = 0; i < bytes / 8; i++) p[i] = 0;
            return start;
        }
    }
}
