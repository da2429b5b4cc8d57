// The xAPIC page (IA32_APIC_BASE, normally 0xFEE00000) as both back ends trap it: read-only in the
// nested map (NPT/EPT), so the guest's reads go to the local APIC directly and only its writes exit;
// the back end fetches the instruction's bytes and Emulate performs the write against the real local
// APIC (the host maps it; the APIC is per CPU and the handler runs on the guest's CPU). The point is
// the ICR: INIT and start-up IPIs to virtualized APs are caught (ApStartup). Only the MOV forms
// compilers emit for MMIO are decoded (MmioInstruction); anything else is refused and the back end's
// defined outcome applies (never a wrong emulation). A load is emulated too, for a back end whose
// map lost the read permission.
// Root mode, any CPU, interrupts off. Compiled twice: into the hypervisor (no runtime) and into the
// tests (with a buffer standing in for the APIC).
namespace Vigil.Hypervisor.Core
{
    public static unsafe class ApicPage
    {
        /// <summary>The EOI register (SDM Vol 3A 10.8.5): written by an interrupt handler when it is done.</summary>
        public const uint Eoi = 0x0B0;

        public const uint IcrLow = 0x300;
        public const uint IcrHigh = 0x310;

        /// <summary>IA32_APIC_BASE (SDM Vol 3A 10.4.4).</summary>
        public const uint BaseMsr = 0x1B;

        private const ulong GlobalEnable = 1UL << 11;

        /// <summary>The x2APIC ICR (SDM Vol 3A 10.12.9): a 64-bit WRMSR, destination in bits 63:32.</summary>
        public const uint X2ApicIcrMsr = 0x830;

        /// <summary>IA32_APIC_BASE.EXTD: the APIC is in x2APIC mode (SDM Vol 3A 10.12.1).</summary>
        public const ulong X2ApicEnable = 1UL << 10;

        /// <summary>x2APIC ICR bits that are reserved (SDM Vol 3A 10.12.9, Figure 10-28): a WRMSR setting one faults.</summary>
        public const ulong X2ApicIcrReserved = 0x0000_0000_FFF3_3000;

        /// <summary>ICR low fields (SDM Vol 3A 10.6.1, Figure 10-12), shared by everything that reads or writes the ICR.</summary>
        public const uint IcrDeliveryModeMask = 7u << 8;
        public const uint IcrDeliveryNmi = 4u << 8;
        public const uint IcrDeliveryInit = 5u << 8;
        public const uint IcrDeliveryStartup = 6u << 8;
        public const uint IcrLogicalDestination = 1u << 11;
        public const uint IcrDeliveryPending = 1u << 12;
        public const uint IcrLevelAssert = 1u << 14;
        public const uint IcrLevelTriggered = 1u << 15;
        public const uint IcrShorthandMask = 3u << 18;
        public const uint IcrShorthandAllExcludingSelf = 3u << 18;

        private static ulong s_base;

        /// <summary>The trapped page's physical address, 0 when the APIC is disabled (nothing to trap).</summary>
        public static ulong Base => s_base;

        /// <summary>The page to trap, from IA32_APIC_BASE; 0 when the APIC is globally disabled.</summary>
        public static ulong Initialize(ulong apicBaseMsr)
        {
            s_base = (apicBaseMsr & GlobalEnable) == 0 ? 0 : apicBaseMsr & 0x000F_FFFF_FFFF_F000;
            return s_base;
        }

        public static bool Contains(ulong gpa) => s_base != 0 && (gpa & ~0xFFFUL) == s_base;

        /// <summary>
        /// Whether a guest's WRMSR of <paramref name="value"/> to the x2APIC ICR may be carried out in the host: the
        /// APIC is in x2APIC mode (<paramref name="apicBaseMsr"/>) and no reserved bit is set. False: the guest gets #GP,
        /// as the CPU would give it (the host must never fault on the guest's behalf).
        /// </summary>
        public static bool X2ApicIcrWritable(ulong apicBaseMsr, ulong value)
            => (apicBaseMsr & X2ApicEnable) != 0 && (value & X2ApicIcrReserved) == 0;

        /// <summary>
        /// Emulates one access by CPU <paramref name="sender"/> to <paramref name="apic"/> + <paramref name="offset"/>
        /// with the instruction in <paramref name="code"/> (64-bit mode). <paramref name="rsp"/> stands for register 4
        /// (it lives in the VMCS/VMCB). Returns the instruction's length, 0 when it is not one the decoder knows
        /// (nothing was done).
        /// </summary>
        public static int Emulate(byte* apic, uint offset, System.ReadOnlySpan<byte> code, ref GuestRegisters regs, ref ulong rsp, uint sender)
        {
            // The APIC's registers take 32-bit accesses only (SDM Vol 3A 10.4.1); other sizes are refused.
            if (!MmioInstruction.Decode(code, out MmioInstruction insn) || insn.Size != 4) return 0;
            offset &= 0xFFC;   // the APIC's registers are 32-bit, 16-byte aligned; accesses are dword-sized
            var reg = (uint*)(apic + offset);
            if (insn.IsStore)
            {
                uint value = insn.HasImmediate ? (uint)insn.Immediate : (uint)(insn.Register == 4 ? rsp : regs.Get(insn.Register));
                if (offset == IcrLow)
                {
                    uint destination = *(uint*)(apic + IcrHigh) >> 24;
                    if (ApStartup.OnIcrWrite(sender, value, destination)) return insn.Length;
                }
                *reg = value;
            }
            else
            {
                uint value = *reg;   // a 32-bit load zero-extends into the 64-bit register
                if (insn.Register == 4) rsp = value;
                else regs.Set(insn.Register, value);
            }
            return insn.Length;
        }
    }
}
