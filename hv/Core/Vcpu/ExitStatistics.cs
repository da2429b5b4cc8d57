// Exit counters per CPU and per vendor-neutral reason, read by the Status hypercall.
// Each CPU writes only its own slot, from its own exit handler (no locks, no atomics needed);
// readers on other CPUs may see a count one behind. Storage comes from the page pool.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core
{
    public static unsafe class ExitStatistics
    {
        private static CpuStatus* s_cpus;
        private static uint s_count;

        public static uint CpuCount => s_count;

        /// <summary>Bytes of storage <see cref="Initialize"/> needs for <paramref name="cpuCount"/> CPUs.</summary>
        public static ulong StorageBytes(uint cpuCount) => (ulong)sizeof(CpuStatus) * cpuCount;

        public static void Initialize(CpuStatus* storage, uint cpuCount, uint* apicIds)
        {
            s_cpus = storage;
            s_count = cpuCount;
            for (uint i = 0; i < cpuCount; i++)
            {
                CpuStatus* c = &storage[i];
                c->ApicId = apicIds == null ? i : apicIds[i];
                c->Virtualized = 0;
                c->TotalExits = 0;
                for (int r = 0; r < ExitReasons.Count; r++) c->Exits[r] = 0;
            }
        }

        public static void MarkVirtualized(uint cpu, uint apicId)
        {
            if (cpu >= s_count) return;
            s_cpus[cpu].ApicId = apicId;
            s_cpus[cpu].Virtualized = 1;
            LogRings.Write(cpu, LogEvent.CpuVirtualized, apicId, (ulong)LogRings.Vendor);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Count(uint cpu, ExitReason reason)
        {
            if (cpu >= s_count) return;
            CpuStatus* c = &s_cpus[cpu];
            c->TotalExits++;
            uint slot = (uint)reason < ExitReasons.Count ? (uint)reason : 0;
            c->Exits[slot]++;
        }

        public static CpuStatus* Cpu(uint cpu) => cpu < s_count ? &s_cpus[cpu] : null;
    }
}
