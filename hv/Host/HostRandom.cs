// Root mode, any CPU: RDRAND where the CPU has it (CPUID.01H:ECX.RDRAND[bit 30], SDM Vol 2B RDRAND;
// without it the instruction raises #UD, so the bit is checked first, once).
namespace Vigil.Hypervisor.Host
{
    internal static unsafe class HostRandom
    {
        private static int s_supported;   // 0 unknown, 1 yes, 2 no

        /// <summary>64 random bits; false when the CPU has no RDRAND or the DRNG delivered none this time.</summary>
        public static bool TryRead(out ulong value)
        {
            value = 0;
            if (s_supported == 0)
            {
                uint* r = stackalloc uint[4];
                Vigil.Platform.Cpu.Cpuid(1, 0, r);
                s_supported = (r[2] & (1u << 30)) != 0 ? 1 : 2;
            }
            if (s_supported != 1) return false;
            ulong v;
            if (Vigil.Platform.Cpu.Rdrand(&v) == 0) return false;
            value = v;
            return true;
        }
    }
}
