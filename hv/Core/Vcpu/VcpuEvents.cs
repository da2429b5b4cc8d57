// The one pre-entry path for events, both back ends, after the exit's handler ran (VMX root / SVM host,
// interrupts off; no allocation, no logging):
//  1. An event whose delivery the exit interrupted (VMX IDT-vectoring information, SDM Vol 3C 28.2.4;
//     SVM EXITINTINFO, APM Vol 2 15.7.2) is lost unless the entry delivers it again (SDM Vol 3C 28.2.4,
//     27.6; APM Vol 2 15.20). Software events (INTn, INT3, INTO, INT1) are delivered again with their
//     instruction length where the back end can (VMX); otherwise RIP still points at the instruction and
//     executing it again raises them again.
//  2. If the handler injected an exception too, the two combine as the CPU combines them (SDM Vol 3A 6.15
//     Table 6-5, APM Vol 2 8.2.9): contributory after contributory, or contributory/#PF after #PF, is a #DF;
//     anything after #DF is a shutdown (the back end's triple-fault outcome); after a benign exception the
//     handler's goes alone (the first is raised again when the instruction runs again); an interrupted
//     external interrupt or NMI is held back and delivered after the exception.
//  3. Re-injecting an NMI: VM entry refuses an NMI injection while blocking by (virtual) NMI is set (SDM Vol
//     3C 26.3.1.5); the delivery itself sets the blocking again (SDM Vol 3C 27.6.1.2).
//  4. A held-back event goes in when nothing else is injected and the guest can take it (interrupts: RFLAGS.IF
//     and no STI/MOV SS shadow; NMIs: no shadow, not blocked), else an interrupt-window exit is asked for.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class VcpuEvents
    {
        private const ulong InterruptFlag = 1UL << 9;

        /// <param name="reinjectSoftware">The back end can inject software events with their instruction length (VMX).</param>
        public static void BeforeEntry<T>(ref T vcpu, bool reinjectSoftware) where T : struct, IVcpu
        {
            VcpuEvent interrupted = vcpu.InterruptedEvent;
            if (interrupted.Valid && !(interrupted.IsSoftware && !reinjectSoftware))
            {
                VcpuEvent injected = vcpu.Injected;
                if (!injected.Valid) Reinject(ref vcpu, interrupted);
                else Merge(ref vcpu, interrupted, injected);
            }
            DeliverDeferred(ref vcpu);
        }

        private static void Reinject<T>(ref T vcpu, VcpuEvent e) where T : struct, IVcpu
        {
            if (e.Type == EventType.Nmi && vcpu.NmiBlocked) vcpu.NmiBlocked = false;
            vcpu.Injected = e;
        }

        /// <summary>The interrupted event <paramref name="first"/> and the handler's <paramref name="second"/> (SDM Vol 3A Table 6-5).</summary>
        private static void Merge<T>(ref T vcpu, VcpuEvent first, VcpuEvent second) where T : struct, IVcpu
        {
            if (first.Type is EventType.ExternalInterrupt or EventType.Nmi)
            {
                vcpu.Deferred = first;   // delivered after the handler's exception (step 4)
                return;
            }
            if (first.IsSoftware) return;   // the instruction runs again after the exception's handler returns
            switch (Combine(first.Class, second.Class))
            {
                case Combination.DoubleFault:
                    vcpu.Injected = VcpuEvent.Exception(VcpuEvent.DoubleFault, 0);
                    break;
                case Combination.Shutdown:
                    vcpu.Injected = VcpuEvent.None;
                    vcpu.TripleFault();
                    break;
            }
        }

        public enum Combination
        {
            /// <summary>The second is delivered on its own.</summary>
            Serial,
            DoubleFault,
            Shutdown,
        }

        /// <summary>SDM Vol 3A 6.15 Table 6-5 (APM Vol 2 8.2.9 Table 8-7): what a second exception during the delivery of a first one becomes.</summary>
        public static Combination Combine(ExceptionClass first, ExceptionClass second)
        {
            bool secondSevere = second is ExceptionClass.Contributory or ExceptionClass.PageFault or ExceptionClass.DoubleFault;
            return first switch
            {
                ExceptionClass.Contributory when second is ExceptionClass.Contributory => Combination.DoubleFault,
                ExceptionClass.PageFault when secondSevere => Combination.DoubleFault,
                ExceptionClass.DoubleFault when secondSevere => Combination.Shutdown,
                _ => Combination.Serial,
            };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void DeliverDeferred<T>(ref T vcpu) where T : struct, IVcpu
        {
            if (vcpu.Deferred.Valid) DeliverHeldBack(ref vcpu);   // most entries: nothing held back
        }

        private static void DeliverHeldBack<T>(ref T vcpu) where T : struct, IVcpu
        {
            ref VcpuEvent deferred = ref vcpu.Deferred;
            bool ready = !vcpu.Injected.Valid && !vcpu.InterruptShadow && (deferred.Type == EventType.Nmi
                ? !vcpu.NmiBlocked
                : (vcpu.Rflags & InterruptFlag) != 0);
            if (ready)
            {
                vcpu.Injected = deferred;
                deferred = VcpuEvent.None;
                vcpu.RequestInterruptWindow(false);
                return;
            }
            vcpu.RequestInterruptWindow(true);
        }
    }
}
