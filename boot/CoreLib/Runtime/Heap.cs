// The allocator: a bump pointer over one block reserved up front by the image (boot services
// memory, or the hypervisor's reserved region). Nothing is ever freed: there is no GC.
using System;

namespace Internal.Runtime
{
    public static unsafe class Heap
    {
        private static byte* s_start;
        private static byte* s_current;
        private static byte* s_end;

        /// <summary>Bytes handed out so far (16-byte granules, headers included).</summary>
        public static ulong Allocated => (ulong)(s_current - s_start);

        /// <summary>Bytes still available.</summary>
        public static ulong Remaining => (ulong)(s_end - s_current);

        public static void Initialize(void* start, ulong size)
        {
            s_start = (byte*)start;
            s_current = s_start;
            s_end = s_start + size;
        }

        /// <summary>Zeroed memory, 16-byte aligned. Out of memory is fatal.</summary>
        public static void* Allocate(ulong size)
        {
            size = (size + 15) & ~15UL;
            byte* p = s_current;
            if (p == null) FailFast.Fail("allocation before Heap.Initialize");
            if (size > (ulong)(s_end - p)) FailFast.Fail("out of memory (the heap reserved at start-up is exhausted)");
            s_current = p + size;
            for (ulong i = 0; i < size; i++) p[i] = 0; // reserved pages are not zeroed by firmware
            return p;
        }
    }
}
