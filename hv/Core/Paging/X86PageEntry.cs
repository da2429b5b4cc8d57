// Long-mode (4-level) page-table entries, the format of both the host's own page tables and AMD's
// nested page tables (SDM Vol 3A 4.5 Tables 4-15 to 4-20, APM Vol 2 5.3-5.4 and 15.25.5).
// Every entry: bit 0 P, 1 R/W, 2 U/S, 3 PWT, 4 PCD, 5 A, 51:12 address, 63 NX. In a PDE/PDPTE bit 7
// (PS) makes it a 2 MiB / 1 GiB page whose PAT bit is bit 12; in a PTE bit 7 is the PAT bit
// (SDM Vol 3A 11.12.3, APM Vol 2 7.8.2). PAT, PCD and PWT index the PAT MSR.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public static class X86PageEntry
    {
        public const ulong Present = 1UL << 0;
        public const ulong Writable = 1UL << 1;
        public const ulong User = 1UL << 2;
        public const ulong WriteThrough = 1UL << 3;      // PWT
        public const ulong CacheDisable = 1UL << 4;      // PCD
        public const ulong LargePage = 1UL << 7;         // PS in a PDE/PDPTE
        public const ulong PatSmall = 1UL << 7;          // PAT in a PTE
        public const ulong PatLarge = 1UL << 12;         // PAT in a PDE/PDPTE with PS set
        public const ulong NoExecute = 1UL << 63;        // reserved unless EFER.NXE

        /// <summary>
        /// IA32_PAT after reset (SDM Vol 3A Table 11-12, APM Vol 2 7.8.1): PA0 WB, PA1 WT, PA2 UC-, PA3 UC,
        /// and the same again for PA4-PA7. The formats here assume it in the host.
        /// </summary>
        public const ulong DefaultPat = 0x0007_0406_0007_0406;

        /// <summary>
        /// A leaf with PAT index <paramref name="patIndex"/> (0-7). No access gives a not-present entry that keeps
        /// its address, size and index, marked <see cref="PageTableBits.SoftwareMapped"/>. Execute or write
        /// imply read (P); no execute sets NX, which the processor honours only with EFER.NXE.
        /// </summary>
        public static ulong Leaf(int level, ulong address, int patIndex, PageAccess access, ulong permissionBits)
        {
            ulong entry = address & PageTableBits.LeafAddressMask(level);
            if ((patIndex & 1) != 0) entry |= WriteThrough;
            if ((patIndex & 2) != 0) entry |= CacheDisable;
            if ((patIndex & 4) != 0) entry |= level == 1 ? PatSmall : PatLarge;
            if (level > 1) entry |= LargePage;
            if (access == PageAccess.None) return entry | PageTableBits.SoftwareMapped;
            entry |= Present | (permissionBits & User);
            if ((access & PageAccess.Write) != 0) entry |= Writable & permissionBits;
            if ((access & PageAccess.Execute) == 0) entry |= NoExecute;
            return entry;
        }

        /// <summary>The PAT index (PAT:PCD:PWT) of a leaf at <paramref name="level"/>.</summary>
        public static int PatIndex(int level, ulong entry)
        {
            int index = 0;
            if ((entry & WriteThrough) != 0) index |= 1;
            if ((entry & CacheDisable) != 0) index |= 2;
            if ((entry & (level == 1 ? PatSmall : PatLarge)) != 0) index |= 4;
            return index;
        }

        /// <summary>
        /// The PAT index that, in the <see cref="DefaultPat"/> layout, gives <paramref name="type"/> itself:
        /// WB 0, WT 1, UC 3. WC and WP have no entry there: they get 0 (WB), because a WB PAT type combined
        /// with any MTRR type is the MTRR type (SDM Vol 3A Table 11-7, APM Vol 2 Table 7-11), so the MTRR,
        /// which still applies, decides. (UC-, index 2, yields to an MTRR WC only; with WP it never gives WP.)
        /// </summary>
        public static int DefaultPatIndex(MemoryType type)
            => type == MemoryType.WriteThrough ? 1 : type == MemoryType.Uncacheable ? 3 : 0;

        /// <summary>The type a PAT index selects in the <see cref="DefaultPat"/> layout; UC- reads as UC.</summary>
        public static MemoryType DefaultPatType(int patIndex)
            => (patIndex & 3) switch
            {
                0 => MemoryType.WriteBack,
                1 => MemoryType.WriteThrough,
                _ => MemoryType.Uncacheable,
            };

        public static bool IsLeaf(int level, ulong entry) => level == 1 || ((level == 2 || level == 3) && (entry & LargePage) != 0);

        public static ulong AddressOf(int level, ulong entry)
            => entry & (IsLeaf(level, entry) ? PageTableBits.LeafAddressMask(level) : PageTableBits.AddressMask4K);

        public static PageAccess AccessOf(ulong entry)
        {
            if ((entry & Present) == 0) return PageAccess.None;
            PageAccess access = PageAccess.Read;
            if ((entry & Writable) != 0) access |= PageAccess.Write;
            if ((entry & NoExecute) == 0) access |= PageAccess.Execute;
            return access;
        }
    }
}
