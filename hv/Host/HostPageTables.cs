// An identity map of physical memory as 4-level long-mode tables (SDM Vol 3A 4.5, APM Vol 2 5.3):
// 2 MiB pages below the top of RAM (and at least 4 GiB, for MMIO), 1 GiB pages above where the CPU
// has them, 4 KiB splits on demand. One builder for the host's CR3 and the SVM nested tables (the
// nested format is the same with U/S set, APM Vol 2 15.25.5).
// INTERIM: this stands in for hv/Core/NestedMap.cs (generic over EptFormat/NptFormat/HostFormat,
// memory types from the MTRRs) until it lands; callers use only Build/Protect/Remap so the switch
// is local. All leaves are PAT index 0 (write-back): the MTRRs still apply to host accesses and,
// under AMD nested paging, to the final address of guest accesses (APM Vol 2 15.25.8), so MMIO
// stays uncacheable as the firmware programmed it.
// Runs at initialization (BSP) and, for Protect/Remap, on exit paths with pages allocated up front.
namespace Vigil.Hypervisor.Host
{
    public unsafe struct IdentityMap
    {
        public const ulong Present = 1;
        public const ulong Writable = 1 << 1;
        public const ulong User = 1 << 2;
        public const ulong LargePage = 1 << 7;
        public const ulong AddressMask = 0x000F_FFFF_FFFF_F000;

        private ulong _root;
        private ulong _permissions;

        public readonly ulong Root => _root;

        /// <summary>
        /// Builds a map of [0, <paramref name="limit"/>) with 2 MiB pages, then [limit, 512 GiB) with 1 GiB pages
        /// when <paramref name="gigabytePages"/>. <paramref name="permissions"/> is set in every entry (P|RW, plus
        /// U/S for nested tables). False when the pool runs out.
        /// </summary>
        public bool Build(ulong limit, bool gigabytePages, ulong permissions)
        {
            _permissions = permissions;
            _root = Hv.AllocatePages(1);
            ulong pdpt = Hv.AllocatePages(1);
            if (_root == 0 || pdpt == 0) return false;
            ((ulong*)_root)[0] = pdpt | permissions;
            limit = (limit + 0x3FFF_FFFF) & ~0x3FFF_FFFFUL;
            if (limit > 512UL << 30) limit = 512UL << 30;
            for (ulong gb = 0; gb < 512; gb++)
            {
                ulong address = gb << 30;
                if (address < limit)
                {
                    ulong pd = Hv.AllocatePages(1);
                    if (pd == 0) return false;
                    for (ulong i = 0; i < 512; i++) ((ulong*)pd)[i] = (address + (i << 21)) | permissions | LargePage;
                    ((ulong*)pdpt)[gb] = pd | permissions;
                }
                else if (gigabytePages)
                {
                    ((ulong*)pdpt)[gb] = address | permissions | LargePage;
                }
            }
            return true;
        }

        /// <summary>
        /// The 4 KiB entry mapping <paramref name="address"/>, splitting a 2 MiB page into 512 4 KiB pages
        /// with the same rights first. Null when the address is not mapped by a 2 MiB/4 KiB page or the pool ran out.
        /// </summary>
        public readonly ulong* Entry4K(ulong address)
        {
            ulong* pml4 = (ulong*)_root;
            ulong e = pml4[(address >> 39) & 0x1FF];
            if ((e & Present) == 0) return null;
            ulong* pdpt = (ulong*)(e & AddressMask);
            e = pdpt[(address >> 30) & 0x1FF];
            if ((e & Present) == 0 || (e & LargePage) != 0) return null;
            ulong* pd = (ulong*)(e & AddressMask);
            ulong* pde = &pd[(address >> 21) & 0x1FF];
            if ((*pde & LargePage) != 0)
            {
                ulong pt = Hv.AllocatePages(1);
                if (pt == 0) return null;
                ulong large = *pde & 0x000F_FFFF_FFE0_0000;
                ulong rights = *pde & 0x7;
                for (ulong i = 0; i < 512; i++) ((ulong*)pt)[i] = (large + (i << 12)) | rights;
                *pde = pt | _permissions;
            }
            ulong* table = (ulong*)(*pde & AddressMask);
            return &table[(address >> 12) & 0x1FF];
        }

        /// <summary>Makes [<paramref name="start"/>, +<paramref name="size"/>) not present (every access faults). False when out of pages.</summary>
        public readonly bool Protect(ulong start, ulong size)
        {
            for (ulong a = start & ~0xFFFUL; a < start + size; a += 0x1000)
            {
                ulong* e = Entry4K(a);
                if (e == null) return false;
                *e = 0;
            }
            return true;
        }

        /// <summary>Points the 4 KiB page at <paramref name="address"/> to <paramref name="target"/> with <paramref name="rights"/> (P, RW, U bits).</summary>
        public readonly bool Remap(ulong address, ulong target, ulong rights)
        {
            ulong* e = Entry4K(address);
            if (e == null) return false;
            *e = (target & AddressMask) | rights;
            return true;
        }
    }
}
