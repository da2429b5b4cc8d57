// The virtual machine control block (APM Vol 2 15.5, Appendix B): one 4 KiB page per guest CPU,
// the control area at 0x000 (Table B-1) and the state save area at 0x400 (Table B-2). Offsets are
// the manual's; the host tool compiles this file in and takes the offsets the generated VMRUN loop
// uses from it (never typed twice). Layout tests check every field against the table.
// Compiled three times: into the hypervisor (no runtime), the host tool and the tests.
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Svm
{
    /// <summary>One segment register in the state save area (APM Vol 2 Table B-2): selector, attributes, limit, base.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct VmcbSegment
    {
        public ushort Selector;

        /// <summary>Descriptor bits 47:40 in 7:0 and 55:52 in 11:8 (see <see cref="SegmentAttributes"/>).</summary>
        public ushort Attributes;

        public uint Limit;
        public ulong Base;
    }

    [StructLayout(LayoutKind.Explicit, Size = 4096)]
    public struct Vmcb
    {
        // ---- control area (APM Vol 2 Table B-1) ----

        /// <summary>Bits 15:0 intercept reads of CR0-15, bits 31:16 writes.</summary>
        [FieldOffset(0x000)] public uint InterceptCr;

        [FieldOffset(0x004)] public uint InterceptDr;

        /// <summary>One bit per exception vector.</summary>
        [FieldOffset(0x008)] public uint InterceptExceptions;

        /// <summary>Intercept vector 3 (<see cref="SvmIntercept1"/>).</summary>
        [FieldOffset(0x00C)] public uint InterceptMisc1;

        /// <summary>Intercept vector 4 (<see cref="SvmIntercept2"/>).</summary>
        [FieldOffset(0x010)] public uint InterceptMisc2;

        [FieldOffset(0x040)] public ulong IopmBasePa;
        [FieldOffset(0x048)] public ulong MsrpmBasePa;
        [FieldOffset(0x050)] public ulong TscOffset;

        /// <summary>Guest ASID; 0 is the host's and makes VMRUN fail (APM Vol 2 15.16).</summary>
        [FieldOffset(0x058)] public uint GuestAsid;

        /// <summary>0 = nothing, 1 = flush the whole TLB on VMRUN, 3 = this ASID, 7 = this ASID's non-global entries.</summary>
        [FieldOffset(0x05C)] public byte TlbControl;

        [FieldOffset(0x060)] public ulong InterruptControl;

        /// <summary>Bit 0: the guest is in an interrupt shadow (MOV SS, STI).</summary>
        [FieldOffset(0x068)] public ulong InterruptShadow;

        [FieldOffset(0x070)] public ulong ExitCode;
        [FieldOffset(0x078)] public ulong ExitInfo1;
        [FieldOffset(0x080)] public ulong ExitInfo2;
        [FieldOffset(0x088)] public ulong ExitIntInfo;

        /// <summary>Bit 0: nested paging (APM Vol 2 15.25.3).</summary>
        [FieldOffset(0x090)] public ulong NestedControl;

        /// <summary>Event injection (APM Vol 2 15.20): vector 7:0, type 10:8, EV 11, V 31, error code 63:32.</summary>
        [FieldOffset(0x0A8)] public ulong EventInjection;

        /// <summary>Nested page table root (the PML4's physical address).</summary>
        [FieldOffset(0x0B0)] public ulong NestedCr3;

        [FieldOffset(0x0B8)] public ulong LbrVirtualization;
        [FieldOffset(0x0C0)] public uint CleanBits;

        /// <summary>Next sequential RIP: only with NRIP save (CPUID 8000000A EDX bit 3), which QEMU lacks.</summary>
        [FieldOffset(0x0C8)] public ulong NextRip;

        /// <summary>Bytes fetched with decode assists (CPUID 8000000A EDX bit 7), which QEMU lacks.</summary>
        [FieldOffset(0x0D0)] public byte InstructionBytesFetched;

        // ---- state save area (APM Vol 2 Table B-2, at 0x400) ----

        [FieldOffset(0x400)] public VmcbSegment Es;
        [FieldOffset(0x410)] public VmcbSegment Cs;
        [FieldOffset(0x420)] public VmcbSegment Ss;
        [FieldOffset(0x430)] public VmcbSegment Ds;
        [FieldOffset(0x440)] public VmcbSegment Fs;
        [FieldOffset(0x450)] public VmcbSegment Gs;
        [FieldOffset(0x460)] public VmcbSegment Gdtr;
        [FieldOffset(0x470)] public VmcbSegment Ldtr;
        [FieldOffset(0x480)] public VmcbSegment Idtr;
        [FieldOffset(0x490)] public VmcbSegment Tr;
        [FieldOffset(0x4CB)] public byte Cpl;
        [FieldOffset(0x4D0)] public ulong Efer;
        [FieldOffset(0x548)] public ulong Cr4;
        [FieldOffset(0x550)] public ulong Cr3;
        [FieldOffset(0x558)] public ulong Cr0;
        [FieldOffset(0x560)] public ulong Dr7;
        [FieldOffset(0x568)] public ulong Dr6;
        [FieldOffset(0x570)] public ulong Rflags;
        [FieldOffset(0x578)] public ulong Rip;
        [FieldOffset(0x5D8)] public ulong Rsp;
        [FieldOffset(0x5F8)] public ulong Rax;
        [FieldOffset(0x600)] public ulong Star;
        [FieldOffset(0x608)] public ulong Lstar;
        [FieldOffset(0x610)] public ulong Cstar;
        [FieldOffset(0x618)] public ulong Sfmask;
        [FieldOffset(0x620)] public ulong KernelGsBase;
        [FieldOffset(0x628)] public ulong SysenterCs;
        [FieldOffset(0x630)] public ulong SysenterEsp;
        [FieldOffset(0x638)] public ulong SysenterEip;
        [FieldOffset(0x640)] public ulong Cr2;
        [FieldOffset(0x668)] public ulong GuestPat;
        [FieldOffset(0x670)] public ulong DebugControl;
    }

    /// <summary>Intercept vector 3, VMCB offset 0x00C (APM Vol 2 Table B-1).</summary>
    [System.Flags]
    public enum SvmIntercept1 : uint
    {
        Intr = 1u << 0,
        Nmi = 1u << 1,
        Smi = 1u << 2,
        Init = 1u << 3,
        Vintr = 1u << 4,
        IdtrWrite = 1u << 10,
        GdtrWrite = 1u << 11,
        Cpuid = 1u << 18,
        Iret = 1u << 20,
        Intn = 1u << 21,
        Invd = 1u << 22,
        Hlt = 1u << 24,
        IoioProt = 1u << 27,
        MsrProt = 1u << 28,
        TaskSwitch = 1u << 29,
        Shutdown = 1u << 31,
    }

    /// <summary>Intercept vector 4, VMCB offset 0x010 (APM Vol 2 Table B-1).</summary>
    [System.Flags]
    public enum SvmIntercept2 : uint
    {
        Vmrun = 1u << 0,
        Vmmcall = 1u << 1,
        Vmload = 1u << 2,
        Vmsave = 1u << 3,
        Stgi = 1u << 4,
        Clgi = 1u << 5,
        Skinit = 1u << 6,
        Wbinvd = 1u << 9,
        Monitor = 1u << 10,
        Mwait = 1u << 11,
        Xsetbv = 1u << 13,
    }

    /// <summary>
    /// The host's stack frame while the guest runs: the generated VMRUN loop keeps the guest's registers
    /// here and passes the frame to the C# exit handler. Its top sits at the top of the host stack.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SvmHostFrame
    {
        public Vigil.Hypervisor.Core.GuestRegisters Guest;

        /// <summary>The CPU's <c>SvmCpu*</c>, handed to the exit handler.</summary>
        public ulong Cpu;

        /// <summary>Physical address of the guest VMCB (VMLOAD/VMRUN/VMSAVE operand).</summary>
        public ulong GuestVmcbPa;

        /// <summary>Physical address of the VMCB holding the host's FS/GS/TR/LDTR state (VMLOAD after each exit).</summary>
        public ulong HostVmcbPa;

        public ulong Padding;
    }
}
