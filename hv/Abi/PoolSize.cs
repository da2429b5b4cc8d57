// How large a page pool vigil.efi reserves for the hypervisor, decided before the reservation from
// the CPU count and the firmware's memory map (the hypervisor cannot ask for more later: boot
// services are gone by then). What the pool holds, measured (Bochs VMX, QEMU SVM): per CPU the host
// stack (32 KiB), three IST stacks (24 KiB), a guard page below each of those four (16 KiB), the
// GDT/TSS page, the VMXON region and VMCS or the VMCBs, a log ring (28 KiB), the status scratch page,
// and the host-map tables that unmapping the guard pages splits off (a 2 MiB page table each, at most
// one per guard page, fewer as neighbouring CPUs share them): under 164 KiB, 256 KiB are counted. Shared: the two
// identity maps (host CR3 and EPT/NPT) - in 2 MiB pages at worst, one table per GiB of the map and the
// upper levels - and headroom for later 4 KiB splits of the nested map (protected kernel ranges,
// hidden pages), the exit statistics and the AP start-up table.
// Compiled into vigil.efi and the hypervisor (no runtime), and into the tests.
namespace Vigil.Abi
{
    public static class PoolSize
    {
        public const ulong OneGiB = 1UL << 30;
        public const ulong PageBytes = 4096;
        public const ulong HeadroomBytes = 4UL << 20;
        public const ulong PerCpuBytes = 256UL << 10;

        /// <summary>The identity maps never go beyond this (4-level paging with 48-bit physical addresses).</summary>
        public const ulong MaxTop = 1UL << 48;

        /// <summary>The end of the highest range in the map, at least 4 GiB (the 32-bit MMIO hole), rounded up to 1 GiB, at most <see cref="MaxTop"/>.</summary>
        public static ulong TopOfMemory(System.ReadOnlySpan<PhysicalRange> map)
        {
            ulong top = 4 * OneGiB;
            for (int i = 0; i < map.Length; i++)
            {
                if (map[i].Base >= MaxTop || map[i].Pages >= (MaxTop - map[i].Base) / PageBytes) return MaxTop;
                ulong end = map[i].Base + (map[i].Pages * PageBytes);
                if (end > top) top = end;
            }
            return (top + OneGiB - 1) & ~(OneGiB - 1);
        }

        /// <summary>Pool bytes for <paramref name="cpus"/> CPUs and identity maps up to <paramref name="top"/>.</summary>
        public static ulong Bytes(uint cpus, ulong top)
        {
            ulong tablesPerMap = (top / OneGiB) + (top / (512 * OneGiB)) + 2;   // PDs, PDPTs, PML4 and a spare
            return HeadroomBytes + (PerCpuBytes * cpus) + (2 * tablesPerMap * PageBytes);
        }
    }
}
