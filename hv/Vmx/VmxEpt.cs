// Boot time (BSP), then read by every CPU's VMCS. The EPT identity map (SDM Vol 3C 29.3): all of
// guest-physical memory 1:1 from 0 to the limit (RAM, MMIO, above 4 GiB), read/write/execute, each
// page with the memory type the MTRRs give it (SDM Vol 3A 11.11; EPT ignores the MTRRs for guest
// accesses, SDM Vol 3C 29.3.7.2, so MMIO must be UC here). 1 GiB pages where allowed and the type is
// uniform, else 2 MiB, else 4 KiB. The hypervisor's own pages point at one decoy page instead of
// themselves: the guest reads zeros (or what it wrote there), never the hypervisor's memory, from
// the first instruction after launch.
// TEMPORARY: builds with its own small MTRR reader; switch to hv/Core NestedMap/MtrrSet when on main.
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxEpt
    {
        private const ulong Read = 1, Write = 2, Execute = 4, Large = 1UL << 7;
        private const ulong Rwx = Read | Write | Execute;
        private const int TypeShift = 3;

        public static ulong Pml4;
        public static ulong Limit;
        public static ulong Decoy;
        public static ulong ProtectedPages;

        private static ulong s_hideBase0, s_hideEnd0, s_hideBase1, s_hideEnd1;
        private static bool s_1GiB;

        // MTRR snapshot (SDM Vol 3A 11.11.2).
        private static ulong s_defType;
        private static int s_variableCount;
        private static ulong* s_base;
        private static ulong* s_mask;
        private static byte* s_fixed;
        private static ulong s_physMask;

        /// <summary>EPTP: WB paging structures, 4-level walk (SDM Vol 3C 25.6.11).</summary>
        public static ulong Pointer => Pml4 | (3UL << 3) | 6;

        public static bool Build(ulong limit, bool allow1GiB, ulong hideBase0, ulong hideEnd0, ulong hideBase1, ulong hideEnd1)
        {
            Limit = limit;
            s_1GiB = allow1GiB;
            s_hideBase0 = hideBase0 & ~0xFFFUL;
            s_hideEnd0 = hideEnd0;
            s_hideBase1 = hideBase1 & ~0xFFFUL;
            s_hideEnd1 = hideEnd1;
            ReadMtrrs();
            Decoy = Hv.AllocatePages(1);
            Pml4 = Hv.AllocatePages(1);
            if (Decoy == 0 || Pml4 == 0) return false;
            for (ulong a = 0; a < limit; a += 1UL << 39)
            {
                ulong pdpt = Hv.AllocatePages(1);
                if (pdpt == 0) return false;
                ((ulong*)Pml4)[a >> 39] = pdpt | Rwx;
                for (ulong g = 0; g < 512 && a + (g << 30) < limit; g++)
                {
                    ulong gBase = a + (g << 30);
                    if (s_1GiB && Uniform(gBase, 1UL << 30, out byte t1) && !Hidden(gBase, 1UL << 30))
                    {
                        ((ulong*)pdpt)[g] = gBase | Rwx | Large | ((ulong)t1 << TypeShift);
                        continue;
                    }
                    ulong pd = Hv.AllocatePages(1);
                    if (pd == 0) return false;
                    ((ulong*)pdpt)[g] = pd | Rwx;
                    for (ulong m = 0; m < 512; m++)
                    {
                        ulong mBase = gBase + (m << 21);
                        if (Uniform(mBase, 1UL << 21, out byte t2) && !Hidden(mBase, 1UL << 21))
                        {
                            ((ulong*)pd)[m] = mBase | Rwx | Large | ((ulong)t2 << TypeShift);
                            continue;
                        }
                        ulong pt = Hv.AllocatePages(1);
                        if (pt == 0) return false;
                        ((ulong*)pd)[m] = pt | Rwx;
                        for (ulong k = 0; k < 512; k++)
                        {
                            ulong page = mBase + (k << 12);
                            byte t = TypeOf(page);
                            if (Hidden(page, 4096))
                            {
                                ((ulong*)pt)[k] = Decoy | Read | Write | (6UL << TypeShift);
                                ProtectedPages++;
                            }
                            else
                            {
                                ((ulong*)pt)[k] = page | Rwx | ((ulong)t << TypeShift);
                            }
                        }
                    }
                }
            }
            return true;
        }

        private static bool Hidden(ulong start, ulong size)
            => (start < s_hideEnd0 && start + size > s_hideBase0) || (start < s_hideEnd1 && start + size > s_hideBase1);

        private static void ReadMtrrs()
        {
            s_physMask = (1UL << (int)PhysicalAddressBits()) - 1;
            uint* r = stackalloc uint[4];
            Cpu.Cpuid(1, 0, r);
            if ((r[3] & (1u << 12)) == 0)
            {
                s_defType = (1UL << 11) | 6;   // no MTRRs: everything WB (the PAT alone decides)
                return;
            }
            ulong cap = Cpu.ReadMsr(0xFE);
            s_defType = Cpu.ReadMsr(0x2FF);
            s_variableCount = (int)(cap & 0xFF);
            s_base = (ulong*)Hv.AllocatePages(1);
            s_mask = s_base + 64;
            s_fixed = (byte*)(s_base + 128);
            if (s_variableCount > 64) s_variableCount = 64;
            for (int i = 0; i < s_variableCount; i++)
            {
                s_base[i] = Cpu.ReadMsr(0x200 + (uint)(2 * i));
                s_mask[i] = Cpu.ReadMsr(0x201 + (uint)(2 * i));
            }
            if ((cap & (1UL << 8)) != 0 && (s_defType & (1UL << 10)) != 0)
            {
                StoreFixed(0, Cpu.ReadMsr(0x250));
                StoreFixed(8, Cpu.ReadMsr(0x258));
                StoreFixed(16, Cpu.ReadMsr(0x259));
                for (uint i = 0; i < 8; i++) StoreFixed(24 + (int)(8 * i), Cpu.ReadMsr(0x268 + i));
                s_fixed[88] = 1;   // fixed ranges in force
            }
        }

        private static void StoreFixed(int first, ulong value)
        {
            for (int i = 0; i < 8; i++) s_fixed[first + i] = (byte)((value >> (8 * i)) & 7);
        }

        private static uint PhysicalAddressBits()
        {
            uint* r = stackalloc uint[4];
            Cpu.Cpuid(0x80000000, 0, r);
            if (r[0] < 0x80000008) return 36;
            Cpu.Cpuid(0x80000008, 0, r);
            return r[0] & 0xFF;
        }

        /// <summary>The type of one address (SDM Vol 3A 11.11.4.1 precedence: fixed, then variable, then default).</summary>
        private static byte TypeOf(ulong address)
        {
            if ((s_defType & (1UL << 11)) == 0) return 0;
            if (address < 0x10_0000 && s_fixed != null && s_fixed[88] != 0)
            {
                int index = address < 0x8_0000 ? (int)(address >> 16)
                    : address < 0xC_0000 ? 8 + (int)((address - 0x8_0000) >> 14)
                    : 24 + (int)((address - 0xC_0000) >> 12);
                return s_fixed[index];
            }
            int found = -1;
            for (int i = 0; i < s_variableCount; i++)
            {
                ulong mask = s_mask[i];
                if ((mask & (1UL << 11)) == 0) continue;
                mask &= s_physMask & ~0xFFFUL;
                if ((address & mask) != (s_base[i] & mask)) continue;
                int t = (int)(s_base[i] & 0xFF);
                if (t == 0) return 0;                                         // UC wins
                if (found == -1) found = t;
                else if ((found == 4 && t == 6) || (found == 6 && t == 4)) found = 4;   // WT + WB = WT
            }
            return found == -1 ? (byte)(s_defType & 0xFF) : (byte)found;
        }

        /// <summary>True when [start, start + size) has one type: no variable range starts or ends inside it.</summary>
        private static bool Uniform(ulong start, ulong size, out byte type)
        {
            type = TypeOf(start);
            if ((s_defType & (1UL << 11)) == 0) return true;
            if (start < 0x10_0000 && s_fixed != null && s_fixed[88] != 0) return false;
            for (int i = 0; i < s_variableCount; i++)
            {
                ulong mask = s_mask[i];
                if ((mask & (1UL << 11)) == 0) continue;
                mask &= s_physMask & ~0xFFFUL;
                if ((mask & (size - 1)) == 0) continue;                       // the range covers whole blocks
                ulong high = mask & ~(size - 1);
                if ((start & high) == (s_base[i] & high)) return false;      // a smaller range lies inside
            }
            return true;
        }
    }
}
