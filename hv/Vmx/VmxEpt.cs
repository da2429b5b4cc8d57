// Boot time (BSP), then read by every CPU's VMCS. The EPT identity map (SDM Vol 3C 29.3): all of
// guest-physical memory 1:1 from 0 to the limit (RAM, MMIO, above 4 GiB), read/write/execute, each
// page with the memory type the MTRRs give it (SDM Vol 3A 11.11; EPT ignores the MTRRs for guest
// accesses, SDM Vol 3C 29.3.7.2, so MMIO must be UC here). Built by hv/Core's NestedMap<EptFormat>
// from HostMemoryTypes' MTRR snapshot: 1 GiB pages where allowed and the type is uniform, else 2 MiB,
// else 4 KiB. The hypervisor's own pages (the whole reservation) point at one zeroed decoy page
// instead of themselves, read-only, not executable: the guest reads zeros, never the hypervisor's
// memory, from the first instruction after launch; a write exits and is refused and recorded like on
// SVM (hv/Core/Guard/GuardWrite, object HypervisorMemory).
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxEpt
    {
        private static NestedMap<EptFormat> s_map;

        /// <summary>The page every hidden page maps to (from the pool, so itself hidden).</summary>
        public static ulong Decoy;

        /// <summary>4 KiB pages redirected to <see cref="Decoy"/>.</summary>
        public static ulong ProtectedPages;

        /// <summary>The map, for later changes (NestedMap's SetAccess/SplitTo4K/Redirect with Hv.Pages; INVEPT after).</summary>
        public static ref NestedMap<EptFormat> Map => ref s_map;

        /// <summary>EPTP: WB paging structures, 4-level walk (SDM Vol 3C 25.6.11).</summary>
        public static ulong Pointer => EptFormat.Pointer(s_map.Root);

        /// <summary>
        /// Builds the identity map of [0, <paramref name="limit"/>) with the MTRRs' types (HostMemoryTypes must be
        /// initialized) and redirects every 4 KiB page touching [<paramref name="hiddenBase"/>, +<paramref name="hiddenSize"/>)
        /// to the decoy page. False when the pool runs out.
        /// </summary>
        public static bool Build(ulong limit, bool allow1GiB, ulong hiddenBase, ulong hiddenSize)
        {
            Decoy = Hv.AllocatePages(1);
            if (Decoy == 0) return false;
            var pages = Hv.Pages;
            if (!s_map.Build(ref pages, limit, HostMemoryTypes.Mtrrs, allow1GiB)) return false;
            ulong end = hiddenBase + hiddenSize;
            for (ulong page = hiddenBase & ~0xFFFUL; page < end; page += 4096)
            {
                if (!s_map.Redirect(ref pages, page, Decoy, PageAccess.Read)) return false;   // writes exit: the guard refuses and records them (GuardWrite)
                ProtectedPages++;
            }
            return true;
        }

        /// <summary>Tables taken from the pool for the map (the PML4 included).</summary>
        public static ulong TablesUsed => s_map.TablesUsed;
    }
}
