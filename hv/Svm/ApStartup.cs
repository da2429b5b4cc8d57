// SVM host, GIF=0: how the OS (or the firmware) starts an AP that already runs as a guest. AMD has
// no wait-for-SIPI state, and an INIT that reaches a CPU in guest mode either exits (INIT intercept)
// or resets it out of SVM; QEMU even resets the host after an intercepted INIT, since it keeps the
// INIT pending and GIF does not hold it there. So the sender's ICR write is caught (x2APIC MSR 0x830
// through the MSR permission map, xAPIC ICR through ApicTrap) and INIT/start-up IPIs addressed to
// virtualized CPUs are not sent at all: the target is marked, and the target, parked in the host
// (HltHandler for the firmware's CLI;HLT loop, InitHandler for an INIT that got through), resumes in
// real mode at the start-up vector, as a start-up IPI would start it (SDM Vol 3A 10.4.4.1 / 8.4.4).
// No logging on this path: it is timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class ApStartup
    {
        private const uint DeliveryModeMask = 7u << 8;
        private const uint DeliveryInit = 5u << 8;
        private const uint DeliveryStartup = 6u << 8;
        private const uint LogicalDestination = 1u << 11;
        private const uint ShorthandMask = 3u << 18;
        private const uint ShorthandNone = 0;
        private const uint ShorthandAllExcludingSelf = 3u << 18;

        /// <summary>
        /// An ICR write by <paramref name="sender"/> (low dword, destination APIC ID). True when it was an INIT or
        /// start-up IPI for virtualized CPUs only and was handled here (the caller must not send it).
        /// </summary>
        public static bool OnIcrWrite(SvmCpu* sender, uint low, uint destination, bool x2Apic)
        {
            uint mode = low & DeliveryModeMask;
            if (mode != DeliveryInit && mode != DeliveryStartup) return false;
            uint shorthand = low & ShorthandMask;
            bool handled = false;
            if (shorthand == ShorthandAllExcludingSelf)
            {
                for (uint i = 0; i < SvmBackEnd.CpuCount; i++)
                {
                    SvmCpu* target = SvmBackEnd.Cpu(i);
                    if (target == sender || target->Launched == 0) continue;
                    Deliver(target, mode, low);
                    handled = true;
                }
                return handled;
            }
            if (shorthand != ShorthandNone || (low & LogicalDestination) != 0) return false;
            for (uint i = 0; i < SvmBackEnd.CpuCount; i++)
            {
                SvmCpu* target = SvmBackEnd.Cpu(i);
                if (target->Launched == 0 || target->ApicId != destination) continue;
                Deliver(target, mode, low);
                return true;
            }
            return false;
        }

        private static void Deliver(SvmCpu* target, uint mode, uint low)
        {
            if (mode == DeliveryInit)
            {
                // INIT level de-assert (level 0, level-triggered) changes nothing (SDM Vol 3A 10.6.1).
                if ((low & (1u << 14)) == 0 && (low & (1u << 15)) != 0) return;
                target->State = (uint)ApState.WaitForSipi;
                return;
            }
            if (target->State == (uint)ApState.WaitForSipi)
            {
                target->SipiVector = low & 0xFF;
                target->State = (uint)ApState.SipiPending;   // the second SIPI of the pair finds it pending and is dropped
            }
        }

        /// <summary>Parks this CPU in the host until a start-up IPI for it arrives, then starts the guest there.</summary>
        public static ExitAction WaitForStartup(SvmCpu* cpu, ref GuestRegisters regs)
        {
            while (cpu->State != (uint)ApState.SipiPending) Vigil.Platform.Cpu.Pause();
            StartAt(cpu, ref regs, cpu->SipiVector);
            cpu->State = (uint)ApState.Running;
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
