// VMX root / SVM host (interrupts off) and start-up: the log UART, shared by every CPU. One lock word
// (a LOCK CMPXCHG spin lock, Cpu.SpinTryAcquire) serializes all that is written to it, binary frames
// drained from the rings (hv/Core/Logging/LogRings.cs) and HvLog's text lines alike, so the bytes of two CPUs
// never interleave inside a frame or a line.
//   - After every exit (but INIT/SIPI, which are timing-sensitive): AfterExit writes at most
//     RecordsPerExit frames, this CPU's ring first, then the other CPUs' (a CPU that seldom exits, or
//     one that stopped, still gets its records out: the lock makes the drainer the rings' only
//     consumer). When another CPU holds the UART it does not wait: the records go out on a later exit.
//     At 115200 baud a 56-byte frame takes about 5 ms on hardware, so an exit that drains pays up to
//     about 20 ms; an exit when nothing was written since the last drain pays one compare
//     (LogRings.MayHavePending), whatever the number of CPUs.
//   - On a path that ends the guest (fatal exit, reset): Flush writes all of this CPU's ring first.
//   - Text (HvLog): Acquire waits a bounded time, then writes anyway (a CPU that died holding the lock
//     must not silence the others' fatal reports).
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Platform;

namespace Vigil.Hypervisor
{
    internal static unsafe class LogUart
    {
        /// <summary>Frames one exit may write.</summary>
        public const int RecordsPerExit = 4;

        /// <summary>Attempts before a text line gives up on the lock (well beyond a few frames' UART time).</summary>
        private const int AcquireAttempts = 1_000_000;

        private static ushort s_port;
        private static uint s_lock;

        /// <summary>The configured log port (LaunchParameters.LogPort; 0: none, records stay in the rings).</summary>
        public static void Initialize(ushort port) => s_port = port;

        private static uint* LockWord => (uint*)Unsafe.AsPointer(ref s_lock);

        /// <summary>Whether <see cref="AfterExit"/> has anything to do: a log port and a record not yet drained.</summary>
        public static bool HasWork
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => s_port != 0 && LogRings.MayHavePending;
        }

        /// <summary>End of an exit on CPU <paramref name="cpu"/>: a bounded drain, skipped while another CPU has the UART.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void AfterExit(uint cpu)
        {
            if (HasWork) DrainAfterExit(cpu);
        }

        private static void DrainAfterExit(uint cpu)
        {
            if (Cpu.SpinTryAcquire(LockWord) == 0) return;
            Cpu.SpinTryAcquire(LogRings.DrainedWord);   // "drained" set with a locked instruction before the rings are read
            DrainLocked(cpu, RecordsPerExit);
            if (LogRings.AnyPending()) LogRings.MarkUndrained();
            Cpu.SpinRelease(LockWord);
        }

        /// <summary>Before CPU <paramref name="cpu"/> stops or resets the machine: all its records, then what fits of the others'.</summary>
        public static void Flush(uint cpu)
        {
            if (s_port == 0) return;
            if (Acquire())
            {
                DrainLocked(cpu, (int)LogRings.RecordsPerCpu + 1);
                Release();
                return;
            }
            // The lock holder is stuck: this CPU's own ring has no other consumer while that holder is not draining it.
            LogRing* own = LogRings.Of(cpu);
            var sink = new UartLogSink(s_port);
            if (own != null) own->Drain(ref sink, (int)LogRings.RecordsPerCpu + 1);
        }

        /// <summary>Takes the UART lock, waiting a bounded time; false when it could not (the caller writes anyway).</summary>
        public static bool Acquire()
        {
            for (int i = 0; i < AcquireAttempts; i++)
            {
                if (Cpu.SpinTryAcquire(LockWord) != 0) return true;
                Cpu.Pause();
            }
            return false;
        }

        public static void Release() => Cpu.SpinRelease(LockWord);

        private static void DrainLocked(uint cpu, int budget)
        {
            var sink = new UartLogSink(s_port);
            int frames = 0;
            LogRing* own = LogRings.Of(cpu);
            if (own != null) frames = own->Drain(ref sink, budget);
            uint count = LogRings.Count;
            for (uint k = 1; k < count && frames < budget; k++)
            {
                frames += LogRings.Of((cpu + k) % count)->Drain(ref sink, budget - frames);
            }
        }
    }
}
