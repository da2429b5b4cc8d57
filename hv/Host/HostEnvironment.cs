// The host environment every back end runs its exit handlers in (SVM host with GIF=0, VMX root):
// per CPU a GDT (64-bit code, data, TSS), a TSS whose IST stacks take NMI, #DF and #MC, a host stack,
// each stack with an unmapped guard page below it;
// shared by all CPUs an IDT whose entries (generated, StubCatalog.Host.cs) call HostExceptions, and
// the host CR3, an identity map of physical memory (hv/Core/Paging/NestedMap with HostFormat). The firmware's GDT, IDT and page tables
// disappear after ExitBootServices, so the host must own its own (DESIGN.md, pitfalls).
// Initialize runs once on the BSP before any launch; Enter runs on each CPU while it is launched
// (interrupts off), after the firmware's state was captured for the guest. See README.md.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Native;
using Vigil.Platform;

namespace Vigil.Hypervisor.Host
{
    /// <summary>One CPU's host descriptor tables and stacks. Page-aligned, found by index.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct HostCpu
    {
        /// <summary>Null, 64-bit code (0x08), data (0x10), 16-byte TSS descriptor (0x18), spare.</summary>
        public fixed ulong Gdt[HostEnvironment.GdtEntries];

        public HostTss Tss;
        public uint Index;

        /// <summary>NMIs taken in the host, not yet handed to the guest (VMX re-injects them; see README.md).</summary>
        public uint PendingNmis;

        /// <summary>Top of the host stack (16-byte aligned): the back end puts its exit frame below it.</summary>
        public ulong StackTop;

        public ulong StackBottom;

        /// <summary>The unmapped page below the host stack (a stack overflow faults there, see HostExceptions).</summary>
        public ulong StackGuard;

        /// <summary>The unmapped page below each IST stack (index 0 = IST1: NMI, 1 = #DF, 2 = #MC).</summary>
        public fixed ulong IstGuard[3];
    }

    public static unsafe class HostEnvironment
    {
        public const int GdtEntries = 6;
        public const ushort CodeSelector = 0x08;
        public const ushort DataSelector = 0x10;
        public const ushort TssSelector = 0x18;

        /// <summary>IST slots (1-based, as the IDT encodes them).</summary>
        public const int NmiIst = 1;
        public const int DoubleFaultIst = 2;
        public const int MachineCheckIst = 3;

        public const ulong StackPages = 8;      // 32 KiB host stack per CPU
        public const ulong IstPages = 2;        // 8 KiB per IST stack
        public const ulong GuardPages = 1;      // unmapped, below each of those stacks
        public const int Vectors = 32;          // exceptions only: the host never enables interrupts

        private static HostCpu** s_cpus;
        private static uint s_count;
        private static ulong s_idt;
        private static NestedMap<HostFormat> s_map;

        /// <summary>Host CR3 (identity map of [0, physicalLimit) in the largest pages the MTRRs allow): VMCS HOST_CR3.</summary>
        public static ulong Cr3 => s_map.Root;

        /// <summary>Shared IDT base and limit: VMCS HOST_IDTR_BASE.</summary>
        public static ulong IdtBase => s_idt;

        public static ushort IdtLimit => Vectors * 16 - 1;

        public static ushort GdtLimit => GdtEntries * 8 - 1;

        public static uint CpuCount => s_count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static HostCpu* Cpu(uint index) => index < s_count ? s_cpus[index] : null;

        /// <summary>VMCS HOST_GDTR_BASE for a CPU.</summary>
        public static ulong GdtBase(uint index) => (ulong)s_cpus[index]->Gdt;

        /// <summary>VMCS HOST_TR_BASE for a CPU.</summary>
        public static ulong TssBase(uint index) => (ulong)&s_cpus[index]->Tss;

        /// <summary>The host map, for a back end that must hide or split pages in it (NestedMap's SetAccess/SplitTo4K with Hv.Pages).</summary>
        public static ref NestedMap<HostFormat> Map => ref s_map;

