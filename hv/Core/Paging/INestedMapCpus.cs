// The processors behind NestedMapService, as the service sees them: an atomic lock word, a fence, a
// way to get another CPU out of the guest, and the local invalidation of cached nested translations.
// Struct-constrained (no interface dispatch in root mode); the hypervisor's back ends implement it
// (hv/Svm/SvmNestedMapCpus.cs, hv/Vmx/VmxNestedMapCpus.cs), the unit tests with fake CPUs.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public unsafe interface INestedMapCpus
    {
        /// <summary>LOCK CMPXCHG 0 → 1 on <paramref name="word"/>: true when this call took it (SDM Vol 2A CMPXCHG).</summary>
        bool TryLock(uint* word);

        /// <summary>Releases a word <see cref="TryLock"/> took (a plain store: x86 keeps stores in order, SDM Vol 3A 9.2.2).</summary>
        void Unlock(uint* word);

        /// <summary>
        /// A full fence: earlier stores are visible to every CPU before later loads are done (a locked instruction,
        /// SDM Vol 3A 9.2.2: loads may pass earlier stores otherwise).
        /// </summary>
        void Fence();

        /// <summary>
        /// Gets CPU <paramref name="cpu"/> out of the guest soon (an NMI: VMX NMI exiting, SVM NMI intercept), so it
        /// passes its exit path, which calls <see cref="NestedMapService{TFormat, TPages}.Acknowledge"/>.
        /// A CPU already in the host gets there anyway.
        /// </summary>
        void Kick(uint cpu);

        /// <summary>
        /// On CPU <paramref name="cpu"/> itself, in the host: no translation of the nested map cached before this call
        /// is used by its guest after it (VMX: INVEPT single-context now, SDM Vol 3C 29.4.3.1; SVM: TLB_CONTROL
        /// flush on the next VMRUN, APM Vol 2 15.16.1).
        /// </summary>
        void InvalidateLocal(uint cpu);

        /// <summary>One step of a wait (PAUSE).</summary>
        void Pause();
    }
}
