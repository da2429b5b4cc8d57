// How large a page pool vigil.efi reserves for the hypervisor, decided before the reservation from
// the CPU count and the firmware's memory map (the hypervisor cannot ask for more later: boot
// services are gone by then). What the pool holds, measured (Bochs VMX, QEMU SVM): per CPU the host
// stack (32 KiB), three IST stacks (24 KiB), a guard page below each of those four (16 KiB), the
// GDT/TSS page, the VMXON region and VMCS or the VMCBs, a log ring (28 KiB), the status scratch page,
// and the host-map tables that unmapping the guard pages splits off (a 2 MiB page table each, at most
// one per guard page, fewer as neighbouring CPUs share them): under 164 KiB, 256 KiB are counted.
// Shared: the two identity maps - the host CR3 up to the top of the memory map, in 2 MiB pages at worst
// (one table per GiB and the upper levels); the EPT/NPT up to MAXPHYADDR (device BARs anywhere), in
// 1 GiB pages above the top of memory where the CPU has them, else 2 MiB pages up to 512 GiB
// (NestedTables) - and headroom for later 4 KiB splits of the nested map (protected kernel ranges,
// hidden pages), the exit statistics and the AP start-up table. The kernel guard adds its event log
// (GuardEventLogBytes) and the nested-map service's table reserve for write-protecting the guarded
// ranges (NestedReserveTables), and two buffers for the compiled policy (PolicyBytes: the one in force and
// the one `vigild protect --policy` validates before it takes its place).
// Compiled into vigil.efi and the hypervisor (no runtime), and into the tests.
namespace Vigil.Abi
{
    public static class PoolSize
    {
        public const ulong OneGiB = 1UL << 30;
        public const ulong PageBytes = 4096;
        public const ulong HeadroomBytes = 4UL << 20;
        public const ulong PerCpuBytes = 256UL << 10;

        /// <summary>The guard's event log: 1024 events of 112 bytes and the log's header (hv/Core/Guard/GuardEventLog).</summary>
        public const ulong GuardEventLogBytes = 128UL << 10;

        /// <summary>The compiled policy's two buffers (hv/Core/Guard/PolicyStore).</summary>
        public const ulong PolicyBytes = 2UL * PolicyStatus.MaxImageBytes;

        /// <summary>
        /// Tables the nested-map service keeps for splits once guests run: a change takes at most 4 (a 1 GiB page split
        /// at each end of its range, and the 2 MiB page under each end), for each of the guard's 64 ranges
        /// (GuardState.MaxRanges), and 16 for everything else (the start-up check, hidden pages).
        /// </summary>
        public const uint NestedReserveTables = 16 + (4 * 64);

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

        /// <summary>
        /// How far the nested map (EPT/NPT) reaches without 1 GiB pages: 512 GiB (39 physical address bits, the
        /// older parts whose EPT lacks 1 GiB pages) or the top of memory if higher. In 2 MiB pages this costs one
        /// page directory per GiB (1 MiB of tables for 512 GiB); all of a 46-bit space would cost 256 MiB.
        /// </summary>
        public const ulong NestedTopWithout1GiB = 512 * OneGiB;

        /// <summary>
        /// Tables for MTRR boundaries above the top of memory, where the nested map otherwise uses 1 GiB pages: a
        /// variable range not aligned to 1 GiB splits the 1 GiB page at each of its ends into 2 MiB pages and those
        /// into 4 KiB pages (a PD and a PT per end), for each of the 32 ranges Vigil keeps (MtrrSet.MaxVariableRanges).
        /// </summary>
        public const ulong MtrrBoundaryTables = 4 * 32;

        /// <summary>
        /// MAXPHYADDR: CPUID 8000_0008h EAX[7:0] when the leaf exists, else 36 (SDM Vol 3A 4.1.4); at least 32 and
        /// at most 52 whatever the CPU reports.
        /// </summary>
        public static uint PhysicalAddressBits(uint maxExtendedLeaf, uint cpuid80000008Eax)
        {
            uint bits = maxExtendedLeaf >= 0x8000_0008 ? cpuid80000008Eax & 0xFF : 36;
            return bits < 32 ? 32 : bits > 52 ? 52 : bits;
        }

        /// <summary>
        /// The end of the nested map: everything the CPU can address (2^MAXPHYADDR, at most <see cref="MaxTop"/>:
        /// 4-level EPT/NPT translate 48-bit guest-physical addresses), so a device BAR anywhere is mapped (issue #9:
        /// a 64-bit BAR at 0xE000000000 faulted); without 1 GiB pages at most <see cref="NestedTopWithout1GiB"/>.
        /// Never below <paramref name="memoryTop"/> (the host map's end, <see cref="TopOfMemory"/>).
        /// </summary>
        public static ulong NestedTop(ulong memoryTop, uint physicalAddressBits, bool gigabytePages)
        {
            ulong all = physicalAddressBits >= 48 ? MaxTop : 1UL << (int)(physicalAddressBits < 32 ? 32 : physicalAddressBits);
            if (!gigabytePages && all > NestedTopWithout1GiB) all = NestedTopWithout1GiB;
            return all > memoryTop ? all : memoryTop;
        }

        /// <summary>
        /// Tables of the host map up to <paramref name="memoryTop"/> at worst (2 MiB pages: one page directory per
        /// GiB, the PDPTs, the PML4 and a spare); 4 KiB splits where the MTRRs change type within 2 MiB come from
        /// <see cref="HeadroomBytes"/>.
        /// </summary>
        public static ulong HostTables(ulong memoryTop) => (memoryTop / OneGiB) + DivideUp(memoryTop, 512 * OneGiB) + 2;

        /// <summary>
        /// Tables of the nested map at worst, whether or not the CPU's EPT/NPT has 1 GiB pages (the loader cannot
        /// read the EPT capabilities): with them, 2 MiB pages below the top of memory, 1 GiB pages up to
        /// 2^MAXPHYADDR and the MTRR boundaries; without, 2 MiB pages up to <see cref="NestedTop"/>.
        /// </summary>
        public static ulong NestedTables(ulong memoryTop, uint physicalAddressBits)
        {
            ulong top = NestedTop(memoryTop, physicalAddressBits, gigabytePages: true);
            ulong with1GiB = 2 + DivideUp(top, 512 * OneGiB) + (memoryTop / OneGiB) + MtrrBoundaryTables;
            top = NestedTop(memoryTop, physicalAddressBits, gigabytePages: false);
            ulong without1GiB = 2 + DivideUp(top, 512 * OneGiB) + (top / OneGiB);
            return with1GiB > without1GiB ? with1GiB : without1GiB;
        }

        /// <summary>
        /// Pool bytes for <paramref name="cpus"/> CPUs, the host map up to <paramref name="memoryTop"/> and the nested
        /// map up to 2^<paramref name="physicalAddressBits"/> (<see cref="NestedTop"/>).
        /// </summary>
        public static ulong Bytes(uint cpus, ulong memoryTop, uint physicalAddressBits)
            => HeadroomBytes + GuardEventLogBytes + PolicyBytes + (NestedReserveTables * PageBytes) + (PerCpuBytes * cpus)
                + ((HostTables(memoryTop) + NestedTables(memoryTop, physicalAddressBits)) * PageBytes);

        private static ulong DivideUp(ulong value, ulong divisor) => (value + divisor - 1) / divisor;
    }
}
