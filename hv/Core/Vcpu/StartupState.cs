// The state an AP resumes in after INIT and a start-up IPI with vector V (SDM Vol 3A 9.1.1 Table 9-1,
// 9.4.4.1; APM Vol 2 14.1.3 Table 14-1): real mode at V:0000 (CS selector V << 8, base V << 12), every
// other segment 0 with limit 0xFFFF, CR0 = CD|NW|ET, CR3 = CR4 = EFER = 0, RFLAGS = 2, DR7 = 0x400,
// EDX = the processor signature. The OS starts the AP as a fresh CPU, so what the old guest state left
// in registers the hypervisor shares with it is put back to the power-up values too: XCR0 = 1 (x87 only,
// SDM Vol 1 13.3), IA32_XSS = 0, IA32_PAT = 0x0007040600070406 (SDM Vol 3A 12.12.4). And nothing is pending:
// no event to inject or deliver again, no blocking, no NMI queued for the old guest state (a stale one
// would hit the OS's AP before it has an IDT). Written once for both back ends (hv/Core/Apic/ApStartup says
// how the AP gets here). No logging: timing-sensitive.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class StartupState
    {
        public const ulong ResetCr0 = 0x6000_0010;   // CD, NW, ET
        public const ulong ResetDr7 = 0x400;
        public const ulong ResetXcr0 = 1;

        /// <summary>Access rights (VMX layout) of the real-mode segments: data type 3, code type 0xB, S, P; LDT; busy TSS.</summary>
        public const uint RealModeData = 0x93, RealModeCode = 0x9B, Ldt = 0x82, BusyTss = 0x8B;

        public static void StartAt<T>(ref T vcpu, uint vector) where T : struct, IVcpu
        {
            vcpu.ClearEventState();
            vcpu.LoadResetControlState(ResetCr0, ResetDr7);
            vcpu.LoadXcr0(ResetXcr0);
            vcpu.Pat = X86PageEntry.DefaultPat;
            ushort cs = (ushort)(vector << 8);
            vcpu.LoadSegment(SegmentRegister.Cs, cs, (ulong)cs << 4, 0xFFFF, RealModeCode);
            vcpu.LoadSegment(SegmentRegister.Ds, 0, 0, 0xFFFF, RealModeData);
            vcpu.LoadSegment(SegmentRegister.Es, 0, 0, 0xFFFF, RealModeData);
            vcpu.LoadSegment(SegmentRegister.Ss, 0, 0, 0xFFFF, RealModeData);
            vcpu.LoadSegment(SegmentRegister.Fs, 0, 0, 0xFFFF, RealModeData);
            vcpu.LoadSegment(SegmentRegister.Gs, 0, 0, 0xFFFF, RealModeData);
            vcpu.LoadSegment(SegmentRegister.Ldtr, 0, 0, 0xFFFF, Ldt);
            vcpu.LoadSegment(SegmentRegister.Tr, 0, 0, 0xFFFF, BusyTss);
            vcpu.LoadDescriptorTables(0, 0xFFFF, 0, 0xFFFF);
            vcpu.Rip = 0;
            vcpu.Rsp = 0;
            vcpu.Rflags = 2;
            ref GuestRegisters r = ref vcpu.Registers;
            r.Rax = r.Rbx = r.Rcx = r.Rdx = r.Rsi = r.Rdi = r.Rbp = 0;
            r.R8 = r.R9 = r.R10 = r.R11 = r.R12 = r.R13 = r.R14 = r.R15 = 0;
            vcpu.HostCpuid(1, 0, out CpuidResult id);
            r.Rdx = id.Eax;   // EDX = the processor signature after INIT
            vcpu.FlushGuestTlb();
        }
    }
}
