// What the guard's control plane (GuardHypercalls) needs from the machine, as one struct-constrained
// seam (no interface dispatch in root mode): the CPUs as the nested-map service sees them (INestedMapCpus:
// the lock primitive among them), the service itself (write-protecting the guarded ranges on every CPU),
// a wait step that keeps acknowledging nested-map changes (a CPU spinning for the guard's lock must not
// hold up a holder waiting for every CPU's acknowledgement), and a random source for the secret. The back ends implement it over their
// NestedMapService (hv/Svm/SvmGuardPlatform.cs, hv/Vmx/VmxGuardPlatform.cs); the tests with a fake.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Guard
{
    public unsafe interface IGuardPlatform : INestedMapCpus
    {
        /// <summary><paramref name="access"/> for the pages of the range in the nested map, on every CPU before it returns (NestedMapService.Protect).</summary>
        NestedMapResult Protect(uint self, ulong gpa, ulong size, PageAccess access);

        /// <summary>One step of a wait for a lock: acknowledge nested-map changes (NestedMapService.Acknowledge), PAUSE.</summary>
        void WaitStep(uint self);

        /// <summary>64 random bits from the CPU (RDRAND, SDM Vol 2B; CPUID.01H:ECX.RDRAND[bit 30]); false when it has none or gave none.</summary>
        bool TryRandom(out ulong value);

        /// <summary>The time-stamp counter (RDTSC).</summary>
        ulong Timestamp { get; }
    }

    /// <summary>
    /// The guard's lock (GuardState.LockWord): it serializes judging, recording and performing attempts with the
    /// Protect/Lock/ReadEvents hypercalls, which replace rules and ranges under it. Taken two ways, one word:
    /// the hypercalls wait for it (<see cref="Enter"/>: acknowledging nested-map changes while they wait, since a
    /// Protect holding it waits for every CPU's acknowledgement); an exit handler spins a bounded time
    /// (<see cref="TryEnter"/>) and, when a Protect in flight holds it, lets the guest retry the instruction (it
    /// exits again, passing the acknowledgement on its way back in).
    /// </summary>
    public static unsafe class GuardLock
    {
        /// <summary>PAUSEs before a handler gives up on the lock and lets the guest retry.</summary>
        public const int Spins = 1 << 14;

        public static void Enter<TPlatform>(ref TPlatform platform, uint self)
            where TPlatform : struct, IGuardPlatform
        {
            while (!platform.TryLock(GuardState.LockWord)) platform.WaitStep(self);
        }

        /// <summary>Takes the lock, spinning at most <see cref="Spins"/> PAUSEs; false: the caller resumes the guest at the same instruction.</summary>
        public static bool TryEnter<TCpus>(ref TCpus cpus) where TCpus : struct, INestedMapCpus
        {
            for (int i = 0; i < Spins; i++)
            {
                if (cpus.TryLock(GuardState.LockWord)) return true;
                cpus.Pause();
            }
            return false;
        }

        public static void Exit<TCpus>(ref TCpus cpus) where TCpus : struct, INestedMapCpus => cpus.Unlock(GuardState.LockWord);
    }
}
