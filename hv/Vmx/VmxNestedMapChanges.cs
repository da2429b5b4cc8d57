// VMX root, interrupts off: the EPT's change service (hv/Core/Paging/NestedMapService) for the VMX back end, and
// the hardware it runs on. Invalidation is INVEPT on the acknowledging CPU itself, in root mode:
// single-context for the one EPTP every CPU uses (SDM Vol 3C 29.4.3.1; it also drops the combined
// mappings of every VPID, 29.4.1), all-context where the CPU lacks single-context
// (IA32_VMX_EPT_VPID_CAP bit 25; bit 26, all-context, is required at Prepare). Kicks are NMIs
// (hv/Host/NmiKick; NMI exiting: VmxNmi). Initialized on the BSP in Prepare after the EPT is built;
// used by every CPU after launch.
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Vmx
{
    /// <summary>INestedMapCpus on VMX.</summary>
    internal readonly unsafe struct VmxNestedMapCpus : INestedMapCpus
    {
        private const ulong SingleContext = 1;
        private const ulong AllContexts = 2;

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
            // INVEPT descriptor: the EPTP, then 64 reserved bits that must be 0 (SDM Vol 2C INVEPT, Figure 31-1).
            ulong* descriptor = stackalloc ulong[2];
            descriptor[0] = VmxEpt.Pointer;
            descriptor[1] = 0;
            bool single = (VmxBackEnd.EptVpidCap & (ulong)EptVpidCapabilities.InveptSingleContext) != 0;
            Native.HvStubs.Invept(single ? SingleContext : AllContexts, descriptor);
        }

        public void Pause() => Vigil.Platform.Cpu.Pause();
    }

    internal static unsafe class VmxNestedMapChanges
    {
        /// <summary>Tables kept for splits (PoolSize.NestedReserveTables: every guarded range and then some).</summary>
        public const uint Tables = Vigil.Abi.PoolSize.NestedReserveTables;

        /// <summary>Pauses a change waits for acknowledgements (well over a second on hardware) before it reports Unconfirmed.</summary>
        public const ulong WaitBudget = 50_000_000;

        private static NestedMapService<EptFormat, PoolPageSource> s_service;

        /// <summary>Takes over the EPT (BSP, Prepare, after it is built); false when the pool ran out.</summary>
        public static bool Initialize(uint cpus)
        {
            ulong bytes = NestedMapService.BytesFor(cpus, Tables);
            ulong block = Hv.AllocatePages((bytes + 4095) / 4096);
            return block != 0 && s_service.Initialize(default, Hv.Pages, VmxEpt.Map.Root, VmxEpt.Map.Limit, (void*)block, cpus, Tables, WaitBudget);
        }

        /// <summary>This CPU is about to run its guest (in VMX operation, before VMLAUNCH): changes wait for it from now on.</summary>
        public static void Activate(uint self)
        {
            var cpus = default(VmxNestedMapCpus);
            s_service.Activate(ref cpus, self);
        }

        /// <summary>This CPU does not run its guest (a failed launch): changes no longer wait for it.</summary>
        public static void Deactivate(uint self) => s_service.Deactivate(self);

        /// <summary>On every exit before the VM entry, and in host waits: INVEPT if the map changed since the last time.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Acknowledge(uint self)
        {
            var cpus = default(VmxNestedMapCpus);
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
            var cpus = default(VmxNestedMapCpus);
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
            var cpus = default(VmxNestedMapCpus);
            return s_service.Protect(ref cpus, self, gpa, size, access);
        }

        /// <summary>Full access again for the pages of the range.</summary>
        public static NestedMapResult Restore(uint self, ulong gpa, ulong size)
        {
            var cpus = default(VmxNestedMapCpus);
            return s_service.Restore(ref cpus, self, gpa, size);
        }

        /// <summary>An EPT violation that a change in flight explains (EptViolationHandler resumes the guest).</summary>
        public static bool IsSpurious(ulong gpa, PageAccess needed) => s_service.IsSpurious(gpa, needed);

        public static uint Generation => s_service.Generation;

        public static bool HasAcknowledged(uint cpu) => s_service.HasAcknowledged(cpu);
    }
}
