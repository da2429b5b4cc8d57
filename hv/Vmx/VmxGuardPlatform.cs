// VMX root, interrupts off: the guard's platform seam (hv/Core/Guard/IGuardPlatform) over the VMX back end: the
// EPT change service (VmxNestedMapChanges), the CPU's lock primitive, RDRAND and RDTSC.
// Mirrors hv/Svm/SvmGuardPlatform.cs.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Hypervisor.Vmx
{
    internal readonly unsafe struct VmxGuardPlatform : IGuardPlatform
    {
        public NestedMapResult Protect(uint self, ulong gpa, ulong size, PageAccess access) => VmxNestedMapChanges.Protect(self, gpa, size, access);

        public bool TryLock(uint* word) => default(VmxNestedMapCpus).TryLock(word);

        public void Unlock(uint* word) => default(VmxNestedMapCpus).Unlock(word);

        public void WaitStep(uint self)
        {
            VmxNestedMapChanges.Acknowledge(self);
            Vigil.Platform.Cpu.Pause();
        }

        public bool TryRandom(out ulong value) => Host.HostRandom.TryRead(out value);

        public ulong Timestamp => Vigil.Platform.Cpu.Rdtsc();

        // INestedMapCpus: the CPUs as the nested-map service sees them.
        public void Fence() => default(VmxNestedMapCpus).Fence();

        public void Kick(uint cpu) => default(VmxNestedMapCpus).Kick(cpu);

        public void InvalidateLocal(uint cpu) => default(VmxNestedMapCpus).InvalidateLocal(cpu);

        public void Pause() => Vigil.Platform.Cpu.Pause();
    }
}
