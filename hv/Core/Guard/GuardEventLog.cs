// The guard's events: an append-only sequence in the hypervisor's memory, shared by all CPUs. Every
// recorded attempt gets the next sequence number (1, 2, 3, ...); readers ask for "the events after N"
// and get copies, so no guest process can delete, change or hide an event from another. The memory
// is a ring: when it is full the oldest event is overwritten and counted, and a reader whose cursor
// fell behind is told how many it missed: overflow is never silent.
// Not synchronized: the caller holds the guard's lock for Append and ReadAfter (root mode, any CPU).
// Compiled twice (hypervisor and tests).
using System.Runtime.InteropServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct GuardEventLog
    {
        /// <summary>The log's header size; events follow it (a multiple of 16 keeps them aligned).</summary>
        public const int HeaderSize = 64 + (VerdictCounters * 8);

        private const int ObjectClasses = (int)GuardObject.HypervisorMemory + 1;
        private const int Verdicts = (int)GuardVerdict.BlockAndFault + 1;
        private const int VerdictCounters = ObjectClasses * Verdicts;

        private ulong _next;          // the sequence number the next event gets (first: 1)
        private ulong _overwritten;   // events the ring overwrote (read by someone or not)
        private uint _mask;           // capacity - 1 (a power of two)
        private uint _reserved0;
        private GuardEvent* _events;
        private ulong _reserved1;
        private ulong _reserved2;
        private ulong _reserved3;
        private ulong _reserved4;
        private fixed ulong _verdicts[VerdictCounters];   // attempts judged, per object class and verdict (Allow included)

        /// <summary>Bytes of memory for a log of <paramref name="capacity"/> events (a power of two).</summary>
        public static ulong BytesFor(uint capacity) => HeaderSize + ((ulong)capacity * (ulong)sizeof(GuardEvent));

        /// <summary>
        /// Makes a log in <paramref name="memory"/> (16-byte aligned, <paramref name="bytes"/> long) holding the
        /// largest power of two of events that fits; null when fewer than two fit.
        /// </summary>
        public static GuardEventLog* Initialize(void* memory, ulong bytes)
        {
            if (memory == null || ((ulong)memory & 15) != 0 || bytes < HeaderSize + (2UL * (ulong)sizeof(GuardEvent))) return null;
            ulong fit = (bytes - HeaderSize) / (ulong)sizeof(GuardEvent);
            uint capacity = 1;
            while (capacity * 2UL <= fit && capacity < 0x1000_0000) capacity *= 2;
            byte* p = (byte*)memory;
            for (int i = 0; i < HeaderSize; i++) p[i] = 0;
            var log = (GuardEventLog*)memory;
            log->_next = 1;
            log->_mask = capacity - 1;
            log->_events = (GuardEvent*)(p + HeaderSize);
            return log;
        }

        public uint Capacity => _mask + 1;

        /// <summary>The newest event's sequence number; 0 before the first.</summary>
        public ulong Newest => _next - 1;

        /// <summary>The oldest sequence number still held (Newest + 1 when empty).</summary>
        public ulong Oldest => _next > Capacity ? _next - Capacity : 1;

        /// <summary>Events the ring overwrote since it was made.</summary>
        public ulong Overwritten => _overwritten;

        /// <summary>Counts a judged attempt (recorded or not).</summary>
        public void Count(GuardObject o, GuardVerdict verdict)
        {
            if ((uint)o < ObjectClasses && (uint)verdict < Verdicts) _verdicts[((int)o * Verdicts) + (int)verdict]++;
        }

        /// <summary>Attempts on <paramref name="o"/> that got <paramref name="verdict"/>.</summary>
        public ulong Counted(GuardObject o, GuardVerdict verdict)
            => (uint)o < ObjectClasses && (uint)verdict < Verdicts ? _verdicts[((int)o * Verdicts) + (int)verdict] : 0;

        /// <summary>Stores a copy of <paramref name="e"/> with the next sequence number (written into it too) and returns that number.</summary>
        public ulong Append(ref GuardEvent e)
        {
            ulong sequence = _next;
            if (sequence > Capacity) _overwritten++;   // the slot still holds event sequence - capacity
            e.Sequence = sequence;
            _events[(sequence - 1) & _mask] = e;
            _next = sequence + 1;
            return sequence;
        }

        /// <summary>
        /// Copies the events after sequence <paramref name="after"/>, oldest first, into <paramref name="buffer"/>
        /// (at most <paramref name="room"/>); returns how many. <paramref name="missed"/> is how many events after
        /// <paramref name="after"/> were overwritten before this read (the reader fell behind).
        /// </summary>
        public int ReadAfter(ulong after, GuardEvent* buffer, int room, out ulong missed)
        {
            ulong first = after + 1;
            ulong oldest = Oldest;
            missed = first < oldest ? oldest - first : 0;
            if (first < oldest) first = oldest;
            int copied = 0;
            for (ulong s = first; s < _next && copied < room; s++) buffer[copied++] = _events[(s - 1) & _mask];
            return copied;
        }
    }
}
