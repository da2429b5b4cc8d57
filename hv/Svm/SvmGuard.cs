// SVM host, GIF=0, before every VMRUN: this CPU's part of the kernel guard (hv/Core/Guard). When the
// guard's generation or the guest's long-mode paging changed since this CPU last armed (GuardArming),
// the VMCB's intercepts are set for GuardState.Protected:
//   - CR0 and CR4 writes (InterceptCr bits 16 and 20, APM Vol 2 15.9, Table B-1) and LIDT/LGDT (intercept
//     vector 3 bits 10 and 11, IDTR_WRITE/GDTR_WRITE, APM Vol 2 15.10), only while the guest runs with
//     long-mode paging (pins are judged only then; the real-mode and 32-bit steps of a CPU's start-up run
//     without exits); decoded from the guest's bytes without decode assists (hv/Core/Vcpu/SystemInstructionExit);
//   - INT3 (the #BP exception intercept, and INTn, intercept vector 3 bit 21, which is how QEMU's TCG reports
//     INT3) in the same modes: a breakpoint that is no longer in memory is not delivered (hv/Core/Vcpu/BreakpointExit);
//   - the write bits of EFER and the syscall MSRs in the shared MSR permission map (APM Vol 2 15.11): EFER's
//     stays set always (SVME), the others follow Protected. Every CPU writes the same bits (idempotent).
// The VMCB clean bit for intercepts is cleared so VMRUN reloads them (APM Vol 2 15.15.3).
// Before that, on every entry while protected: this CPU's GDT compared with its snapshot at most once per
// GuardDescriptors.CheckInterval (the fixed descriptors are checked, never write-protected).
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmGuard
    {
        private const uint CrWriteIntercepts = (1u << 16) | (1u << 20);   // CR0, CR4 writes
        private const uint LongModeIntercepts = (uint)(SvmIntercept1.IdtrWrite | SvmIntercept1.GdtrWrite | SvmIntercept1.Intn);   // LIDT, LGDT, INTn
        private const uint BreakpointIntercept = 1u << 3;   // #BP (INT3 on hardware; QEMU's TCG reports it as INTn)
        private const uint CleanIntercepts = 1u << 0;

        /// <summary>Before every VMRUN: nothing but a few compares unless the guard changed, the mode changed or a GDT check is due.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void BeforeEntry(ref SvmVcpu v)
        {
            bool rearm = GuardArming.BeforeEntry(ref v, out bool protect, out bool longPaging);
            if (GuardState.Protected)
            {
                ulong now = Vigil.Platform.Cpu.Rdtsc();
                if (GuardDescriptors.Due(v.Index, now)) CheckDescriptors(ref v, now);
            }
            if (rearm) Arm(ref v, protect, longPaging);
        }

        /// <summary>The GDT's fixed descriptors: compared with the snapshot now and then (hv/Core/Guard/GuardDescriptors).</summary>
        private static void CheckDescriptors(ref SvmVcpu v, ulong now)
        {
            var memory = new HostPhysicalMemory();
            var cpus = default(SvmNestedMapCpus);
            GuardDescriptors.BeforeEntry(ref v, ref memory, ref cpus, now);
        }

        /// <summary>The intercepts and MSR permission bits for <paramref name="protect"/> in this mode.</summary>
        private static void Arm(ref SvmVcpu v, bool protect, bool longPaging)
        {
            Vmcb* vmcb = v.Cpu->Vmcb;
            bool mode = protect && longPaging;
            uint cr = mode ? vmcb->InterceptCr | CrWriteIntercepts : vmcb->InterceptCr & ~CrWriteIntercepts;
            uint misc = mode ? vmcb->InterceptMisc1 | LongModeIntercepts : vmcb->InterceptMisc1 & ~LongModeIntercepts;
            uint exceptions = mode ? vmcb->InterceptExceptions | BreakpointIntercept : vmcb->InterceptExceptions & ~BreakpointIntercept;
            if (cr != vmcb->InterceptCr || misc != vmcb->InterceptMisc1 || exceptions != vmcb->InterceptExceptions)
            {
                vmcb->InterceptCr = cr;
                vmcb->InterceptMisc1 = misc;
                vmcb->InterceptExceptions = exceptions;
                vmcb->CleanBits &= ~CleanIntercepts;
            }
            byte* map = SvmBackEnd.MsrPermissionMapPointer;
            for (int i = 0; i < GuardMsrs.GuardedCount; i++)
            {
                uint msr = GuardMsrs.Guarded(i);
                if (msr == GuardMsrs.Efer) continue;
                int bit = MsrPermissionMap.ReadBit(msr) + 1;   // the write bit
                if (bit <= 0) continue;
                if (protect) map[bit >> 3] |= (byte)(1 << (bit & 7));
                else map[bit >> 3] &= (byte)~(1 << (bit & 7));
            }
        }
    }
}
