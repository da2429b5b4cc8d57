// Facts about the machine's physical memory that the identity maps are built from, decided from
// values the caller reads (CPUID bits, the loader's copy of the UEFI memory map, RDMSR behind
// IMsrReader), so the decisions are unit-tested: how far to map, and the MTRR snapshot to take the
// memory types from (SDM Vol 3A 11.11; AMD's TOP_MEM2 extension, APM Vol 2 7.9).
// Runs at initialization (BSP, before launch); nothing here allocates or throws.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using Vigil.Abi;

namespace Vigil.Hypervisor.Core
{
    public static class PlatformMemory
    {
        public const ulong FourGiB = 0x1_0000_0000;
        public const ulong OneGiB = 0x4000_0000;

        /// <summary>CPUID.1:EDX.MTRR (bit 12): the MTRR MSRs exist (SDM Vol 3A 11.11.1).</summary>
        public const uint Cpuid1EdxMtrr = 1u << 12;

        /// <summary>CPUID.1:ECX bit 31: a hypervisor runs below this CPU (it may not implement model-specific MSRs).</summary>
        public const uint Cpuid1EcxHypervisor = 1u << 31;

        /// <summary>CPUID 8000_0001h:EDX.NX (bit 20): EFER.NXE exists and NX is a page-table bit (APM Vol 2 5.6).</summary>
        public const uint Cpuid80000001EdxNx = 1u << 20;

        /// <summary>CPUID 8000_0001h:EDX.Page1GB (bit 26): 1 GiB pages.</summary>
        public const uint Cpuid80000001EdxPage1GB = 1u << 26;

        /// <summary>
        /// The end of the identity maps: the end of the highest range in the memory map (RAM, reserved, MMIO
        /// ranges the firmware reports), at least 4 GiB (the 32-bit MMIO hole: local APIC, I/O APIC, HPET, flash,
        /// PCI BARs below 4 GiB are not all in the memory map), rounded up to 1 GiB (so the top is one large page
        /// where the MTRRs allow), at most <see cref="NestedMap.MaxLimit"/>.
        /// </summary>
        public static ulong MappingLimit(System.ReadOnlySpan<PhysicalRange> map)
        {
            ulong top = FourGiB;
            for (int i = 0; i < map.Length; i++)
            {
                ulong pages = map[i].Pages;
                if (pages > (NestedMap.MaxLimit >> 12)) return NestedMap.MaxLimit;   // nonsense: clamp, never wrap
                ulong end = map[i].Base + (pages << 12);
                if (end < map[i].Base || end > NestedMap.MaxLimit) return NestedMap.MaxLimit;
                if (end > top) top = end;
            }
            ulong rounded = (top + OneGiB - 1) & ~(OneGiB - 1);
            return rounded > NestedMap.MaxLimit ? NestedMap.MaxLimit : rounded;
        }

        /// <summary>
        /// Whether to read AMD's SYSCFG and TOP_MEM2: an AMD CPU of family 0Fh or later (the MSRs and
        /// SYSCFG.MtrrTom2En exist from K8 rev F, APM Vol 2 3.2.1) and no hypervisor below (CPUID.1:ECX bit 31):
        /// under one they are often not implemented (RDMSR raises #GP, or, like QEMU's TCG, reads 0), and before
        /// launch there is no handler of Vigil's own for a #GP. Without them [4 GiB, TOP_MEM2) keeps the MTRRs'
        /// default type, which is the conservative answer (UC where the firmware relies on TOP_MEM2 for WB).
        /// </summary>
        public static bool CanReadAmdTopOfMemory2(bool amd, uint cpuid1Eax, uint cpuid1Ecx)
        {
            uint family = (cpuid1Eax >> 8) & 0xF;
            if (family == 0xF) family += (cpuid1Eax >> 20) & 0xFF;
            return amd && family >= 0xF && (cpuid1Ecx & Cpuid1EcxHypervisor) == 0;
        }

        /// <summary>
        /// The MTRR snapshot: without MTRRs (CPUID.1:EDX.MTRR clear) every address is WB, the PAT alone deciding
        /// as on such a CPU; otherwise <see cref="MtrrSet.Read"/>, and on AMD with <paramref name="readAmdTopOfMemory2"/>
        /// SYSCFG and TOP_MEM2 applied. False when the set cannot be trusted (more variable ranges than kept).
        /// </summary>
        public static bool ReadMtrrs<TMsr>(ref TMsr msrs, uint cpuid1Edx, bool readAmdTopOfMemory2, out MtrrSet set)
            where TMsr : struct, IMsrReader
        {
            if ((cpuid1Edx & Cpuid1EdxMtrr) == 0)
            {
                set = MtrrSet.Uniform(MemoryType.WriteBack);
                return true;
            }
            bool ok = MtrrSet.Read(ref msrs, out set);
            if (readAmdTopOfMemory2) set.ApplyAmdTopOfMemory2(msrs.Read(MtrrSet.AmdSyscfgMsr), msrs.Read(MtrrSet.AmdTopOfMemory2Msr));
            return ok;
        }
    }
}
