// Start-up of an image without a runtime: give the allocator its memory, then allocate the
// blocks behind statics of reference type (ReadyToRun section 201) exactly as the real
// runtime would. Must run before any code touches such a static.
using System;
using System.Runtime.CompilerServices;

namespace Internal.Runtime
{
    public static unsafe class Startup
    {
        private const uint ReadyToRunSignature = 0x00525452;   // "RTR"
        private const int GCStaticRegion = 201;
        private const int ThreadStaticRegion = 202;

        /// <summary>Returns the number of static blocks initialized, or -1 if the module header is bad.</summary>
        public static int Initialize(void* heap, ulong heapSize)
        {
            Heap.Initialize(heap, heapSize);
            // ReadyToRunHeader: uint Signature; ushort Major, Minor; uint Flags; ushort NumberOfSections;
            // byte EntrySize; byte EntryType; then sections { int Id; int Flags; void* Start; void* End; }.
            byte* header = RuntimeStubs.ReadyToRunHeader();
            if (*(uint*)header != ReadyToRunSignature) return -1;
            int count = *(ushort*)(header + 12);
            int entrySize = header[14];
            byte* entry = header + 16;
            int initialized = 0;
            for (int i = 0; i < count; i++, entry += entrySize)
            {
                int id = *(int*)entry;
                byte* start = *(byte**)(entry + 8);
                byte* end = *(byte**)(entry + 16);
                if (id == GCStaticRegion) initialized += InitializeStatics(start, end);
                if (id == ThreadStaticRegion) ThreadStatics.SetRegion(start, end);
            }
            return initialized;
        }

        private static byte* ReadRelPtr32(void* address) => (byte*)address + *(int*)address;

        // The region is an array of 32-bit relative pointers to cells. Each cell holds a relative
        // pointer to the MethodTable of the statics block with flags: 1 = not yet allocated,
        // 2 = preinitialized data follows (a second relative pointer). Allocate, copy, and store
        // the object pointer in the cell.
        private static int InitializeStatics(byte* start, byte* end)
        {
            int n = 0;
            for (byte* block = start; block < end; block += sizeof(int))
            {
                nint* cell = (nint*)ReadRelPtr32(block);
                nint target = (nint)ReadRelPtr32(cell);
                if ((*cell & 1) == 0) continue;
                MethodTable* mt = (MethodTable*)(target & ~(nint)3);
                object obj = CompilerHelpers.AllocHelpers.RhpNewFast(mt);
                byte* address = *(byte**)Unsafe.AsPointer(ref obj);
                if ((*cell & 2) == 2)
                {
                    byte* data = ReadRelPtr32((int*)cell + 1);
                    ulong size = mt->BaseSize - 16;
                    for (ulong i = 0; i < size; i++) address[8 + i] = data[i];
                }
                *cell = (nint)address;
                n++;
            }
            return n;
        }
    }

    /// <summary>[ThreadStatic] for a one-thread image (needs ilc --noinlinetls).</summary>
    internal static unsafe class ThreadStatics
    {
        private static MethodTable** s_region;
        private static int s_count;
        private static IntPtr* s_bases;

        internal static void SetRegion(byte* start, byte* end)
        {
            s_region = (MethodTable**)start;
            s_count = (int)((end - start) / sizeof(void*));
        }

        internal static object GetThreadStaticBaseForType(void* pModuleData, int typeTlsIndex)
        {
            if (s_bases == null) s_bases = (IntPtr*)Heap.Allocate(((ulong)s_count * 8) + 8);
            if (s_bases[typeTlsIndex] == default(IntPtr))
            {
                object o = CompilerHelpers.AllocHelpers.RhpNewFast(s_region[typeTlsIndex]);
                s_bases[typeTlsIndex] = *(IntPtr*)Unsafe.AsPointer(ref o);
            }
            return Unsafe.As<IntPtr, object>(ref s_bases[typeTlsIndex]);
        }

        internal static object GetInlinedThreadStaticBaseSlow(ref object threadStorage)
        {
            FailFast.Fail("inlined thread statics are unsupported: compile with ilc --noinlinetls");
            return null;
        }
    }
}

namespace System.Runtime.CompilerServices
{
    /// <summary>Layout contract with ILC: precedes the non-GC statics of a type with a static constructor.</summary>
    public struct StaticClassConstructionContext
    {
        public IntPtr cctorMethodAddress;
    }

    internal static unsafe class ClassConstructorRunner
    {
        // One thread: no lock and no recursion guard needed; the address is cleared before the call.
        private static void EnsureClassConstructorRun(StaticClassConstructionContext* context)
        {
            IntPtr cctor = context->cctorMethodAddress;
            if (cctor == default(IntPtr)) return;
            context->cctorMethodAddress = default;
            ((delegate*<void>)(void*)cctor)();
        }

        private static object CheckStaticClassConstructionReturnGCStaticBase(StaticClassConstructionContext* context, object gcStaticBase)
        {
            EnsureClassConstructorRun(context);
            return gcStaticBase;
        }

        private static IntPtr CheckStaticClassConstructionReturnNonGCStaticBase(StaticClassConstructionContext* context, IntPtr nonGcStaticBase)
        {
            EnsureClassConstructorRun(context);
            return nonGcStaticBase;
        }

        private static IntPtr CheckStaticClassConstructionReturnThreadStaticBase(StaticClassConstructionContext* context, IntPtr threadStaticBase)
        {
            EnsureClassConstructorRun(context);
            return threadStaticBase;
        }
    }
}
