// What the guard's control plane (GuardHypercalls) needs from the machine, as one struct-constrained
// seam (no interface dispatch in root mode): the nested-map service (write-protecting the guarded
// ranges on every CPU), the CPU's lock primitive and a wait step that keeps acknowledging nested-map
// changes (a CPU spinning for the guard's lock must not hold up a holder waiting for every CPU's
// acknowledgement), and a random source for the secret. The back ends implement it over their
// NestedMapService (hv/Svm/SvmGuardPlatform.cs, hv/Vmx/VmxGuardPlatform.cs); the tests with a fake.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Guard
{
    public unsafe interface IGuardPlatform
    {
        /// <summary><paramref name="access"/> for the pages of the range in the nested map, on every CPU before it returns (NestedMapService.Protect).</summary>
        NestedMapResult Protect(uint self, ulong gpa, ulong size, PageAccess access);

        /// <summary>LOCK CMPXCHG 0 → 1 on <paramref name="word"/>: true when this call took it.</summary>
        bool TryLock(uint* word);

        void Unlock(uint* word);

        /// <summary>One step of a wait for a lock: acknowledge nested-map changes (NestedMapService.Acknowledge), PAUSE.</summary>
        void WaitStep(uint self);

        /// <summary>64 random bits from the CPU (RDRAND, SDM Vol 2B; CPUID.01H:ECX.RDRAND[bit 30]); false when it has none or gave none.</summary>
        bool TryRandom(out ulong value);

        /// <summary>The time-stamp counter (RDTSC).</summary>
        ulong Timestamp { get; }
    }

    /// <summary>The guard's lock (GuardState.LockWord), taken the same way by every writer and reader of the state.</summary>
    public static unsafe class GuardLock
    {
        public static void Enter<TPlatform>(ref TPlatform platform, uint self)
            where TPlatform : struct, IGuardPlatform
        {
            while (!platform.TryLock(GuardState.LockWord)) platform.WaitStep(self);
        }

        public static void Exit<TPlatform>(ref TPlatform platform)
            where TPlatform : struct, IGuardPlatform
            => platform.Unlock(GuardState.LockWord);
    }
}
