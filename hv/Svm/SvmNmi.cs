// SVM host. NMIs belong to the guest, but an NMI is also how another CPU gets this one out of the guest
// (hv/Host/NmiKick: AP start-up, nested-map acknowledgements), so NMIs are intercepted (intercept vector
// 3 bit 1, APM Vol 2 15.13.2): one that arrives while the guest runs exits with #VMEXIT 0x61 and is
// not taken; it stays pending, held by GIF, which #VMEXIT cleared (APM Vol 2 15.17). OnNmi sets GIF
// for a moment, so the host IDT takes it (hv/Host/HostExceptions: HostCpu.PendingNmis); an NMI arriving
// in the host meanwhile is held until the host sets GIF in a wait, or the next VMRUN, where it exits
// at once. Before every VMRUN, Deliver drops the kick (ApStartup.ConsumeKick) and injects one of the
// guest's NMIs through EVENTINJ (type 2, APM Vol 2 15.20). Without virtual NMI support the VMCB has
// no NMI-blocking state for the guest, so after an injection IRET is intercepted (vector 3 bit 20),
// and no further NMI is injected until the guest's handler executes it (KVM does the same). The IRET
// exit comes before the IRET executes: an NMI injected there arrives at the outer handler's IRET,
// which Linux's NMI entry expects ("interrupt an outer NMI after it clears 'NMI executing' but before
// IRET", arch/x86/entry/entry_64.S); otherwise it would wait for an exit that may never come.
// The counter is per CPU and only its CPU touches it.
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmNmi
    {
        private const ulong Valid = 1UL << 31;
        private const ulong TypeNmi = 2UL << 8;
        private const ulong NmiVector = 2;

        /// <summary>NMI intercept: take the held NMI in the host (counted in HostCpu.PendingNmis); Deliver decides whose it was.</summary>
        public static ExitAction OnNmi(SvmCpu* cpu)
        {
            HvStubs.Stgi();
            HvStubs.Clgi();
            return ExitAction.Resume;
        }

        /// <summary>IRET intercept, set while an injected NMI's handler runs: the handler ends, NMIs may be injected again.</summary>
        public static ExitAction OnIret(SvmCpu* cpu)
        {
            cpu->NmiInService = 0;
            cpu->Vmcb->InterceptMisc1 &= ~(uint)SvmIntercept1.Iret;
            return ExitAction.Resume;   // the IRET has not executed: the guest executes it now
        }

        /// <summary>A new guest state (INIT and start-up IPI): no handler of an earlier NMI runs any more.</summary>
        public static void Reset(SvmCpu* cpu) => OnIret(cpu);

        /// <summary>Before the VMRUN: the kick dropped, one of the guest's pending NMIs injected when none is in service.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Deliver(SvmCpu* cpu)
        {
            HostCpu* host = HostEnvironment.Cpu(cpu->Index);
            if (host->PendingNmis != 0) DeliverPending(cpu, host);   // most entries: none pending
        }

        private static void DeliverPending(SvmCpu* cpu, HostCpu* host)
        {
            if (ApStartup.ConsumeKick(cpu->Index)) host->PendingNmis--;
            Vmcb* vmcb = cpu->Vmcb;
            if (host->PendingNmis == 0 || cpu->NmiInService != 0 || (vmcb->EventInjection & Valid) != 0) return;
            vmcb->EventInjection = NmiVector | TypeNmi | Valid;
            host->PendingNmis--;
            cpu->NmiInService = 1;
            vmcb->InterceptMisc1 |= (uint)SvmIntercept1.Iret;
        }
    }
}
