// SVM host: the SVM half of the AP start-up protocol (hv/Core/ApStartup): an AP in the INIT state (its
// INIT was caught at the sender, which then raised an NMI to get it out of the guest: hv/Host/ApKick;
// or a real INIT exit) waits in the host for its start-up IPI, then resumes in real mode at the vector.
// The wait has no bound (a CPU the OS took offline waits until the OS brings it back), so it runs with
// GIF set (NMIs, SMIs and machine checks are taken meanwhile, APM Vol 2 15.17; the host's RFLAGS.IF
// stays clear) and keeps acknowledging nested-map changes. The sender's side (the ICR write caught
// through the MSR permission map or the xAPIC page) is vendor-neutral.
// No logging on this path: it is timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmApStartup
    {
        /// <summary>Parks this CPU in the host until a start-up IPI for it arrives, then starts the guest there.</summary>
        public static ExitAction WaitForStartup(SvmCpu* cpu, ref GuestRegisters regs)
        {
            uint vector;
            Native.HvStubs.Stgi();
            while (!ApStartup.TryStart(cpu->Index, out vector))
            {
                SvmNestedMapChanges.Acknowledge(cpu->Index);
                Vigil.Platform.Cpu.Pause();
            }
            Native.HvStubs.Clgi();
            StartAt(cpu, ref regs, vector);
            LogRings.Write(cpu->Index, LogEvent.ApStarted, vector, (ulong)vector << 12);
            return ExitAction.Resume;
        }

        /// <summary>The state after INIT and a start-up IPI with <paramref name="vector"/>: real mode at vector:0000 (SDM Vol 3A Table 9-1).</summary>
        public static void StartAt(SvmCpu* cpu, ref GuestRegisters regs, uint vector)
        {
            Vmcb* vmcb = cpu->Vmcb;
            ulong svme = SvmBackEnd.EferSvme;
            RealModeSegment(&vmcb->Cs, (ushort)(vector << 8), SegmentAttributes.RealModeCode);
            RealModeSegment(&vmcb->Ds, 0, SegmentAttributes.RealModeData);
            RealModeSegment(&vmcb->Es, 0, SegmentAttributes.RealModeData);
            RealModeSegment(&vmcb->Ss, 0, SegmentAttributes.RealModeData);
            RealModeSegment(&vmcb->Fs, 0, SegmentAttributes.RealModeData);
            RealModeSegment(&vmcb->Gs, 0, SegmentAttributes.RealModeData);
            RealModeSegment(&vmcb->Ldtr, 0, 0x82);   // LDT, present
            RealModeSegment(&vmcb->Tr, 0, 0x8B);     // busy 32-bit TSS, present
            vmcb->Gdtr.Base = 0;
            vmcb->Gdtr.Limit = 0xFFFF;
            vmcb->Idtr.Base = 0;
            vmcb->Idtr.Limit = 0xFFFF;
            vmcb->Rip = 0;
            vmcb->Rsp = 0;
            vmcb->Rflags = 2;
            vmcb->Cr0 = 0x6000_0010;   // CD, NW, ET
            vmcb->Cr2 = 0;
            vmcb->Cr3 = 0;
            vmcb->Cr4 = 0;
            vmcb->Efer = svme;
            vmcb->Dr7 = 0x400;
            vmcb->Dr6 = 0xFFFF_0FF0;
            vmcb->Cpl = 0;
            vmcb->GuestPat = 0x0007_0406_0007_0406;
            vmcb->KernelGsBase = vmcb->Star = vmcb->Lstar = vmcb->Cstar = vmcb->Sfmask = 0;
            vmcb->SysenterCs = vmcb->SysenterEsp = vmcb->SysenterEip = 0;
            vmcb->EventInjection = 0;
            vmcb->InterruptShadow = 0;
            vmcb->TlbControl = 1;
            SvmNmi.Reset(cpu);
            regs = default;
            uint* r = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(1, 0, r);
            regs.Rdx = r[0];   // EDX = processor signature after INIT
        }

        private static void RealModeSegment(VmcbSegment* s, ushort selector, ushort attributes)
        {
            s->Selector = selector;
            s->Base = (ulong)selector << 4;
            s->Limit = 0xFFFF;
            s->Attributes = attributes;
        }
    }
}
