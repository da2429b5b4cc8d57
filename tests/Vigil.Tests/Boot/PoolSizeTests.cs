// The hypervisor's page pool as vigil.efi sizes it (hv/Abi/PoolSize) from the CPU count and the
// firmware's memory map.
using System;
using Vigil.Abi;
using Xunit;

namespace Vigil.Tests.Boot;

public sealed class PoolSizeTests
{
    private const ulong GiB = 1UL << 30;

    private static PhysicalRange Range(ulong start, ulong bytes) => new() { Base = start, Pages = bytes / 4096 };

    [Fact]
    public void The_top_is_at_least_4_gib_and_rounded_up_to_a_gib()
    {
        Assert.Equal(4 * GiB, PoolSize.TopOfMemory([Range(0, 2 * GiB)]));
        Assert.Equal(4 * GiB, PoolSize.TopOfMemory([]));
        Assert.Equal(7 * GiB, PoolSize.TopOfMemory([Range(0, 2 * GiB), Range(4 * GiB, (2 * GiB) + 4096)]));
    }

    [Fact]
    public void A_nonsense_range_clamps_instead_of_wrapping()
    {
        Assert.Equal(PoolSize.MaxTop, PoolSize.TopOfMemory([new PhysicalRange { Base = ulong.MaxValue - 4095, Pages = 2 }]));
        Assert.Equal(PoolSize.MaxTop, PoolSize.TopOfMemory([new PhysicalRange { Base = 0, Pages = ulong.MaxValue }]));
    }

    [Fact]
    public void The_pool_grows_with_cpus_and_with_memory_and_covers_what_was_measured()
    {
        ulong small = PoolSize.Bytes(1, 4 * GiB, 40);
        // Host map: 4 PDs, a PDPT, the PML4, a spare. Nested map: the worse of 1 GiB pages to 1 TiB (PML4, spare,
        // 2 PDPTs, 4 PDs, the MTRR boundaries) and 2 MiB pages to 512 GiB (PML4, spare, a PDPT, 512 PDs).
        // The guard: its event log and the nested-map service's table reserve.
        Assert.Equal(PoolSize.HeadroomBytes + PoolSize.GuardEventLogBytes + PoolSize.PolicyBytes + (PoolSize.NestedReserveTables * 4096) + PoolSize.PerCpuBytes
            + ((7 + Math.Max(8 + PoolSize.MtrrBoundaryTables, 515)) * 4096), small);
        Assert.Equal(small + (3 * PoolSize.PerCpuBytes), PoolSize.Bytes(4, 4 * GiB, 40));
        // 1 TiB of memory: two maps of 1024 page directories (2 MiB pages at worst) at least.
        Assert.True(PoolSize.Bytes(1, 1024 * GiB, 40) >= PoolSize.HeadroomBytes + PoolSize.PerCpuBytes + (2 * 1020 * 4096UL));
        // All of a 52-bit CPU (48 bits mapped) in 1 GiB pages: 512 PDPTs.
        Assert.Equal(2 + 512 + 4 + PoolSize.MtrrBoundaryTables, PoolSize.NestedTables(4 * GiB, 52));
        // Measured in the emulators: at most 620 KiB of the pool used with 4 CPUs (QEMU SVM).
        Assert.True(PoolSize.Bytes(4, 4 * GiB, 40) > 4 * 620 * 1024UL);
    }
}
