// VMX root, interrupts off (RFLAGS is cleared on every VM exit, SDM Vol 3C 28.5.3). Called by the
// exit stub (vigil_vmx_exit) with the guest's registers saved on this CPU's host stack. One switch
// over the basic exit reason (SDM Vol 3C Appendix C): the vendor-neutral handlers (hv/Core/Vcpu) over
// this CPU's VmxVcpu, the Intel-only ones in Handlers/; the instruction is stepped over in one place
// (hv/Core/Vcpu/InstructionSkip: the VM-exit instruction length, RFLAGS.TF's single-step trap). Then,
// before the VM entry: a CPU in the INIT state (hv/Core/Apic/ApStartup) waits in the host for its start-up
// IPI (VmxApStartup); otherwise NMI blocking is restored where a faulting IRET had lifted it, and the one
// pre-entry event path runs (hv/Core/Vcpu/VcpuEvents: events the exit interrupted delivered again, #DF
// merging, held-back interrupts); last, pending NMIs are handed to the guest (VmxNmi). Never allocates
// on the normal paths; unexpected exits are logged in full and fail safe (VmxFatal).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Vmx
{
    /// <summary>What the dispatcher does after a handler.</summary>
    internal enum ExitAction
    {
        /// <summary>Resume at the same RIP (an event was injected, or the state was replaced).</summary>
        Resume,

        /// <summary>The instruction is done: RIP += VM-exit instruction length.</summary>
        AdvanceRip,
    }

    internal unsafe struct VmxExit
    {
        public GuestRegisters* Registers;
        public VmxCpu* Cpu;
        public VmxExitReason Reason;

        /// <summary>The exit qualification (SDM Vol 3C 28.2.1), read when a handler asks (CPUID, the commonest exit, has none).</summary>
        public ulong Qualification => Read(VmcsField.ExitQualification);

        public ulong Read(VmcsField field) => Native.HvStubs.VmReadValue((uint)field);

        public void Write(VmcsField field, ulong value) => Native.HvStubs.VmWrite((uint)field, value);
    }

    internal static unsafe class VmxExitDispatcher
    {
        [UnmanagedCallersOnly]
        [SkipLocalsInit]   // every local is assigned before use: no zeroing of the frame on each exit
        public static void Exit(GuestRegisters* registers, VmxCpu* cpu)
        {
            var e = new VmxExit { Registers = registers, Cpu = cpu };
            ulong rawReason = e.Read(VmcsField.ExitReason);
            e.Reason = VmxExitReasons.Basic(rawReason);
            if (cpu->Running == 0 && cpu->Index == VmxBackEnd.BspIndex) VmxNestedMapChanges.StartupCheck(cpu->Index, VmxBackEnd.ReservedBase, VmxBackEnd.ReservedSize);
            cpu->Running = 1;
            ExitStatistics.Count(cpu->Index, VmxExitReasons.Category(e.Reason));
            if ((rawReason & VmxExitReasons.EntryFailureBit) != 0)
            {
                VmxFatal.Report(ref e, "VM entry failed");
                return;
            }

            var v = new VmxVcpu(&e);
            ExitAction action = e.Reason == VmxExitReason.Cpuid ? From(CpuidExit.Handle(ref v)) : e.Reason switch   // the commonest exit first
            {
                VmxExitReason.Vmcall => Hypercall(ref v),
                VmxExitReason.Rdmsr => Msr(ref v, write: false),
                VmxExitReason.Wrmsr => Msr(ref v, write: true),
                VmxExitReason.GdtrIdtrAccess or VmxExitReason.LdtrTrAccess => Handlers.DescriptorTableHandler.Handle(ref v),
                VmxExitReason.ControlRegisterAccess => Handlers.ControlRegisterHandler.Handle(ref v),
                VmxExitReason.Xsetbv => From(XsetbvExit.Handle(ref v)),
                VmxExitReason.Invd => Handlers.InvdHandler.Handle(ref e),
                VmxExitReason.Wbinvd => Handlers.WbinvdHandler.Handle(ref e),
                VmxExitReason.Getsec => Handlers.GetsecHandler.Handle(ref e),
                VmxExitReason.Vmclear or VmxExitReason.Vmlaunch or VmxExitReason.Vmptrld or VmxExitReason.Vmptrst
                    or VmxExitReason.Vmread or VmxExitReason.Vmresume or VmxExitReason.Vmwrite or VmxExitReason.Vmxoff
                    or VmxExitReason.Vmxon or VmxExitReason.Invept or VmxExitReason.Invvpid or VmxExitReason.Vmfunc
                    => Handlers.VmxInstructionHandler.Handle(ref e),
                VmxExitReason.InitSignal => Handlers.InitSignalHandler.Handle(ref e),
                VmxExitReason.StartupIpi => Handlers.StartupIpiHandler.Handle(ref v),
                VmxExitReason.TripleFault => Handlers.TripleFaultHandler.Handle(ref e),
                VmxExitReason.EptViolation => Handlers.EptViolationHandler.Handle(ref v),
                VmxExitReason.EptMisconfiguration => Handlers.EptMisconfigurationHandler.Handle(ref e),
                VmxExitReason.ExceptionOrNmi => ExceptionOrNmi(ref v, ref e),
                VmxExitReason.NmiWindow => ExitAction.Resume,          // VmxNmi.Deliver below injects the NMI
                VmxExitReason.InterruptWindow => ExitAction.Resume,    // VcpuEvents below injects the held-back event
                _ => Handlers.UnexpectedExitHandler.Handle(ref e),
            };

            if (action == ExitAction.AdvanceRip)
            {
                var memory = new HostPhysicalMemory();
                if (!InstructionSkip.Skip(ref v, ref memory, 0)) VmxFatal.Report(ref e, "cannot size the instruction to step over");
            }
            if (ApStartup.MustWait(cpu->Index))
            {
                VmxApStartup.WaitForStartup(ref v);   // a new guest state: nothing to deliver again
            }
            else
            {
                RecoverNmiBlocking(ref e);
                VcpuEvents.BeforeEntry(ref v, reinjectSoftware: true);
            }
            VmxGuard.BeforeEntry(ref v);   // the guard's masks, bitmap bits and descriptor-table exiting for this generation and mode
            VmxNmi.Deliver(ref e);
            VmxLog.AfterExit(ref e);
            VmxNestedMapChanges.Acknowledge(cpu->Index);   // last before the entry: INVEPT if the EPT changed (hv/Core/Paging/NestedMapService)
        }

        public static ExitAction From(VcpuAction action) => action == VcpuAction.Skip ? ExitAction.AdvanceRip : ExitAction.Resume;

        /// <summary>
        /// INT3 (#BP in the exception bitmap while the guard is armed: VmxGuard): delivered, or a stale breakpoint touched
        /// and run again (hv/Core/Vcpu/BreakpointExit); NMIs and anything else as before (VmxNmi).
        /// </summary>
        private static ExitAction ExceptionOrNmi(ref VmxVcpu v, ref VmxExit e)
        {
            uint info = (uint)e.Read(VmcsField.VmExitInterruptionInformation);
            bool breakpoint = (info & VcpuEvent.ValidBit) != 0 && ((info >> 8) & 7) == (uint)EventType.SoftwareException && (byte)info == VcpuEvent.BreakpointVector;
            if (!breakpoint) return VmxNmi.OnExceptionOrNmi(ref e);
            var memory = new HostPhysicalMemory();
            if (BreakpointExit.Handle(ref v, ref memory, out ulong stale) == BreakpointOutcome.Stale) Vigil.Platform.Cpu.TouchByte((byte*)stale);
            return ExitAction.Resume;
        }

        private static ExitAction Msr(ref VmxVcpu v, bool write)
        {
            var cpus = default(VmxNestedMapCpus);
            return From(MsrExit.Handle(ref v, ref cpus, write));
        }

        private static ExitAction Hypercall(ref VmxVcpu v)
        {
            var memory = new HostPhysicalMemory();
            var guard = default(VmxGuardPlatform);
            return From(HypercallExit.Handle(ref v, ref memory, ref guard));
        }

        /// <summary>
        /// A fault during an IRET that had unblocked NMIs ("NMI unblocking due to IRET": bit 12 of the exit interruption
        /// information of an exception exit, of the qualification of an EPT violation) leaves NMIs unblocked although the
        /// IRET did not complete; with virtual NMIs the VMM sets blocking by NMI again before it resumes the guest at the
        /// IRET (SDM Vol 3C 28.2.3). The bit is undefined when the exit happened during event delivery (IDT-vectoring
        /// information valid) and for #DF (SDM Vol 3C 28.2.2).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void RecoverNmiBlocking(ref VmxExit e)
        {
            if (e.Reason is VmxExitReason.ExceptionOrNmi or VmxExitReason.EptViolation) RecoverNmiBlockingAfter(ref e);   // only these report it
        }

        private static void RecoverNmiBlockingAfter(ref VmxExit e)
        {
            const uint valid = 1u << 31, unblockedByIret = 1u << 12;
            bool unblocked;
            if (e.Reason == VmxExitReason.ExceptionOrNmi)
            {
                uint info = (uint)e.Read(VmcsField.VmExitInterruptionInformation);
                unblocked = (info & valid) != 0 && (info & unblockedByIret) != 0 && ((info >> 8) & 7) == (uint)EventType.HardwareException
                    && (byte)info != VcpuEvent.DoubleFault;
            }
            else
            {
                unblocked = e.Reason == VmxExitReason.EptViolation && (e.Qualification & unblockedByIret) != 0;
            }
            if (!unblocked || (e.Read(VmcsField.IdtVectoringInformation) & valid) != 0) return;
            e.Write(VmcsField.GuestInterruptibilityState, e.Read(VmcsField.GuestInterruptibilityState) | (1UL << 3));
        }

        [UnmanagedCallersOnly]
        public static void ResumeFailed(GuestRegisters* registers, VmxCpu* cpu)
        {
            var e = new VmxExit { Registers = registers, Cpu = cpu };
            ulong error = e.Read(VmcsField.VmInstructionError);
            Hv.Log.Error("CPU " + cpu->Index.ToString() + ": VMRESUME failed, VM-instruction error " + ((long)error).ToString()
                + " (" + VmxLaunch.InstructionErrorName(error) + ")");
            VmxFatal.Report(ref e, "VMRESUME failed");
        }
    }
}
