// Finding what to guard, by the hypervisor itself, from the kernel's own page tables at Protect
// (nothing a guest process hands in can shrink it: hints are checked, never trusted).
//   - The kernel's page tables: with page-table isolation (Linux 6.1 arch/x86/include/asm/pgtable_64.h,
//     pti.c) every PGD is an 8 KiB-aligned pair, the kernel half first and the user half second
//     (PTI_USER_PGTABLE_BIT = PAGE_SHIFT = 12), and CR3 bits 11:0 hold the PCID (user PCIDs have bit 11,
//     X86_CR3_PTI_PCID_USER_BIT): the kernel's CR3 is the caller's with bits 12 and 11:0 cleared. The user
//     half maps almost no kernel (the entry text, the CPU entry area). Without PTI bit 12 is clear anyway.
//     The choice is checked: LSTAR must be kernel code in the tables chosen (else the caller's own are used).
//   - The kernel image region, 0xffffffff80000000 up to the module area at 0xffffffffc0000000
//     (Documentation/x86/x86_64/mm.rst), walked leaf by leaf (4 KiB, 2 MiB pages): after mark_rodata_ro,
//     present + not writable + supervisor + executable is core text (KernelText); present + not writable +
//     supervisor + NX is .rodata with __ro_after_init (KernelReadOnlyData). Writable pages (.data, .bss) are
//     not guarded. Only the image's own runs count: the first run of text pages, then the first run of
//     read-only data after it, each contiguous, each ended by the first page of another kind. The pages
//     the kernel freed from its image (the text/rodata and rodata/data gaps, initmem: "Freeing unused
//     kernel image") stay mapped in this region without PTI, and when the page allocator hands them to a
//     module or a BPF program that makes them read-only (set_memory_ro), CPA changes this alias too
//     (arch/x86/mm/pat/set_memory.c, cpa_process_alias): such a page looks like rodata here, but it is
//     reused memory, written again once freed (seen: a BPF JIT pack refused at Protect + 8 s).
//   - sys_call_table's page(s): from the agent's hint (kallsyms), accepted only when it lies in the read-only
//     data found (both ends); the pages become SysCallTable. The IDT: IDTR base of the calling CPU, translated
//     (the CPU entry area's read-only alias and idt_table are the same page), becomes InterruptTable.
//   - Ranges: guest-physical, page-aligned, contiguous pages of one class coalesced; pages already guarded,
//     in the hypervisor's memory or beyond the host's map are left out.
// Root mode, the CPU that made the Protect hypercall, holding the guard's lock.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>What discovery found and could not do.</summary>
    public enum DiscoveryResult
    {
        Ok,

        /// <summary>The caller is not in 4-level or 5-level paging.</summary>
        NotLongMode,

        /// <summary>No kernel code in the image region of the kernel's tables.</summary>
        NoKernelText,

        /// <summary>More ranges than <see cref="GuardState.MaxRanges"/>.</summary>
        TooManyRanges,
    }

    /// <summary>The pages that get a class of their own (up to two each: a table may cross a page boundary).</summary>
    public struct SpecialPages
    {
        public ulong SysCallTable0;
        public ulong SysCallTable1;
        public ulong Idt0;
        public ulong Idt1;

        /// <summary>The class of the page at <paramref name="page"/> when it is special (None otherwise).</summary>
        public readonly GuardObject Of(ulong page)
        {
            if (page == 0) return GuardObject.None;
            if (page == Idt0 || page == Idt1) return GuardObject.InterruptTable;
            if (page == SysCallTable0 || page == SysCallTable1) return GuardObject.SysCallTable;
            return GuardObject.None;
        }
    }

    public static class KernelDiscovery
    {
        /// <summary>The kernel image region: the kernel's text, rodata, data and bss mapping (KASLR moves it inside).</summary>
        public const ulong ImageStart = 0xFFFF_FFFF_8000_0000;

        /// <summary>Where the module area starts (MODULES_VADDR): the image region ends here.</summary>
        public const ulong ImageEnd = 0xFFFF_FFFF_C000_0000;

        /// <summary>sys_call_table's size in Linux 6.1 x86-64: NR_syscalls (451) entries of 8 bytes.</summary>
        public const ulong SysCallTableBytes = 451 * 8;

        private const ulong PageSize = 4096;
        private const ulong AddressMask = 0x000F_FFFF_FFFF_F000;

        /// <summary>The kernel half of a PTI pair: bit 12 and the PCID (bits 11:0) cleared, the address bits kept.</summary>
        public static ulong KernelCr3(ulong cr3) => cr3 & AddressMask & ~0x1FFFUL;

        /// <summary>The caller's paging with <paramref name="cr3"/> and CPL 0 (the kernel's view).</summary>
        public static GuestPaging WithCr3(in GuestPaging paging, ulong cr3) => new(paging.Cr0, cr3, paging.Cr4, paging.Efer, 0);

        /// <summary>How the leaf at <paramref name="page"/> classifies: text, rodata or None (writable, user, outside the image).</summary>
        public static GuardObject Classify(in GuestPage page)
        {
            if (page.Writable || page.User) return GuardObject.None;
            return page.NoExecute ? GuardObject.KernelReadOnlyData : GuardObject.KernelText;
        }

        /// <summary>The class of the kernel-image address <paramref name="va"/> in <paramref name="kernel"/> (None when not mapped or outside the region), and its physical address.</summary>
        public static GuardObject ClassOf<TMemory>(ref TMemory memory, in GuestPaging kernel, ulong va, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            if (va < ImageStart || va >= ImageEnd) return GuardObject.None;
            if (GuestMemory.Lookup(ref memory, kernel, va, out GuestPage page) != WalkResult.Ok) return GuardObject.None;
            physical = page.Physical + (va & (page.Size - 1));
            return Classify(page);
        }

        /// <summary>
        /// The tables to walk: the kernel half of the caller's CR3 when LSTAR (the syscall entry, kernel code) is kernel
        /// code there, else the caller's own CR3 when it is there; false when neither maps it.
        /// </summary>
        public static bool FindKernelPaging<TMemory>(ref TMemory memory, in GuestPaging caller, ulong lstar, out GuestPaging kernel)
            where TMemory : struct, IPhysicalMemory
        {
            kernel = WithCr3(caller, KernelCr3(caller.Cr3));
            if (IsKernelCode(ref memory, kernel, lstar)) return true;
            kernel = WithCr3(caller, caller.Cr3 & AddressMask);
            return IsKernelCode(ref memory, kernel, lstar);
        }

        private static bool IsKernelCode<TMemory>(ref TMemory memory, in GuestPaging kernel, ulong va)
            where TMemory : struct, IPhysicalMemory
            => GuestMemory.Lookup(ref memory, kernel, va, out GuestPage page) == WalkResult.Ok && Classify(page) == GuardObject.KernelText;

        /// <summary>
        /// Walks the image region of <paramref name="kernel"/> and adds its text and read-only data to GuardState (the
        /// caller holds the guard's lock), the <paramref name="special"/> pages with their own class; the IDT pages are
        /// added also when they lie outside the region (the CPU entry area). <paramref name="textBytes"/>: code found.
        /// </summary>
        public static DiscoveryResult Discover<TMemory>(ref TMemory memory, in GuestPaging kernel, in SpecialPages special, out ulong textBytes)
            where TMemory : struct, IPhysicalMemory
        {
            textBytes = 0;
            if (!kernel.LongModePaging) return DiscoveryResult.NotLongMode;
            var ranges = new RangeBuilder();
            // The core text's mapping for the text-patch judge and actor regions (GuardState.TextLinear/TextGpa/TextSize):
            // the first run of text pages that is contiguous both linearly and physically (the kernel image is one
            // physically contiguous block, mapped in order).
            ulong textLinear = 0, textGpa = 0, textSize = 0;
            bool textRunOver = false;
            // The image's runs (see the header): 0 before text, 1 in text, 2 between text and rodata, 3 in rodata, 4 after.
            int run = 0;
            ulong va = ImageStart;
            while (va < ImageEnd)
            {
                WalkResult result = GuestMemory.Lookup(ref memory, kernel, va, out GuestPage page);
                ulong next = (va & ~(page.Size - 1)) + page.Size;
                GuardObject o = result == WalkResult.Ok ? Classify(page) : GuardObject.None;
                run = run switch
                {
                    0 or 1 when o == GuardObject.KernelText => 1,
                    1 or 2 when o == GuardObject.KernelReadOnlyData => 3,
                    1 or 2 => 2,
                    3 when o == GuardObject.KernelReadOnlyData => 3,
                    0 => 0,
                    _ => 4,
                };
                if (run == 4) break;
                if (run is 0 or 2) o = GuardObject.None;
                if (o != GuardObject.None)
                {
                    for (ulong offset = va & (page.Size - 1); offset < page.Size; offset += PageSize)
                    {
                        ulong pa = page.Physical + offset;
                        if (o == GuardObject.KernelText)
                        {
                            textBytes += PageSize;
                            ulong linear = (va & ~(page.Size - 1)) + offset;
                            if (textSize == 0)
                            {
                                textLinear = linear;
                                textGpa = pa;
                                textSize = PageSize;
                            }
                            else if (!textRunOver && linear == textLinear + textSize && pa == textGpa + textSize) textSize += PageSize;
                            else textRunOver = true;
                        }
                        else if (textSize != 0) textRunOver = true;
                        GuardObject s = special.Of(pa);
                        // sys_call_table's pages are named only inside rodata (the hint was checked against it).
                        GuardObject cls = s == GuardObject.InterruptTable || (s == GuardObject.SysCallTable && o == GuardObject.KernelReadOnlyData) ? s : o;
                        if (!ranges.Add(ref memory, pa, cls)) return DiscoveryResult.TooManyRanges;
                    }
                }
                if (next <= va) break;   // the top of the address space
                va = next;
            }
            if (!ranges.Add(ref memory, special.Idt0, GuardObject.InterruptTable) || !ranges.Add(ref memory, special.Idt1, GuardObject.InterruptTable)) return DiscoveryResult.TooManyRanges;
            if (!ranges.Flush()) return DiscoveryResult.TooManyRanges;
            if (textBytes == 0) return DiscoveryResult.NoKernelText;
            GuardState.TextLinear = textLinear;
            GuardState.TextGpa = textGpa;
            GuardState.TextSize = textSize;
            return DiscoveryResult.Ok;
        }

        /// <summary>Coalesces pages into GuardState ranges: contiguous and of one class.</summary>
        private struct RangeBuilder
        {
            private ulong _start;
            private ulong _end;
            private GuardObject _object;

            /// <summary>Adds one page (0: nothing); false when GuardState's table is full.</summary>
            public bool Add<TMemory>(ref TMemory memory, ulong page, GuardObject o)
                where TMemory : struct, IPhysicalMemory
            {
                if (page == 0 || o == GuardObject.None) return true;
                if (memory.Bounds.Check(page, PageSize) != WalkResult.Ok) return true;   // the hypervisor's memory, or not mapped for the host
                if (GuardState.ObjectAt(page) != GuardObject.None) return true;             // guarded already (a later Protect, an alias)
                if (page >= _start && page < _end) return true;                              // in the range being built (an alias)
                if (_end != 0 && page == _end && o == _object)
                {
                    _end += PageSize;
                    return true;
                }
                if (!Flush()) return false;
                _start = page;
                _end = page + PageSize;
                _object = o;
                return true;
            }

            /// <summary>Adds the range being built to GuardState.</summary>
            public bool Flush()
            {
                if (_end == 0) return true;
                bool added = GuardState.AddRange(_start, _end - _start, _object);
                _start = _end = 0;
                return added;
            }
        }
    }
}
