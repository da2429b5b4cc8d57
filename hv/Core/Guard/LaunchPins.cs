// CPU-state rules from the OS's first instruction (issue 11, item 4: "CR/MSR rules in force from the OS's
// first instruction"), before any agent called Protect. What that means here, on both back ends:
//   - the moment: the first VM entry into kernel code — long-mode paging, CPL 0, an upper-half RIP — after
//     launch. UEFI firmware runs identity-mapped in the lower half and toggles CR0.WP itself while it edits
//     its page tables (EDK2's CpuDxe), and so may the OS loader's firmware calls before ExitBootServices; a
//     kernel (Linux, Windows) runs in the upper half. Pins from launch would break the firmware; pins from the
//     kernel's first upper-half instruction do not;
//   - CR0.WP, CR4.SMEP/SMAP/UMIP, EFER.NXE/SCE are pinned once the OS sets them: a write that CLEARS one
//     that is set is an attempt judged by the policy in force (GuardRegisters, the same rule as after
//     Protect: a CPU coming online passes through real mode with them clear and sets them again);
//   - the syscall MSRs (LSTAR, STAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP): the first value the OS writes to
//     each becomes the expected one (Linux's syscall_init on the boot CPU); later writes of that value
//     (every CPU's bring-up) are ExpectedValue, others are attempts (WRMSR LSTAR by a rootkit module);
//   - NOT before Protect: LIDT/LGDT (Linux loads several IDTs and GDTs while it boots: no single value to
//     learn), the guarded memory (kernel text, rodata, sys_call_table, the IDT page: the kernel writes them
//     until mark_rodata_ro). The hypervisor's own memory is guarded from launch, as always.
// Protect then takes its pins from the calling CPU, as it always did (they replace these).
// Root mode, before an entry or in a register exit; no allocation. Compiled twice.
using System.Runtime.CompilerServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core.Guard
{
    public static class LaunchPins
    {
        public const ulong Cr0Bits = 1UL << 16;                                           // WP (SDM Vol 3A 2.5)
        public const ulong Cr4Bits = (1UL << 11) | (1UL << 20) | (1UL << 21);             // UMIP, SMEP, SMAP
        public const ulong EferBits = GuardMsrs.EferNxe | GuardMsrs.EferSce;

        private static volatile bool s_armed;
        private static uint s_learned;   // bit per syscall MSR (GuardMsrs.Guarded index)

        /// <summary>Whether the pins are armed (the kernel ran); they stay until reset.</summary>
        public static bool Armed => s_armed;

        /// <summary>
        /// Before an entry: arms the pins the first time a CPU is about to run kernel code (long-mode paging, CPL 0, an
        /// upper-half RIP) while Protect has not run yet. Every CPU then re-arms its interception (a new generation).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Observe<T>(ref T vcpu) where T : struct, IVcpu
        {
            if (!s_armed && !GuardState.Protected) ObserveUnarmed(ref vcpu);   // every entry until the kernel runs
        }

        private static void ObserveUnarmed<T>(ref T vcpu) where T : struct, IVcpu
        {
            if ((vcpu.Efer & GuardMsrs.EferLma) == 0 || (vcpu.Cr0 & (1UL << 31)) == 0 || vcpu.Cpl != 0) return;
            ulong rip = vcpu.Rip;
            if ((long)rip >= 0) return;
            GuardPins pins = default;
            pins.Cr0Set = Cr0Bits;
            pins.Cr4Set = Cr4Bits;
            pins.EferSet = EferBits;
            GuardState.Pins = pins;
            s_learned = 0;
            s_armed = true;
            GuardState.Publish();
            LogRings.Write(vcpu.Index, LogEvent.LaunchPinsArmed, rip, vcpu.Cr3);
        }

        /// <summary>
        /// A write of <paramref name="value"/> to syscall MSR <paramref name="msr"/> before Protect: true when it is the first
        /// one since the pins were armed (it becomes the expected value). The caller holds the guard's attempt lock.
        /// </summary>
        public static bool Learn(uint msr, ulong value)
        {
            if (!s_armed || GuardState.Protected) return false;
            int index = -1;
            for (int i = 0; i < GuardMsrs.GuardedCount; i++)
            {
                if (GuardMsrs.Guarded(i) == msr) index = i;
            }
            if (index < 0 || (s_learned & (1u << index)) != 0) return false;
            s_learned |= 1u << index;
            ref GuardPins p = ref GuardState.Pins;
            switch (msr)
            {
                case GuardMsrs.Star: p.Star = value; break;
                case GuardMsrs.Lstar: p.Lstar = value; break;
                case GuardMsrs.Cstar: p.Cstar = value; break;
                case GuardMsrs.Sfmask: p.Sfmask = value; break;
                case GuardMsrs.SysenterCs: p.SysenterCs = value; break;
                case GuardMsrs.SysenterEsp: p.SysenterEsp = value; break;
                case GuardMsrs.SysenterEip: p.SysenterEip = value; break;
                default: return false;
            }
            return true;
        }

        /// <summary>The syscall MSRs whose value was learned (bit per GuardMsrs.Guarded index).</summary>
        public static uint Learned => s_learned;

        /// <summary>Back to launch state (tests).</summary>
        public static void Reset()
        {
            s_armed = false;
            s_learned = 0;
        }
    }
}
