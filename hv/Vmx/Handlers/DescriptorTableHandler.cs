// VMX root, interrupts off. Descriptor-table exits (reason 46: LGDT, LIDT, SGDT, SIDT; reason 47: LLDT, LTR,
// SLDT, STR), which "descriptor-table exiting" causes while the kernel guard is armed (VmxGuard). The
// VM-exit instruction-information field says which instruction and how its operand is addressed (SDM Vol
// 3C 28.2.5, Tables 28-10 and 28-11): scaling (bits 1:0), reg1 for a register operand of 47 (bits 6:3),
// address size (9:7: 16/32/64 bits), register operand (bit 10, 47 only), operand size (bit 11, 46 only:
// 16/32 bits), segment (17:15), index (21:18, invalid bit 22), base (26:23, invalid bit 27), identity
// (29:28); the displacement is the exit qualification. The linear address is segment base + base + index
// << scale + displacement, truncated to the address size (segment bases count outside 64-bit mode and for
// FS/GS). The emulation is vendor-neutral (hv/Core/Vcpu/DescriptorTableExit: LIDT/LGDT judged by the guard).
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class DescriptorTableHandler
    {
        public static ExitAction Handle(ref VmxVcpu v)
        {
            ref VmxExit e = ref *v.Exit;
            ulong info = e.Read(VmcsField.VmExitInstructionInformation);
            int identity = (int)((info >> 28) & 3);
            bool tableRegisters = e.Reason == VmxExitReason.GdtrIdtrAccess;
            bool registerOperand = !tableRegisters && (info & (1UL << 10)) != 0;
            ulong linear = registerOperand ? 0 : LinearAddress(ref v, info, e.Qualification);
            var memory = new HostPhysicalMemory();
            var cpus = default(VmxNestedMapCpus);
            VcpuAction action;
            if (tableRegisters)
            {
                var which = (DescriptorTableInstruction)identity;   // 0 SGDT, 1 SIDT, 2 LGDT, 3 LIDT
                bool operand16 = (info & (1UL << 11)) == 0;
                action = DescriptorTableExit.Table(ref v, ref memory, ref cpus, which, linear, operand16);
            }
            else
            {
                int register = registerOperand ? (int)((info >> 3) & 0xF) : -1;
                bool taskRegister = (identity & 1) != 0;   // 0 SLDT, 1 STR, 2 LLDT, 3 LTR
                action = identity < 2
                    ? DescriptorTableExit.StoreSelector(ref v, ref memory, taskRegister, register, linear)
                    : DescriptorTableExit.LoadSelector(ref v, ref memory, taskRegister, register, linear);
            }
            return VmxExitDispatcher.From(action);
        }

        private static ulong LinearAddress(ref VmxVcpu v, ulong info, ulong displacement)
        {
            ref VmxExit e = ref *v.Exit;
            int scale = (int)(info & 3);
            int addressSize = (int)((info >> 7) & 7);   // 0: 16-bit, 1: 32-bit, 2: 64-bit
            int segment = (int)((info >> 15) & 7);
            ulong offset = displacement;
            if ((info & (1UL << 22)) == 0) offset += Register(ref v, (int)((info >> 18) & 0xF)) << scale;
            if ((info & (1UL << 27)) == 0) offset += Register(ref v, (int)((info >> 23) & 0xF));
            ulong mask = addressSize == 0 ? 0xFFFFUL : addressSize == 1 ? 0xFFFF_FFFFUL : ulong.MaxValue;
            offset &= mask;
            bool is64 = v.Mode == CpuMode.Bits64;
            // Segment bases: all of them outside 64-bit mode, only FS (4) and GS (5) in it (SDM Vol 3A 3.4.4).
            ulong segmentBase = !is64 || segment is 4 or 5 ? e.Read((VmcsField)((uint)VmcsField.GuestEsBase + ((uint)segment * 2))) : 0;
            ulong linear = segmentBase + offset;
            return is64 ? linear : linear & 0xFFFF_FFFF;
        }

        private static ulong Register(ref VmxVcpu v, int number) => number == 4 ? v.Rsp : v.Registers.Get(number);
    }
}
