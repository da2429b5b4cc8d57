// Boot time (BSP, boot services still running). A minimal host environment for the VMCS host-state
// fields until hv/Host (the shared host GDT/TSS/IDT with IST stacks and NMI handling) lands: one GDT
// with a 64-bit code, a data and a TSS descriptor, an empty TSS, an IDT page of not-present gates (a
// host exception shuts the CPU down: loud in Bochs's log), and identity-mapped page tables with
// 2 MiB pages for [0, limit). All in the hypervisor's reserved pool, so they outlive the firmware's.
// TEMPORARY: replace with hv/Host's API when it is on main.
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxHostBridge
    {
        public const ushort CodeSelector = 0x08;
        public const ushort DataSelector = 0x10;
        public const ushort TssSelector = 0x18;

        public static ulong Gdt;
        public static ulong Idt;
        public static ulong Tss;
        public static ulong Cr3;

        public static bool Build(ulong limit)
        {
            Gdt = Hv.AllocatePages(1);
            Idt = Hv.AllocatePages(1);
            Tss = Hv.AllocatePages(1);
            if (Gdt == 0 || Idt == 0 || Tss == 0) return false;
            var gdt = (ulong*)Gdt;
            gdt[1] = 0x00AF_9B00_0000_FFFF;   // 64-bit code, DPL 0, present (SDM Vol 3A 3.4.5)
            gdt[2] = 0x00CF_9300_0000_FFFF;   // data, read/write, DPL 0, present
            // 64-bit TSS descriptor (16 bytes, type 9 available; SDM Vol 3A 8.2.3), limit 0x67.
            ulong tss = Tss;
            gdt[3] = 0x67 | ((tss & 0xFF_FFFF) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xFF) << 56);
            gdt[4] = tss >> 32;
            ((ushort*)Tss)[0x66 / 2] = 0x68;   // I/O map base beyond the limit: no I/O bitmap

            // Host page tables: PML4 -> one PDPT per 512 GiB -> PDs of 2 MiB pages, write-back (PAT entry 0).
            ulong gib = (limit + (1UL << 30) - 1) >> 30;
            if (gib > 512) gib = 512;
            ulong pml4 = Hv.AllocatePages(1);
            ulong pdpt = Hv.AllocatePages(1);
            ulong pds = Hv.AllocatePages(gib);
            if (pml4 == 0 || pdpt == 0 || pds == 0) return false;
            ((ulong*)pml4)[0] = pdpt | 0x3;
            for (ulong g = 0; g < gib; g++)
            {
                ((ulong*)pdpt)[g] = (pds + (g * 4096)) | 0x3;
                var pd = (ulong*)(pds + (g * 4096));
                for (ulong i = 0; i < 512; i++) pd[i] = ((g << 30) | (i << 21)) | 0x83;   // present, writable, 2 MiB
            }
            Cr3 = pml4;
            return true;
        }
    }
}