        /// <summary>Builds everything; false (with the reason logged) when the page pool runs out.</summary>
        public static bool Initialize(uint cpuCount, ulong physicalLimit, bool gigabytePages)
        {
            s_count = cpuCount;
            s_cpus = (HostCpu**)Hv.AllocatePages(1);
            s_idt = Hv.AllocatePages(1);
            if (!HostMemoryTypes.Initialize()) return false;
            // Host CR3: [0, physicalLimit) to itself, supervisor read/write/execute, leaves WB in the PAT so the
            // MTRRs decide the type (HostFormat); large pages only where the MTRRs give one type (SDM Vol 3A 11.11.9).
            var pages = Hv.Pages;
            if (s_cpus == null || s_idt == 0 || !s_map.Build(ref pages, physicalLimit, HostMemoryTypes.Mtrrs, gigabytePages))
            {
                Hv.Log.Error("host environment: out of hypervisor memory");
                return false;
            }

            // IDT: 64-bit interrupt gates (type 0xE, P, DPL 0) to the generated entry stubs, 16 bytes apart
            // (SDM Vol 3A 6.14.1, APM Vol 2 8.9.1).
            ulong entries = HvStubs.HostVectorTable();
            for (int v = 0; v < Vectors; v++)
            {
                ulong handler = entries + (ulong)(v * 16);
                ulong ist = (ulong)(v == 2 ? NmiIst : v == 8 ? DoubleFaultIst : v == 18 ? MachineCheckIst : 0);
                var gate = (ulong*)(s_idt + (ulong)(v * 16));
                gate[0] = (handler & 0xFFFF) | ((ulong)CodeSelector << 16) | (ist << 32) | (0x8EUL << 40) | (((handler >> 16) & 0xFFFF) << 48);
                gate[1] = handler >> 32;
            }

            for (uint i = 0; i < cpuCount; i++)
            {
                // Each stack has a guard page below it, absent from the host map: an overflow faults (#PF, and
                // as the CPU cannot push the #PF frame there either, #DF on its own IST stack) instead of
                // overwriting whatever lies below. The #PF path uses no IST (it must not be reentered on one).
                ulong page = Hv.AllocatePages(1);
                ulong stack = Hv.AllocatePages(GuardPages + StackPages);
                ulong ist = Hv.AllocatePages(3 * (GuardPages + IstPages));
                if (page == 0 || stack == 0 || ist == 0)
                {
                    Hv.Log.Error("host environment: out of hypervisor memory");
                    return false;
                }
                var cpu = (HostCpu*)page;
                cpu->Index = i;
                cpu->StackGuard = stack;
                cpu->StackBottom = stack + (GuardPages * 4096);
                cpu->StackTop = cpu->StackBottom + (StackPages * 4096);
                if (!Unmap(stack)) return false;
                for (int s = 0; s < 3; s++)
                {
                    ulong guard = ist + ((ulong)s * (GuardPages + IstPages) * 4096);
                    cpu->IstGuard[s] = guard;
                    if (!Unmap(guard)) return false;
                    // The IST pointer is the top of the stack above the guard, 16 bytes below its end.
                    cpu->Tss.Ist[s] = guard + ((GuardPages + IstPages) * 4096) - 16;
                }
                cpu->Gdt[0] = 0;
                cpu->Gdt[1] = 0x00AF_9A00_0000_FFFF;   // 64-bit code: L, P, DPL 0, execute/read
                cpu->Gdt[2] = 0x00CF_9200_0000_FFFF;   // data: P, DPL 0, read/write, 4 GiB
                ulong tss = (ulong)&cpu->Tss;
                ulong limit = (ulong)sizeof(HostTss) - 1;
                // 16-byte available 64-bit TSS descriptor (type 9, P) (SDM Vol 3A 8.2.3).
                cpu->Gdt[3] = (limit & 0xFFFF) | ((tss & 0xFF_FFFF) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xFF) << 56);
                cpu->Gdt[4] = tss >> 32;
                cpu->Tss.IoMapBase = (ushort)sizeof(HostTss);
                cpu->Tss.Rsp0 = cpu->StackTop;
                s_cpus[i] = cpu;
            }
            return true;
        }

        /// <summary>Takes a guard page out of the host map (it stays hidden from the guest with the whole reservation).</summary>
        private static bool Unmap(ulong guard)
        {
            var pages = Hv.Pages;
            if (s_map.Protect(ref pages, guard, GuardPages * 4096)) return true;
            Hv.Log.Error("host environment: out of hypervisor memory (guard pages)");
            return false;
        }

        /// <summary>
        /// Which stack's guard page <paramref name="address"/> lies in: 0 none, 1 the host stack, 2-4 the NMI,
        /// #DF and #MC IST stacks; <paramref name="owner"/> is the CPU.
        /// </summary>
        public static int GuardPageAt(ulong address, out uint owner)
        {
            ulong page = address & ~0xFFFUL;
            for (uint i = 0; i < s_count; i++)
            {
                owner = i;
                HostCpu* cpu = s_cpus[i];
                if (cpu == null) continue;
                if (page == cpu->StackGuard) return 1;
                for (int s = 0; s < 3; s++)
                {
                    if (page == cpu->IstGuard[s]) return 2 + s;
                }
            }
            owner = 0;
            return 0;
        }

        /// <summary>
        /// Loads this CPU's host GDT, segments, TR, the IDT and the host CR3. Interrupts must be off; the
        /// firmware's state must already be captured (it is gone from the CPU afterwards).
        /// </summary>
        public static void Enter(uint index)
        {
            HostCpu* cpu = s_cpus[index];
            byte* descriptor = stackalloc byte[10];
            *(ushort*)descriptor = GdtLimit;
            *(ulong*)(descriptor + 2) = (ulong)cpu->Gdt;
            Vigil.Platform.Cpu.LoadGdtr(descriptor);
            HvStubs.HostLoadSegments(CodeSelector, DataSelector);
            cpu->Gdt[3] &= ~(0x2UL << 40);   // LTR needs an available (not busy) TSS descriptor
            Vigil.Platform.Cpu.LoadTr(TssSelector);
            *(ushort*)descriptor = IdtLimit;
            *(ulong*)(descriptor + 2) = s_idt;
            Vigil.Platform.Cpu.LoadIdtr(descriptor);
            Vigil.Platform.Cpu.WriteCr3(s_map.Root);
        }

        /// <summary>The host CPU whose GDT is loaded (from SGDT): works in any host context, NMIs included.</summary>
        public static HostCpu* Current()
        {
            byte* descriptor = stackalloc byte[10];
            Vigil.Platform.Cpu.StoreGdtr(descriptor);
            ulong gdt = *(ulong*)(descriptor + 2);
            for (uint i = 0; i < s_count; i++)
            {
                if ((ulong)s_cpus[i]->Gdt == gdt) return s_cpus[i];
            }
            return null;
        }
    }
}
