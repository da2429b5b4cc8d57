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
// then gives the precise answer. Under QEMU (no NRIP) every CPUID exit sizes its instruction from the guest's
// bytes: each CPU keeps the lean walk's last translation (FetchOnCpu) and reuses it while every entry on the way
// reads the same (FetchHead: the entries' reads and compares instead of a walk with its checks).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;

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
                && FetchLong4(ref memory, paging.Cr3, paging.Efer, paging.Cpl, linear, code, forbiddenBase, forbiddenSize, CodePages.None))
            {
                return code.Length;
            }
            return FetchWalked(ref memory, paging, linear, is64, code, forbiddenBase, forbiddenSize);
        }

        /// <summary>
        /// <see cref="Fetch"/> for CPU <paramref name="cpu"/>'s exits, with the same answer: the lean walk's last translation on
        /// that CPU is kept (<see cref="CodePages"/>) and reused when every table entry it went through still reads the same,
        /// which costs the reads of those entries and no checks (the checks depend only on the entries, the CR3 address, the
        /// linear page, the CPL and EFER.NXE, all part of the match). Under QEMU (no NRIP) every CPUID exit sizes its
        /// instruction this way.
        /// </summary>
        public static int FetchOnCpu<TMemory>(ref TMemory memory, uint cpu, in GuestPaging paging, ulong linear, bool is64, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            if (is64 && paging.LongModePaging && !paging.FiveLevel && code.Length <= 0x1000 - (int)(linear & 0xFFF))
            {
                int slot = CodePages.Slot(cpu);
                if (FetchCached(ref memory, slot, paging.Cr3, paging.Efer, paging.Cpl, linear, code, forbiddenBase, forbiddenSize)
                    || FetchLong4(ref memory, paging.Cr3, paging.Efer, paging.Cpl, linear, code, forbiddenBase, forbiddenSize, slot))
                {
                    return code.Length;
                }
            }
            return FetchWalked(ref memory, paging, linear, is64, code, forbiddenBase, forbiddenSize);
        }

        /// <summary>
        /// The exit path's shortcut (InstructionSkip): the 8 bytes at <paramref name="linear"/> in 64-bit code, when CPU
        /// <paramref name="cpu"/>'s kept translation (FetchOnCpu) still holds for it and they are in its page: the byte at
        /// <paramref name="linear"/> in bits 7:0 of <paramref name="head"/>, then the next ones. Returns 8, or 0 (nothing
        /// read: the caller takes FetchOnCpu, which keeps the translation for the next time).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int FetchHead<TMemory>(ref TMemory memory, uint cpu, ulong cr3, ulong cr4, ulong efer, int cpl, ulong linear, ulong forbiddenBase, ulong forbiddenSize, out ulong head)
            where TMemory : struct, IPhysicalMemory
        {
            head = 0;
            if ((cr4 & La57) != 0) return 0;
            int slot = CodePages.Slot(cpu);
            if (!Kept(ref memory, slot, cr3, efer, cpl, linear, forbiddenBase, forbiddenSize, out ulong physical)) return 0;
            if ((physical & 0xFFF) > 0xFF8) return 0;   // fewer than 8 bytes left in the page: the general way
            head = memory.ReadUInt64(physical);        // unaligned, inside the page
            return 8;
        }

        /// <summary>Forgets every CPU's kept translation (tests).</summary>
        public static void ForgetTranslations()
        {
            for (uint i = 0; i < CodePages.Cpus; i++) CodePages.Word(CodePages.Slot(i) + CodePages.Key) = 0;
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
        private const ulong La57 = 1UL << 12;                      // CR4.LA57: 5-level paging

        /// <summary>
        /// 4-level paging, all of <paramref name="code"/> inside one 4 KiB page: the walk of GuestMemory.Lookup (canonical
        /// address, every table entry inside the bounds, present, XD reserved without EFER.NXE, PS reserved in a PML4E,
        /// U/S at every level for CPL 3) and Fetch's checks of the page (bounds, forbidden range), without the general
        /// walk's bookkeeping. False when any of it fails (nothing was read): the caller takes the general path.
        /// </summary>
        private static bool FetchLong4<TMemory>(ref TMemory memory, ulong cr3, ulong efer, int cpl, ulong linear, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize, int slot)
            where TMemory : struct, IPhysicalMemory
        {
            if ((ulong)((long)(linear << 16) >> 16) != linear) return false;   // not canonical (48 bits)
            PhysicalBounds bounds = memory.Bounds;
            ulong reservedBits = (efer & NoExecuteEnable) != 0 ? 0 : ExecuteDisable;
            ulong rights = User;
            ulong table = cr3 & AddressMask;
            ulong page = 0;
            int levels = 0;
            System.Span<ulong> entries = stackalloc ulong[4];   // kept only when the walk succeeds (a failed one leaves the slot as it was)
            for (int shift = 39; shift >= 12; shift -= 9)
            {
                ulong address = table + (((linear >> shift) & 0x1FF) * 8);
                if (bounds.Check(address, 8) != WalkResult.Ok) return false;
                ulong entry = memory.ReadUInt64(address);
                if ((entry & Present) == 0 || (entry & reservedBits) != 0) return false;
                entries[levels++] = entry;
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
            if (slot >= 0)
            {
                for (int i = 0; i < levels; i++) CodePages.Word(slot + CodePages.Entries + i) = entries[i];
                CodePages.Word(slot + CodePages.Key) = CodePages.KeyOf(linear, cpl, efer);
                CodePages.Word(slot + CodePages.Table) = cr3 & AddressMask;
                CodePages.Word(slot + CodePages.Page) = page;
                CodePages.Word(slot + CodePages.Levels) = (ulong)levels;
            }
            Copy(ref memory, page | (linear & 0xFFF), code);
            return true;
        }

        /// <summary>The kept translation of <paramref name="slot"/>, when it holds: the page's bytes (see <see cref="Kept"/>).</summary>
        private static bool FetchCached<TMemory>(ref TMemory memory, int slot, ulong cr3, ulong efer, int cpl, ulong linear, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            if (!Kept(ref memory, slot, cr3, efer, cpl, linear, forbiddenBase, forbiddenSize, out ulong physical)) return false;
            Copy(ref memory, physical, code);
            return true;
        }

        /// <summary>
        /// Whether the translation kept in <paramref name="slot"/> is for this linear page, CPL class, EFER.NXE and CR3 address
        /// and every entry on the way still reads as it did, and its page is outside the forbidden range (the caller's):
        /// then <paramref name="physical"/> is where <paramref name="linear"/> is.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static bool Kept<TMemory>(ref TMemory memory, int slot, ulong cr3, ulong efer, int cpl, ulong linear, ulong forbiddenBase, ulong forbiddenSize, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            ref ulong kept = ref CodePages.Word(slot);
            if (kept != CodePages.KeyOf(linear, cpl, efer)) return false;
            ulong table = cr3 & AddressMask;
            if (Unsafe.Add(ref kept, CodePages.Table) != table) return false;
            // The entries from the PML4E down, unrolled (this runs on every CPUID exit under QEMU).
            int levels = (int)Unsafe.Add(ref kept, CodePages.Levels);
            ulong entry = memory.ReadUInt64(table + (((linear >> 39) & 0x1FF) * 8));
            if (entry != Unsafe.Add(ref kept, CodePages.Entries)) return false;
            if (levels > 1)
            {
                entry = memory.ReadUInt64((entry & AddressMask) + (((linear >> 30) & 0x1FF) * 8));
                if (entry != Unsafe.Add(ref kept, CodePages.Entries + 1)) return false;
                if (levels > 2)
                {
                    entry = memory.ReadUInt64((entry & AddressMask) + (((linear >> 21) & 0x1FF) * 8));
                    if (entry != Unsafe.Add(ref kept, CodePages.Entries + 2)) return false;
                    if (levels > 3)
                    {
                        entry = memory.ReadUInt64((entry & AddressMask) + (((linear >> 12) & 0x1FF) * 8));
                        if (entry != Unsafe.Add(ref kept, CodePages.Entries + 3)) return false;
                    }
                }
            }
            ulong page = Unsafe.Add(ref kept, CodePages.Page);
            if (page + 0x1000 > forbiddenBase && page < forbiddenBase + forbiddenSize) return false;
            physical = page | (linear & 0xFFF);
            return true;
        }

        /// <summary>Bytes at <paramref name="physical"/> (all in one page, already checked), read 8 at a time where they share them.</summary>
        private static void Copy<TMemory>(ref TMemory memory, ulong physical, System.Span<byte> code)
            where TMemory : struct, IPhysicalMemory
        {
            int i = 0;
            while (i < code.Length)
            {
                ulong word = memory.ReadUInt64(physical & ~7UL) >> (int)((physical & 7) * 8);
                int take = 8 - (int)(physical & 7);
                for (; take > 0 && i < code.Length; take--, i++, physical++, word >>= 8) code[i] = (byte)word;
            }
        }

        /// <summary>
        /// Per CPU (its index modulo <see cref="Cpus"/>, written only by that CPU in root mode): the last translation
        /// FetchLong4 made for FetchOnCpu. Words of a slot: the key (linear page | valid | the CPL | EFER.NXE), the CR3
        /// address, the entries read (PML4E down to the PTE or the large-page entry), how many, the physical page.
        /// </summary>
        private unsafe struct CodePages
        {
            public const int Cpus = Vigil.Abi.LaunchParameters.MaxCpus, Words = 8;   // a slot for every CPU Vigil can launch
            public const int Key = 0, Table = 1, Entries = 2, Levels = 6, Page = 7;

            private fixed ulong _data[Cpus * Words];

            /// <summary>No slot: the walk keeps nothing.</summary>
            public const int None = -1;

            /// <summary>The first word of CPU <paramref name="cpu"/>'s slot.</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public static int Slot(uint cpu) => (int)(cpu % Cpus) * Words;

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public static ref ulong Word(int index) => ref s_pages._data[index];

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public static ulong KeyOf(ulong linear, int cpl, ulong efer)
                => (linear & ~0xFFFUL) | 1 | ((ulong)(uint)cpl << 1) | ((efer & NoExecuteEnable) >> 8);   // CPL: bits 2:1, EFER.NXE: bit 3
        }

        private static CodePages s_pages;
    }
}
