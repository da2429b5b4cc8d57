// MOV to CR0/CR3/CR4, CLTS and LMSW that exit, validated exactly as the hardware validates them (SDM Vol 2B
// MOV—Move to/from Control Registers, Vol 3A 2.5; APM Vol 2 3.1) before anything is loaded, so a bad value
// gets the guest the #GP the CPU would raise and never reaches the real register (where VM entry would fail
// or the value would be silently dropped while the read shadow shows it set).
// Used by the VMX back end (the guest/host masks make writes of host-owned bits exit, SDM Vol 3C 25.6.6)
// and, while the guard is armed, by both: VMX adds the pinned bits to the masks, SVM intercepts CR0/CR4
// writes (decoding MOV CR itself: QEMU has no decode assists, ControlRegisterDecoder). A valid write that
// clears a pinned bit is judged (hv/Core/Guard/GuardRegisters): Block loads it with the pinned bits kept
// set and steps over it, BlockAndFault raises #GP(0), Allow/Audit load it as written.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class ControlRegisterExit
    {
        public const ulong Cr0Pe = 1UL << 0, Cr0Ts = 1UL << 3, Cr0Et = 1UL << 4, Cr0Wp = 1UL << 16, Cr0Nw = 1UL << 29, Cr0Cd = 1UL << 30, Cr0Pg = 1UL << 31;

        /// <summary>CR0 bits that exist: PE MP EM TS ET NE, WP, AM, NW CD PG (SDM Vol 3A 2.5).</summary>
        public const ulong Cr0Defined = 0x3F | (1UL << 16) | (1UL << 18) | (7UL << 29);

        public const ulong Cr4Pae = 1UL << 5, Cr4La57 = 1UL << 12, Cr4Pcide = 1UL << 17, Cr4Cet = 1UL << 23;
        public const ulong EferLme = 1UL << 8, EferLma = 1UL << 10;

        public static VcpuAction WriteCr0<T, TCpus>(ref T vcpu, ref TCpus cpus, ulong value)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            if (!ValidCr0(vcpu.Cr0, value, vcpu.Cr4, vcpu.Efer, vcpu.Mode)) return VcpuState.GeneralProtection(ref vcpu);
            // Reserved bits 31:0 are ignored and ET is fixed to 1 on every CPU since the i486 (SDM Vol 3A 2.5).
            value = (value & Cr0Defined) | Cr0Et;
            switch (GuardRegisters.ControlRegister(ref vcpu, ref cpus, 0, value, out ulong keep))
            {
                case PinOutcome.Retry: return VcpuAction.Resume;
                case PinOutcome.Fault: return VcpuState.GeneralProtection(ref vcpu);
                case PinOutcome.Block: value |= keep; break;
            }
            vcpu.LoadCr0(value);
            return VcpuAction.Skip;
        }

        /// <summary>The #GP(0) conditions of MOV to CR0 (SDM Vol 2B MOV CR, Vol 3A 2.5, 10.8.5; APM Vol 2 3.1.1).</summary>
        public static bool ValidCr0(ulong old, ulong value, ulong cr4, ulong efer, CpuMode mode)
        {
            if ((value >> 32) != 0) return false;                                       // bits 63:32 reserved
            if ((value & Cr0Pg) != 0 && (value & Cr0Pe) == 0) return false;             // paging without protection
            if ((value & Cr0Nw) != 0 && (value & Cr0Cd) == 0) return false;             // not-write-through without cache disable
            if ((value & Cr0Wp) == 0 && (cr4 & Cr4Cet) != 0) return false;              // CET needs WP
            bool enablesPaging = (value & Cr0Pg) != 0 && (old & Cr0Pg) == 0;
            if (enablesPaging && (efer & EferLme) != 0 && (cr4 & Cr4Pae) == 0) return false;   // IA-32e without PAE
            if ((value & Cr0Pg) == 0 && (old & Cr0Pg) != 0)
            {
                if (mode == CpuMode.Bits64) return false;                                // paging off in 64-bit mode
                if ((cr4 & Cr4Pcide) != 0) return false;                                 // paging off with PCIDs on
            }
            return true;
        }

        public static VcpuAction WriteCr4<T, TCpus>(ref T vcpu, ref TCpus cpus, ulong value)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            if (!ValidCr4(vcpu.Cr4, value, vcpu.Cr4Supported, vcpu.Cr0, vcpu.Cr3, vcpu.Efer)) return VcpuState.GeneralProtection(ref vcpu);
            switch (GuardRegisters.ControlRegister(ref vcpu, ref cpus, 4, value, out ulong keep))
            {
                case PinOutcome.Retry: return VcpuAction.Resume;
                case PinOutcome.Fault: return VcpuState.GeneralProtection(ref vcpu);
                case PinOutcome.Block: value |= keep; break;
            }
            vcpu.LoadCr4(value);
            return VcpuAction.Skip;
        }

        /// <summary>The #GP(0) conditions of MOV to CR4 (SDM Vol 2B MOV CR, Vol 3A 2.5, 4.10.1; APM Vol 2 3.1.3).</summary>
        public static bool ValidCr4(ulong old, ulong value, ulong supported, ulong cr0, ulong cr3, ulong efer)
        {
            if ((value & ~supported) != 0) return false;                                 // reserved or not offered to the guest
            bool longMode = (efer & EferLma) != 0;
            if (longMode && (value & Cr4Pae) == 0) return false;                         // PAE cleared in IA-32e mode
            if (longMode && ((value ^ old) & Cr4La57) != 0) return false;               // LA57 changed in IA-32e mode
            if ((value & Cr4Pcide) != 0 && (old & Cr4Pcide) == 0 && (!longMode || (cr3 & 0xFFF) != 0)) return false;
            if ((value & Cr4Cet) != 0 && (cr0 & Cr0Wp) == 0) return false;               // CET needs WP
            return true;
        }

        /// <summary>
        /// CR4 bits a CPU supports, from CPUID (SDM Vol 3A 2.5, APM Vol 2 3.1.3): VME..OSXMMEXCPT
        /// always, UMIP (7.0:ECX[2]), LA57 (7.0:ECX[16]), FSGSBASE (7.0:EBX[0]), PCIDE (1:ECX[17]), OSXSAVE (1:ECX[26]),
        /// SMEP (7.0:EBX[7]), SMAP (7.0:EBX[20]), PKE (7.0:ECX[3]), CET (7.0:ECX[7]). For SVM, whose CR4 writes the guard
        /// intercepts: a reserved bit loaded into the VMCB would fail VMRUN, so the guest gets the #GP the CPU would give.
        /// </summary>
        public static ulong Cr4FromCpuid(uint leaf1Ecx, uint leaf7Ebx, uint leaf7Ecx)
        {
            ulong bits = 0x7FF;
            if ((leaf7Ecx & (1u << 2)) != 0) bits |= 1UL << 11;
            if ((leaf7Ecx & (1u << 16)) != 0) bits |= Cr4La57;
            if ((leaf7Ebx & 1u) != 0) bits |= 1UL << 16;
            if ((leaf1Ecx & (1u << 17)) != 0) bits |= Cr4Pcide;
            if ((leaf1Ecx & (1u << 26)) != 0) bits |= 1UL << 18;
            if ((leaf7Ebx & (1u << 7)) != 0) bits |= 1UL << 20;
            if ((leaf7Ebx & (1u << 20)) != 0) bits |= 1UL << 21;
            if ((leaf7Ecx & (1u << 3)) != 0) bits |= 1UL << 22;
            if ((leaf7Ecx & (1u << 7)) != 0) bits |= Cr4Cet;
            return bits;
        }

        /// <summary>MOV to CR3: bit 63 (no flush with PCIDs) is not part of CR3; address bits above MAXPHYADDR are reserved.</summary>
        public static VcpuAction WriteCr3<T>(ref T vcpu, ulong value, ulong reservedMask) where T : struct, IVcpu
        {
            bool pcide = (vcpu.Cr4 & Cr4Pcide) != 0;
            ulong cr3 = pcide ? value & ~(1UL << 63) : value;
            if ((cr3 & reservedMask) != 0) return VcpuState.GeneralProtection(ref vcpu);
            vcpu.LoadCr3(cr3);
            return VcpuAction.Skip;
        }

        /// <summary>CLTS: clears CR0.TS.</summary>
        public static VcpuAction Clts<T, TCpus>(ref T vcpu, ref TCpus cpus)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
            => WriteCr0(ref vcpu, ref cpus, vcpu.Cr0 & ~Cr0Ts);

        /// <summary>LMSW: loads CR0 bits 3:0 from <paramref name="source"/>; it can set PE but never clear it (SDM Vol 2A LMSW).</summary>
        public static VcpuAction Lmsw<T, TCpus>(ref T vcpu, ref TCpus cpus, ulong source)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            ulong old = vcpu.Cr0;
            return WriteCr0(ref vcpu, ref cpus, (old & ~0xFUL) | (source & 0xF) | (old & Cr0Pe));
        }
    }
}
