// SVM host, GIF=0: the guard's platform seam (hv/Core/Guard/IGuardPlatform) over the SVM back end: the
// nested page tables' change service (SvmNestedMapChanges), the CPU's lock primitive, RDRAND and RDTSC.
// Mirrors hv/Vmx/VmxGuardPlatform.cs.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Hypervisor.Svm
{
    internal readonly unsafe struct SvmGuardPlatform : IGuardPlatform
    {
        public NestedMapResult Protect(uint self, ulong gpa, ulong size, PageAccess access) => SvmNestedMapChanges.Protect(self, gpa, size, access);

        public bool TryLock(uint* word) => default(SvmNestedMapCpus).TryLock(word);

        public void Unlock(uint* word) => default(SvmNestedMapCpus).Unlock(word);

        public void WaitStep(uint self)
        {
            SvmNestedMapChanges.Acknowledge(self);
            Vigil.Platform.Cpu.Pause();
        }

        public bool TryRandom(out ulong value) => Host.HostRandom.TryRead(out value);

        public ulong Timestamp => Vigil.Platform.Cpu.Rdtsc();

        // INestedMapCpus: the CPUs as the nested-map service sees them.
        public void Fence() => default(SvmNestedMapCpus).Fence();

        public void Kick(uint cpu) => default(SvmNestedMapCpus).Kick(cpu);

        public void InvalidateLocal(uint cpu) => default(SvmNestedMapCpus).InvalidateLocal(cpu);

        public void Pause() => Vigil.Platform.Cpu.Pause();
    }
}
