// SVM host: the nested page tables' change service (hv/Core/Paging/NestedMapService) for the SVM back end, and
// the hardware it runs on. Invalidation is per CPU and lazy: TLB_CONTROL = 1 flushes the TLB on this
// CPU's next VMRUN (APM Vol 2 15.16.1; flush-by-ASID, value 3, needs CPUID 8000_000A EDX bit 6, which
// QEMU lacks), and the CPU is in the host when it acknowledges, so no guest instruction runs between the
// acknowledgement and the flush. Kicks are NMIs (hv/Host/NmiKick; the NMI intercept: SvmNmi).
// Initialized on the BSP in Prepare after the map is built; used by every CPU after launch.
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Svm
{
    /// <summary>INestedMapCpus on SVM.</summary>
    internal readonly unsafe struct SvmNestedMapCpus : INestedMapCpus
    {
        public bool TryLock(uint* word) => Vigil.Platform.Cpu.SpinTryAcquire(word) != 0;

        public void Unlock(uint* word) => Vigil.Platform.Cpu.SpinRelease(word);

        public void Fence()
        {
            uint scratch = 0;
            Vigil.Platform.Cpu.SpinTryAcquire(&scratch);   // a locked instruction: a full fence (SDM Vol 3A 9.2.2)
        }

        public void Kick(uint cpu) => NmiKick.Send(cpu);

        public void InvalidateLocal(uint cpu)
        {
            SvmCpu* c = SvmBackEnd.Cpu(cpu);
            if (c != null) c->Vmcb->TlbControl = 1;
        }

        public void Pause() => Vigil.Platform.Cpu.Pause();
    }

    internal static unsafe class SvmNestedMapChanges
    {
        /// <summary>Tables kept for splits (PoolSize.NestedReserveTables: every guarded range and then some).</summary>
        public const uint Tables = Vigil.Abi.PoolSize.NestedReserveTables;

        /// <summary>Pauses a change waits for acknowledgements (well over a second on hardware) before it reports Unconfirmed.</summary>
        public const ulong WaitBudget = 50_000_000;

        private static NestedMapService<NptFormat, PoolPageSource> s_service;

        /// <summary>Takes over the nested tables (BSP, Prepare, after they are built); false when the pool ran out.</summary>
        public static bool Initialize(ulong root, ulong limit, uint cpus)
        {
            ulong bytes = NestedMapService.BytesFor(cpus, Tables);
            ulong block = Hv.AllocatePages((bytes + 4095) / 4096);
            return block != 0 && s_service.Initialize(default, Hv.Pages, root, limit, (void*)block, cpus, Tables, WaitBudget);
        }

        /// <summary>This CPU is about to run its guest (launch): changes wait for it from now on.</summary>
        public static void Activate(uint self)
        {
            var cpus = default(SvmNestedMapCpus);
            s_service.Activate(ref cpus, self);
        }

        /// <summary>This CPU does not run its guest (a failed launch): changes no longer wait for it.</summary>
        public static void Deactivate(uint self) => s_service.Deactivate(self);

        /// <summary>On every exit before VMRUN, and in host waits: invalidate if the map changed since the last time.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Acknowledge(uint self)
        {
            var cpus = default(SvmNestedMapCpus);
            s_service.Acknowledge(ref cpus, self);
        }

        /// <summary>
        /// Once, on the BSP's first exit (the APs were launched before it and run their firmware's idle loops as
        /// guests): NestedMapService.StartupCheck, one large page split with the same translations while every other
        /// CPU is kicked out of its guest and acknowledges; the result goes to the log (an error when a CPU did not
        /// answer: later changes would not be confirmed either).
        /// </summary>
        public static void StartupCheck(uint self, ulong avoidBase, ulong avoidSize)
        {
            var cpus = default(SvmNestedMapCpus);
            NestedMapResult result = s_service.StartupCheck(ref cpus, self, avoidBase, avoidSize, out ulong page, out int level, out uint rounds);
            if (page == 0)
            {
                Hv.Log.Info("nested map: start-up check skipped (no large page to split)");
                return;
            }
            string what = "nested map: start-up check split the " + (level == 3 ? "1 GiB" : "2 MiB") + " page at 0x" + HvMain.Hex(page) + " in "
                + ((long)rounds).ToString() + (rounds == 1 ? " invalidation round" : " invalidation rounds");
            if (result == NestedMapResult.Done) Hv.Log.Info(what + ": every CPU acknowledged");
            else Hv.Log.Error(what + ": " + (result == NestedMapResult.Unconfirmed ? "a CPU did not acknowledge in time" : "the change failed"));
        }

        /// <summary>The guard's entry: <paramref name="access"/> for the pages of the range, on every CPU before it returns.</summary>
        public static NestedMapResult Protect(uint self, ulong gpa, ulong size, PageAccess access)
        {
            var cpus = default(SvmNestedMapCpus);
            return s_service.Protect(ref cpus, self, gpa, size, access);
        }

        /// <summary>Full access again for the pages of the range.</summary>
        public static NestedMapResult Restore(uint self, ulong gpa, ulong size)
        {
            var cpus = default(SvmNestedMapCpus);
            return s_service.Restore(ref cpus, self, gpa, size);
        }

        /// <summary>A nested page fault that a change in flight explains (NestedPageFaultHandler resumes the guest).</summary>
        public static bool IsSpurious(ulong gpa, PageAccess needed) => s_service.IsSpurious(gpa, needed);

        public static uint Generation => s_service.Generation;

        public static bool HasAcknowledged(uint cpu) => s_service.HasAcknowledged(cpu);
    }
}
