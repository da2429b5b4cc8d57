// XSETBV (VMX: always exits, SDM Vol 3C 26.1.2). Executed on the guest's behalf only after every check the
// instruction makes itself (SDM Vol 2C XSETBV, Vol 1 13.3; APM Vol 4 XSETBV), so a value the CPU would refuse
// gets the guest its #GP and never faults the host: CPL 0, XCR0 only, bit 0 (x87) set, no bit the CPU does not
// support (CPUID.(0DH,0):EDX:EAX), AVX only with SSE, the MPX pair together, the three AVX-512 components
// together and only with AVX, the AMX pair together. SVM does not intercept XSETBV: the hardware checks it.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class XsetbvExit
    {
        public const ulong X87 = 1UL << 0, Sse = 1UL << 1, Avx = 1UL << 2;
        public const ulong Mpx = (1UL << 3) | (1UL << 4);
        public const ulong Avx512 = (1UL << 5) | (1UL << 6) | (1UL << 7);
        public const ulong Amx = (1UL << 17) | (1UL << 18);

        public static VcpuAction Handle<T>(ref T vcpu) where T : struct, IVcpu
        {
            ref GuestRegisters r = ref vcpu.Registers;
            uint index = (uint)r.Rcx;
            ulong value = ((r.Rdx & 0xFFFF_FFFF) << 32) | (r.Rax & 0xFFFF_FFFF);
            vcpu.HostCpuid(0xD, 0, out CpuidResult d);
            ulong supported = ((ulong)d.Edx << 32) | d.Eax;
            if (vcpu.Cpl != 0 || index != 0 || !ValidXcr0(value, supported)) return VcpuState.GeneralProtection(ref vcpu);
            vcpu.LoadXcr0(value);
            return VcpuAction.Skip;
        }

        public static bool ValidXcr0(ulong value, ulong supported)
        {
            if ((value & ~supported) != 0) return false;
            if ((value & X87) == 0) return false;
            if ((value & Avx) != 0 && (value & Sse) == 0) return false;
            if ((value & Mpx) != 0 && (value & Mpx) != Mpx) return false;
            if ((value & Avx512) != 0 && ((value & Avx512) != Avx512 || (value & Avx) == 0)) return false;
            if ((value & Amx) != 0 && (value & Amx) != Amx) return false;
            return true;
        }
    }
}
