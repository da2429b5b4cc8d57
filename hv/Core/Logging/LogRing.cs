// A per-CPU ring of binary log records for root mode (VMX root / SVM host, interrupts off): no
// formatting, no allocation, no locks. Compiled twice: into the hypervisor and into the tests.
//
// How the hypervisor uses it:
//   - At start-up (boot services alive, BSP), for each CPU: take pages from the PagePool and make
//     them that CPU's ring:
//         ulong bytes = LogRing.BytesFor(512);                       // 64 + 512 * 48 bytes
//         LogRing* ring = LogRing.Initialize((void*)pool.Allocate((bytes + 4095) / 4096), bytes, cpu);
//     (LogRings.cs does this for every CPU and finds a ring by CPU index). One ring per CPU: the only
//     producer of a ring is the exit handler of its CPU, so writing needs no lock.
//   - In the exit handler: ring->Write(Cpu.Rdtsc(), LogEvent.ExitUnexpected, reason, rip);
//     per-exit detail through ring->Trace(...), which the compiler removes (arguments and all) unless
//     the hypervisor is built with VIGIL_TRACE. The severity comes from LogEvents, where the event is
//     declared. A full ring drops the new record and counts it: never silent, the next drain reports it.
//   - Drain a bounded number of records to the log UART at the end of an exit (for example 4, so an
//     exit costs at most a few hundred microseconds of UART time) or more when the CPU is idle (HLT
//     exits): ring->Drain(ref uart, 4), with a UartLogSink (hv/UartLogSink.cs; hv/LogUart.cs). The drain
//     is normally done by the ring's own CPU; another CPU may drain it too (one drainer at a time):
//     the producer publishes a record before moving _head, the consumer reads it before moving _tail.
//   - Before the logger is up, and for fatal errors, the text log (HvLog) is used instead.
// `vigil log FILE` decodes what the UART captured (framing: LogRecord.cs).
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core
{
    public unsafe struct LogRing
    {
        /// <summary>The ring's header size; records follow it.</summary>
        public const int HeaderSize = 64;

        private volatile uint _head;      // records stored (producer)
        private volatile uint _tail;      // records drained (consumer)
        private uint _sequence;           // writes attempted, dropped ones included (producer)
        private uint _mask;               // capacity - 1; the capacity is a power of two
        private ulong _dropped;           // records dropped because the ring was full (producer)
        private ulong _droppedReported;   // how many of those the drain has reported (consumer)
        private LogRecord* _records;
        private byte _cpu;

        /// <summary>Bytes of memory for a ring of <paramref name="records"/> records (a power of two).</summary>
        public static ulong BytesFor(uint records) => HeaderSize + ((ulong)records * LogRecord.Size);

        /// <summary>
        /// Makes a ring in <paramref name="memory"/> (8-byte aligned, <paramref name="bytes"/> long) for CPU
        /// <paramref name="cpu"/>; it holds the largest power of two of records that fits. Null when fewer
        /// than two records fit.
        /// </summary>
        public static LogRing* Initialize(void* memory, ulong bytes, int cpu)
        {
            if (memory == null || bytes < HeaderSize + (2 * LogRecord.Size) || ((ulong)memory & 7) != 0) return null;
            ulong fit = (bytes - HeaderSize) / LogRecord.Size;
            uint capacity = 1;
            while (capacity * 2UL <= fit && capacity < 0x4000_0000) capacity *= 2;
            byte* p = (byte*)memory;
            for (int i = 0; i < HeaderSize; i++) p[i] = 0;
            LogRing* ring = (LogRing*)memory;
            ring->_mask = capacity - 1;
            ring->_records = (LogRecord*)(p + HeaderSize);
            ring->_cpu = (byte)cpu;
            return ring;
        }

        public readonly uint Capacity => _mask + 1;

        /// <summary>Records waiting to be drained.</summary>
        public readonly uint Count => _head - _tail;

        /// <summary>True when a drain would write something: stored records or an unreported drop.</summary>
        public readonly bool Pending
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => _head != _tail || _dropped != _droppedReported;
        }

        /// <summary>Records dropped since start-up because the ring was full.</summary>
        public readonly ulong Dropped => _dropped;

        public readonly int Cpu => _cpu;

        /// <summary>
        /// Appends one record with the event's declared severity; false when the ring is full (the record is
        /// counted as dropped and its sequence number stays unused, so the decoder sees the gap).
        /// </summary>
        public bool Write(ulong tsc, LogEvent id, ulong arg0 = 0, ulong arg1 = 0, ulong arg2 = 0, ulong arg3 = 0)
        {
            uint sequence = _sequence++;
            uint head = _head;
            if (head - _tail > _mask)
            {
                _dropped++;
                return false;
            }
            LogRecord* record = _records + (head & _mask);
            record->Sequence = sequence;
            record->Event = id;
            record->Cpu = _cpu;
            record->Severity = LogEvents.SeverityOf(id);
            record->Tsc = tsc;
            record->Arg0 = arg0;
            record->Arg1 = arg1;
            record->Arg2 = arg2;
            record->Arg3 = arg3;
            _head = head + 1;   // volatile: publishes the record
            return true;
        }

        /// <summary>Per-exit detail: compiled out, with its arguments, unless VIGIL_TRACE is defined.</summary>
        [Conditional("VIGIL_TRACE")]
        public void Trace(ulong tsc, LogEvent id, ulong arg0 = 0, ulong arg1 = 0, ulong arg2 = 0, ulong arg3 = 0)
        {
            Write(tsc, id, arg0, arg1, arg2, arg3);
        }

        /// <summary>
        /// Writes up to <paramref name="maxRecords"/> frames to <paramref name="sink"/>, oldest first: first a
        /// <see cref="LogEvent.RecordsDropped"/> record when records were dropped since the last report, then
        /// the stored records. Returns the number of frames written.
        /// </summary>
        public int Drain<TSink>(ref TSink sink, int maxRecords)
            where TSink : struct, ILogSink
        {
            int frames = 0;
            ulong dropped = _dropped;
            if (dropped != _droppedReported && frames < maxRecords)
            {
                LogRecord report = default;
                report.Sequence = _sequence;
                report.Event = LogEvent.RecordsDropped;
                report.Cpu = _cpu;
                report.Severity = LogEvents.SeverityOf(LogEvent.RecordsDropped);
                report.Arg0 = dropped - _droppedReported;
                report.Arg1 = dropped;
                LogFrame.Write(ref sink, report);
                _droppedReported = dropped;
                frames++;
            }
            uint head = _head;   // volatile: records before it are complete
            uint tail = _tail;
            while (frames < maxRecords && tail != head)
            {
                LogFrame.Write(ref sink, _records[tail & _mask]);
                tail++;
                _tail = tail;    // volatile: the slot may be reused only after it was read
                frames++;
            }
            return frames;
        }
    }
}
