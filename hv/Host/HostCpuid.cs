// The host's CPUID (the hardware's answer: CPUID does not exit in VMX root or SVM host mode), for the guest's
// CPUID exits on both back ends (hv/Core/Vcpu/CpuidExit). Into a local structure, not a stackalloc'd buffer:
// a buffer costs a stack-cookie check on every CPUID exit.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Host
{
    internal static unsafe class HostCpuid
    {
        private struct Registers
        {
            public uint Eax, Ebx, Ecx, Edx;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Read(uint leaf, uint subleaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
        {
            Registers r;
            Vigil.Platform.Cpu.Cpuid(leaf, subleaf, (uint*)&r);
            eax = r.Eax;
            ebx = r.Ebx;
            ecx = r.Ecx;
            edx = r.Edx;
        }
    }
}
