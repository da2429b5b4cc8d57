// SVM host, GIF=0: the xAPIC page (APIC_BASE, normally 0xFEE00000) is not present in the nested page
// tables, so the guest's accesses to it exit as nested page faults and are emulated here against the
// real local APIC (the host maps it; the APIC is per CPU and the handler runs on the guest's CPU).
// The point is the ICR: INIT and start-up IPIs to virtualized APs are caught (ApStartup). Only the
// MOV forms compilers emit for MMIO are decoded (89 /r store, 8B /r load, C7 /0 store immediate);
// anything else is logged and the guest stopped on this CPU (fail safe, never a wrong emulation).
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class ApicTrap
    {
        private const uint IcrLow = 0x300;
        private const uint IcrHigh = 0x310;

        private static ulong s_apicBase;

        public static ulong Base => s_apicBase;

        public static bool Initialize(ref NestedMap<NptFormat> npt, ulong apicBaseMsr)
        {
            if ((apicBaseMsr & (1UL << 11)) == 0) return true;   // APIC globally disabled: nothing to trap
            s_apicBase = apicBaseMsr & 0x000F_FFFF_FFFF_F000;
            var pages = Hv.Pages;
            return npt.Protect(ref pages, s_apicBase, 0x1000);
        }

        public static bool Contains(ulong gpa) => s_apicBase != 0 && (gpa & ~0xFFFUL) == s_apicBase;

        /// <summary>Emulates one access; false when the instruction is not one this decoder knows.</summary>
        public static bool Emulate(SvmCpu* cpu, ref GuestRegisters regs, ulong gpa, out int length)
        {
            length = 0;
            byte* code = stackalloc byte[15];
            if (!FetchCode(cpu, code)) return false;
            if (!MmioInstruction.Decode(new System.ReadOnlySpan<byte>(code, 15), out MmioInstruction insn)) return false;
            length = insn.Length;
            uint offset = (uint)(gpa & 0xFFF);
            var reg = (uint*)(s_apicBase + offset);
            if (insn.IsStore)
            {
                uint value = insn.HasImmediate ? insn.Immediate : (uint)ReadRegister(cpu, ref regs, insn.Register);
                if (offset == IcrLow)
                {
                    uint destination = *(uint*)(s_apicBase + IcrHigh) >> 24;
                    if (ApStartup.OnIcrWrite(cpu, value, destination, x2Apic: false)) return true;
                }
                *reg = value;
            }
            else
            {
                WriteRegister(cpu, ref regs, insn.Register, *reg);   // a 32-bit load zero-extends
            }
            return true;
        }

        private static ulong ReadRegister(SvmCpu* cpu, ref GuestRegisters regs, int number)
            => number == 4 ? cpu->Vmcb->Rsp : number == 0 ? regs.Rax : regs.Get(number);

        private static void WriteRegister(SvmCpu* cpu, ref GuestRegisters regs, int number, uint value)
        {
            if (number == 4) cpu->Vmcb->Rsp = value;
            else regs.Set(number, value);
        }

        /// <summary>15 bytes at the guest's CS:RIP, through its page tables when it pages (long mode only).</summary>
        private static bool FetchCode(SvmCpu* cpu, byte* code)
        {
            Vmcb* vmcb = cpu->Vmcb;
            var paging = new GuestPaging(vmcb->Cr0, vmcb->Cr3, vmcb->Cr4, vmcb->Efer, vmcb->Cpl);
            var memory = new HostPhysicalMemory();
            ulong rip = vmcb->Cs.Base + vmcb->Rip;
            for (int i = 0; i < 15; i++)
            {
                ulong pa = rip + (ulong)i;
                if ((vmcb->Cr0 & (1UL << 31)) != 0)
                {
                    if (GuestMemory.Translate(ref memory, paging, rip + (ulong)i, write: false, out pa) != WalkResult.Ok) return i > 0 && Fill(code, i);
                }
                if (pa >= SvmBackEnd.ReservedBase && pa < SvmBackEnd.ReservedBase + SvmBackEnd.ReservedSize) return false;
                code[i] = *(byte*)pa;
            }
            return true;
        }

        private static bool Fill(byte* code, int from)
        {
            for (int i = from; i < 15; i++) code[i] = 0;
            return true;
        }
    }
}
