// VMX root, interrupts off. NMIs belong to the guest (SDM Vol 3C 25.3, 27.2.3). With NMI exiting and
// virtual NMIs on, an NMI that arrives while the guest runs exits (exit reason 0, interruption type
// NMI) and leaves NMIs blocked until the host executes IRET (SDM Vol 3C 28.1; virtual NMIs keep VM
// entry from lifting it): HostUnblockNmi does that at once. One that arrives in VMX root is taken by the host IDT (hv/Host/HostExceptions: the IST1 stub
// counts it in HostCpu.PendingNmis); an NMI a sender raised to get an AP out of the guest (hv/Host/ApKick)
// is recognized and dropped (ApStartup.ConsumeKick). The guest's NMIs end up in that counter, and before every VM entry Deliver
// injects one NMI if the guest can take it now (no event already being injected, no blocking by STI,
// MOV SS or NMI), otherwise asks for an NMI-window exit (SDM Vol 3C 26.7.6) and tries again there.
// The counter is per CPU and only its CPU touches it; an NMI arriving in the host between the read and
// the write of a decrement can be lost, which is no worse than the hardware's own merging of NMIs
// (one pending at most, SDM Vol 3A 6.7.1).
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxNmi
    {
        private const uint Valid = 1u << 31;
        private const uint TypeMask = 7u << 8;
        private const uint NmiType = 2u << 8;
        private const ulong BlockedForNmi = 0b1011;   // STI, MOV SS, NMI blocking (SDM Vol 3C 25.4.2, Table 25-3)

        /// <summary>Exception-or-NMI exit: an NMI is queued for the guest; any other event was not asked for.</summary>
        public static ExitAction OnExceptionOrNmi(ref VmxExit e)
        {
            uint info = (uint)e.Read(VmcsField.VmExitInterruptionInformation);
            if ((info & Valid) == 0 || (info & TypeMask) != NmiType) return Handlers.UnexpectedExitHandler.Handle(ref e);
            Native.HvStubs.HostUnblockNmi();   // NMIs stay blocked after an NMI exit until the host executes IRET
            HostEnvironment.Cpu(e.Cpu->Index)->PendingNmis++;   // Deliver tells a sender's kick from the guest's NMI
            return ExitAction.Resume;
        }

        /// <summary>Before the VM entry: one pending NMI injected when the guest can take it, an NMI window asked for otherwise.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Deliver(ref VmxExit e)
        {
            HostCpu* host = HostEnvironment.Cpu(e.Cpu->Index);
            // Nothing pending: nothing to do, and no NMI window is armed (this method arms one only while NMIs are
            // pending and disarms it when the count drops to 0; between calls the count only grows). No VMREAD on
            // the common path.
            if (host->PendingNmis != 0) DeliverPending(ref e, host);
        }

        private static void DeliverPending(ref VmxExit e, HostCpu* host)
        {
            // The NMI a sender raised to get this CPU out of the guest (hv/Host/NmiKick), counted by the NMI exit or by the
            // host's NMI handler, is not the guest's.
            if (ApStartup.ConsumeKick(e.Cpu->Index)) host->PendingNmis--;
            ulong primary = e.Read(VmcsField.PrimaryProcessorBasedVmExecutionControls);
            bool window = (primary & (ulong)PrimaryControls.NmiWindowExiting) != 0;
            if (host->PendingNmis == 0)
            {
                if (window) e.Write(VmcsField.PrimaryProcessorBasedVmExecutionControls, primary & ~(ulong)PrimaryControls.NmiWindowExiting);
                return;
            }
            if ((e.Read(VmcsField.VmEntryInterruptionInformation) & Valid) == 0
                && (e.Read(VmcsField.GuestInterruptibilityState) & BlockedForNmi) == 0)
            {
                VmxInject.Nmi(ref e);
                host->PendingNmis--;
            }
            bool wantWindow = host->PendingNmis != 0;
            if (wantWindow != window)
            {
                e.Write(VmcsField.PrimaryProcessorBasedVmExecutionControls, wantWindow
                    ? primary | (ulong)PrimaryControls.NmiWindowExiting
                    : primary & ~(ulong)PrimaryControls.NmiWindowExiting);
            }
        }
    }
}
