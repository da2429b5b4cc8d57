// Every CPU's log ring (LogRing.cs), found by CPU index from any exit path of either back end, and
// the one call root-mode code makes to log: LogRings.Write(cpu, LogEvent.X, args). No formatting,
// no allocation, no lock: each CPU writes only its own ring. The rings are carved at start-up (BSP,
// boot services alive) from one block of the page pool; the drain to the log UART is hardware access
// and lives in the hypervisor (hv/LogUart.cs), as does the time stamp (ReadTimestamp, a partial
// method: without the hypervisor's half, in the tests, records carry TSC 0).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core
{
    public static unsafe partial class LogRings
    {
        /// <summary>
        /// Records per CPU: a burst of start-up and error records fits while the UART drains a few per exit;
        /// more is dropped and counted (LogRing), never silent. 512 x 48 bytes + the header: 7 pages per CPU.
        /// </summary>
        public const uint RecordsPerCpu = 512;

        private static byte* s_storage;
        private static uint s_count;
        private static Vendor s_vendor;

        // 1 when no record was written since the last drain began (MayHavePending: the question every exit asks,
        // one compare for any number of CPUs). Write clears it after its record; the drainer sets it with a locked
        // instruction (DrainedWord, before it looks at the rings), so a record it does not see clears it again.
        private static volatile uint s_drained;

        /// <summary>Bytes between two CPUs' rings: whole pages, so each ring starts page-aligned.</summary>
        public static ulong StrideBytes => (LogRing.BytesFor(RecordsPerCpu) + 4095) & ~4095UL;

        /// <summary>Bytes of storage <see cref="Initialize"/> needs for <paramref name="cpuCount"/> CPUs.</summary>
        public static ulong StorageBytes(uint cpuCount) => StrideBytes * cpuCount;

        public static uint Count => s_count;

        /// <summary>The back end the rings belong to (carried by <see cref="LogEvent.CpuVirtualized"/>).</summary>
        public static Vendor Vendor => s_vendor;

        /// <summary>Makes one ring per CPU in <paramref name="storage"/> (<see cref="StorageBytes"/> long, 8-byte aligned).</summary>
        public static bool Initialize(byte* storage, uint cpuCount, Vendor vendor)
        {
            s_count = 0;
            if (storage == null) return false;
            for (uint i = 0; i < cpuCount; i++)
            {
                if (LogRing.Initialize(storage + (i * StrideBytes), StrideBytes, (int)i) == null) return false;
            }
            s_storage = storage;
            s_vendor = vendor;
            s_count = cpuCount;
            return true;
        }

        /// <summary>CPU <paramref name="cpu"/>'s ring (launch index, as in the per-CPU state); null before start-up or out of range.</summary>
        public static LogRing* Of(uint cpu) => cpu < s_count ? (LogRing*)(s_storage + (cpu * StrideBytes)) : null;

        /// <summary>
        /// Appends a record to <paramref name="cpu"/>'s ring; only that CPU may call it (its ring has one producer).
        /// Does nothing before start-up; a full ring drops the record and counts it.
        /// </summary>
        public static void Write(uint cpu, LogEvent id, ulong arg0 = 0, ulong arg1 = 0, ulong arg2 = 0, ulong arg3 = 0)
        {
            LogRing* ring = Of(cpu);
            if (ring == null) return;
            ulong tsc = 0;
            ReadTimestamp(ref tsc);
            ring->Write(tsc, id, arg0, arg1, arg2, arg3);
            s_drained = 0;   // after the record (a volatile store: not moved before it)
        }

        /// <summary>
        /// False when no record (nor drop) was written since the last drain began: nothing to drain. True may still find
        /// nothing (another CPU's drain took it); the drain then sets the word again.
        /// </summary>
        public static bool MayHavePending
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => s_drained == 0;
        }

        /// <summary>
        /// The word behind <see cref="MayHavePending"/>, for the drainer: it sets it to 1 with LOCK CMPXCHG before looking at
        /// the rings (a full barrier: a record whose clear it overwrote is visible to it), and calls <see cref="MarkUndrained"/>
        /// when records remain after its budget.
        /// </summary>
#pragma warning disable CS0420   // the locked instruction is the access: no plain read or write goes through the pointer
        public static uint* DrainedWord => (uint*)Unsafe.AsPointer(ref s_drained);
#pragma warning restore CS0420

        /// <summary>Records remain after a drain: the next exit drains again.</summary>
        public static void MarkUndrained() => s_drained = 0;

        /// <summary>True when some ring holds records (or a drop report) the UART has not had yet (a pass over every ring).</summary>
        public static bool AnyPending()
        {
            byte* ring = s_storage;
            ulong stride = StrideBytes;
            for (uint i = 0; i < s_count; i++, ring += stride)
            {
                if (((LogRing*)ring)->Pending) return true;
            }
            return false;
        }

        /// <summary>The time stamp counter now (0 in the tests), for records kept elsewhere (the guard's events).</summary>
        public static ulong Timestamp()
        {
            ulong tsc = 0;
            ReadTimestamp(ref tsc);
            return tsc;
        }

        /// <summary>The time stamp counter, in the hypervisor (hv/LogUart.cs); absent in the tests.</summary>
        static partial void ReadTimestamp(ref ulong tsc);
    }
}
