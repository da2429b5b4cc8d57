// State shared by every CPU and every part of the hypervisor: the page pool and the log (text lines:
// HvLog; binary records: LogRings, drained by LogUart). Set once on the BSP before any CPU is
// virtualized. The launch parameters are not kept: they live in loader memory the OS reclaims, so
// everything needed later is copied during Prepare.
using Vigil.Abi;
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor
{
    internal static unsafe class Hv
    {
        private static PagePool s_pool;

        public static HvLog Log;

        public static void Initialize(LaunchParameters* p)
        {
            s_pool = new PagePool(p->PoolBase, p->PoolSize);
            Log = new HvLog(p->LogPort);
            LogUart.Initialize(p->LogPort);
        }

        /// <summary>Zeroed pages from the reserved pool (identity-mapped: address = physical address); 0 when exhausted.</summary>
        public static ulong AllocatePages(ulong pages, ulong alignment = PagePool.PageSize) => s_pool.Allocate(pages, alignment);

        public static ulong PoolUsed => s_pool.Used;

        /// <summary>The pool as NestedMap's page source (copies share the one pool; it never moves: no GC).</summary>
        public static PoolPageSource Pages => new PoolPageSource((PagePool*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref s_pool));
    }
}
