// The guest's instruction bytes at CS:RIP, for sizing (InstructionLength) an instruction an exit
// emulates when the CPU gives no length (no NRIP save under QEMU, APM Vol 2 15.7.1; EPT violations,
// SDM Vol 3C 28.2.5). Linear address = CS.base + RIP (truncated to 32 bits outside 64-bit mode),
// translated page by page in the guest's current paging mode by GuestMemory.Translate: paging off
// (real mode, firmware, AP start-up: linear = physical), 32-bit, PAE, 4-level and 5-level paging —
// an instruction may cross into a second page, translated on its own. Every page is checked against
// the memory's bounds (the host's identity map, the hypervisor's reservation) and the caller's
// forbidden range before a byte is read: what cannot be read ends the fetch, never faults the host.
// The common case (64-bit code under 4-level paging, all bytes in one page: every CPUID, RDMSR/WRMSR,
// VMMCALL a Linux guest executes) takes a lean walk of its own (FetchLong4) with the same checks as
// GuestMemory.Lookup and the page checks below; anything it does not accept goes the general way, which
// then gives the precise answer. Under QEMU (no NRIP) this walk is most of a CPUID exit's cost.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public static class GuestCode
    {
        /// <summary>
        /// Copies up to <paramref name="code"/>.Length bytes of the guest's code at <paramref name="linear"/>; returns
        /// how many were read (fewer when a later page does not translate, is unreachable or forbidden; 0 when the
        /// first does not). <paramref name="is64"/> says whether the linear address is 64 bits wide (64-bit mode).
        /// </summary>
        public static int Fetch<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, bool is64, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            if (is64 && paging.LongModePaging && !paging.FiveLevel && code.Length <= 0x1000 - (int)(linear & 0xFFF)
                && FetchLong4(ref memory, paging.Cr3, paging.Efer, paging.Cpl, linear, code, forbiddenBase, forbiddenSize))
            {
                return code.Length;
            }
            return FetchWalked(ref memory, paging, linear, is64, code, forbiddenBase, forbiddenSize);
        }

        /// <summary><see cref="Fetch"/> by the general walk (GuestMemory.Translate) in every mode: the answer FetchLong4 must match.</summary>
        public static int FetchWalked<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, bool is64, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            ulong physical = 0;
            for (int i = 0; i < code.Length; i++)
            {
                ulong address = linear + (ulong)i;
                if (!is64) address &= 0xFFFF_FFFF;
                if (i == 0 || (address & 0xFFF) == 0)
                {
                    // A new page: translate it (every mode, paging off included) and check all of it.
                    if (GuestMemory.Translate(ref memory, paging, address, write: false, out physical) != WalkResult.Ok) return i;
                    ulong page = physical & ~0xFFFUL;
                    if (page + 0x1000 > forbiddenBase && page < forbiddenBase + forbiddenSize) return i;
                    if (memory.Bounds.Check(page, 0x1000) != WalkResult.Ok) return i;
                }
                else
                {
                    physical++;
                }
                code[i] = (byte)(memory.ReadUInt64(physical & ~7UL) >> (int)((physical & 7) * 8));
            }
            return code.Length;
        }

        private const ulong Present = 1, User = 1 << 2, LargePage = 1 << 7, ExecuteDisable = 1UL << 63, NoExecuteEnable = 1UL << 11;
        private const ulong AddressMask = 0x000F_FFFF_FFFF_F000;   // bits 51:12 of long-mode entries

        /// <summary>
        /// 4-level paging, all of <paramref name="code"/> inside one 4 KiB page: the walk of GuestMemory.Lookup (canonical
        /// address, every table entry inside the bounds, present, XD reserved without EFER.NXE, PS reserved in a PML4E,
        /// U/S at every level for CPL 3) and Fetch's checks of the page (bounds, forbidden range), without the general
        /// walk's bookkeeping. False when any of it fails (nothing was read): the caller takes the general path.
        /// </summary>
        private static bool FetchLong4<TMemory>(ref TMemory memory, ulong cr3, ulong efer, int cpl, ulong linear, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            if ((ulong)((long)(linear << 16) >> 16) != linear) return false;   // not canonical (48 bits)
            PhysicalBounds bounds = memory.Bounds;
            ulong reservedBits = (efer & NoExecuteEnable) != 0 ? 0 : ExecuteDisable;
            ulong rights = User;
            ulong table = cr3 & AddressMask;
            ulong page = 0;
            for (int shift = 39; shift >= 12; shift -= 9)
            {
                ulong address = table + (((linear >> shift) & 0x1FF) * 8);
                if (bounds.Check(address, 8) != WalkResult.Ok) return false;
                ulong entry = memory.ReadUInt64(address);
                if ((entry & Present) == 0 || (entry & reservedBits) != 0) return false;
                rights &= entry;
                if (shift == 12)
                {
                    page = entry & AddressMask;   // a PTE: bit 7 is PAT
                    break;
                }
                if ((entry & LargePage) != 0)
                {
                    if (shift == 39) return false;   // PS is reserved in a PML4E
                    ulong size = 1UL << shift;       // 1 GiB or 2 MiB
                    page = (entry & AddressMask & ~(size - 1)) | (linear & (size - 1) & ~0xFFFUL);
                    break;
                }
                table = entry & AddressMask;
            }
            if (cpl == 3 && (rights & User) == 0) return false;
            if (page + 0x1000 > forbiddenBase && page < forbiddenBase + forbiddenSize) return false;
            if (bounds.Check(page, 0x1000) != WalkResult.Ok) return false;
            ulong physical = page | (linear & 0xFFF);
            for (int i = 0; i < code.Length; i++, physical++)
                code[i] = (byte)(memory.ReadUInt64(physical & ~7UL) >> (int)((physical & 7) * 8));
            return true;
        }
    }
}
