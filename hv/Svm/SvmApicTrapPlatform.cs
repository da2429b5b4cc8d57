// SVM host: what hv/Core/Apic/ApicTrap needs, over the nested-map change service (SvmNestedMapChanges). The
// trapped xAPIC page is readable and executable as the back end set it at launch (SvmBackEnd.BlankAccess);
// lifted, it has full access. A change that some CPU did not confirm in time is made all the same
// (NestedMapResult.Unconfirmed): it counts as done.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm
{
    internal unsafe struct SvmApicTrapPlatform : IApicTrapPlatform
    {
        public bool Arm(uint self)
            => ApicPage.Base == 0 || Done(SvmNestedMapChanges.Protect(self, ApicPage.Base, 0x1000, SvmBackEnd.BlankAccess));

        public bool Disarm(uint self)
            => ApicPage.Base == 0 || Done(SvmNestedMapChanges.Restore(self, ApicPage.Base, 0x1000));

        public void Acknowledge(uint self) => SvmNestedMapChanges.Acknowledge(self);

        public bool TryLock(uint* word) => Vigil.Platform.Cpu.SpinTryAcquire(word) != 0;

        public void Unlock(uint* word) => Vigil.Platform.Cpu.SpinRelease(word);

        public void Pause() => Vigil.Platform.Cpu.Pause();

        private static bool Done(NestedMapResult result) => result is NestedMapResult.Done or NestedMapResult.Unconfirmed;
    }
}
