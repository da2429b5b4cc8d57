// VMX root: what hv/Core/Apic/ApicTrap needs, over the EPT change service (VmxNestedMapChanges). The trapped
// xAPIC page is read-only as the back end set it at launch; lifted, it has full access. A change that some
// CPU did not confirm in time is made all the same (NestedMapResult.Unconfirmed): it counts as done.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx
{
    internal unsafe struct VmxApicTrapPlatform : IApicTrapPlatform
    {
        public bool Arm(uint self)
            => ApicPage.Base == 0 || Done(VmxNestedMapChanges.Protect(self, ApicPage.Base, 0x1000, PageAccess.Read));

        public bool Disarm(uint self)
            => ApicPage.Base == 0 || Done(VmxNestedMapChanges.Restore(self, ApicPage.Base, 0x1000));

        public void Acknowledge(uint self) => VmxNestedMapChanges.Acknowledge(self);

        public bool TryLock(uint* word) => Vigil.Platform.Cpu.SpinTryAcquire(word) != 0;

        public void Unlock(uint* word) => Vigil.Platform.Cpu.SpinRelease(word);

        public void Pause() => Vigil.Platform.Cpu.Pause();

        private static bool Done(NestedMapResult result) => result is NestedMapResult.Done or NestedMapResult.Unconfirmed;
    }
}
