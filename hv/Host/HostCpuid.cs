// The host's CPUID (the hardware's answer: CPUID does not exit in VMX root or SVM host mode), for the guest's
// CPUID exits on both back ends (hv/Core/Vcpu/CpuidExit). Into a local structure, not a stackalloc'd buffer:
// a buffer costs a stack-cookie check on every CPUID exit.
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Host
{
    internal static unsafe class HostCpuid
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Read(uint leaf, uint subleaf, out CpuidResult result)
        {
            result = default;
            Vigil.Platform.Cpu.Cpuid(leaf, subleaf, (uint*)Unsafe.AsPointer(ref result));   // the caller's block: on its stack
        }
    }
}
