// SVM host, GIF=0: the C# side of the generated VMRUN loop. One switch over the exit code calls the
// handler for it: the vendor-neutral ones (hv/Core/Vcpu) over this CPU's SvmVcpu, the AMD-only ones in
// hv/Svm/Handlers. The step over an emulated instruction happens here, once (hv/Core/Vcpu/InstructionSkip:
// NRIP where the CPU saves it, APM Vol 2 15.7.1, else the decoder, as under QEMU TCG; RFLAGS.TF's
// single-step trap), then the one pre-entry event path (hv/Core/Vcpu/VcpuEvents: the event EXITINTINFO says
// the exit interrupted is delivered again, APM Vol 2 15.7.2; #DF merging; held-back interrupts).
// Then, before the VMRUN: a CPU in the INIT state (hv/Core/Apic/ApStartup) waits in the host for its start-up
// IPI (SvmApStartup), pending NMIs are handed to the guest (SvmNmi), and nested-map changes since the last
// exit are acknowledged (SvmNestedMapChanges) - after everything that may wait with GIF set.
// No allocation on this path except the fail-safe logs of exits that end the guest on this CPU.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Vigil.Hypervisor.Svm.Handlers;

namespace Vigil.Hypervisor.Svm
{
    /// <summary>What the exit handler does with the guest after a handler ran.</summary>
    public enum ExitAction
    {
        /// <summary>Re-enter at the same RIP (an event was injected, or the state was replaced).</summary>
        Resume,

        /// <summary>The instruction was emulated: advance RIP over it.</summary>
        Skip,
    }

    internal static unsafe class SvmExitHandler
    {
        [UnmanagedCallersOnly(EntryPoint = "vigil_svm_exit")]
        [SkipLocalsInit]   // every local is assigned before use: no zeroing of the frame on each exit
        private static void OnExit(SvmHostFrame* frame, SvmCpu* cpu)
        {
            Vmcb* vmcb = cpu->Vmcb;
            ref GuestRegisters regs = ref frame->Guest;
            regs.Rax = vmcb->Rax;
            vmcb->TlbControl = 0;
            var code = (SvmExitCode)vmcb->ExitCode;
            if (cpu->Launched == 0)
            {
                if (code == SvmExitCode.Invalid) SvmBackEnd.Abandon(cpu);   // does not return
                cpu->Launched = 1;
                ApStartup.Of(cpu->Index)->Virtualized = 1;   // IPIs to it are caught from now on
                if (cpu->Index == SvmBackEnd.BspIndex) SvmNestedMapChanges.StartupCheck(cpu->Index, SvmBackEnd.ReservedBase, SvmBackEnd.ReservedSize);
            }
            ExitStatistics.Count(cpu->Index, SvmExitCodes.Reason(code, vmcb->ExitInfo1));

            var v = new SvmVcpu(cpu, &frame->Guest, code);
            cpu->EmulatedLength = 0;
            ExitAction action = code == SvmExitCode.Cpuid ? From(CpuidExit.Handle(ref v)) : code switch   // the commonest exit first
            {
                SvmExitCode.Vmmcall => Hypercall(ref v),
                SvmExitCode.Msr => Msr(ref v, write: vmcb->ExitInfo1 == 1),   // EXITINFO1: 0 RDMSR, 1 WRMSR (APM Vol 2 15.11)
                SvmExitCode.WriteCr0 or SvmExitCode.WriteCr4 or SvmExitCode.IdtrWrite or SvmExitCode.GdtrWrite => Guarded(ref v, ref regs),
                SvmExitCode.Vmrun or SvmExitCode.Vmload or SvmExitCode.Vmsave or SvmExitCode.Stgi
                    or SvmExitCode.Clgi or SvmExitCode.Skinit => SvmInstructionHandler.Handle(cpu),
                SvmExitCode.Init => InitHandler.Handle(ref v),
                SvmExitCode.Wbinvd => WbinvdHandler.Handle(cpu),
                SvmExitCode.Nmi => SvmNmi.OnNmi(cpu),
                SvmExitCode.Iret => SvmNmi.OnIret(cpu),
                SvmExitCode.NestedPageFault => NestedPageFaultHandler.Handle(ref v, ref regs),
                SvmExitCode.Breakpoint or SvmExitCode.SoftwareInterrupt => Breakpoint(ref v),
                SvmExitCode.Vintr => ExitAction.Resume,   // the interrupt window VcpuEvents asked for: it injects below
                SvmExitCode.Shutdown => ShutdownHandler.Handle(cpu, ref regs),
                _ => UnexpectedExitHandler.Handle(cpu, ref regs),
            };
            if (action == ExitAction.Skip)
            {
                int known = cpu->EmulatedLength;   // the MMIO/guarded-write emulation or the CR/LIDT/LGDT decoder sized it (0: none did)
                var memory = new HostPhysicalMemory();
                if (!InstructionSkip.Skip(ref v, ref memory, known)) SkipFailed(cpu, ref regs);   // does not return
            }
            // Before the VMRUN: AP start-up, events, NMIs, nested-map acknowledgement, in this order (see the top).
            bool started = ApStartup.MustWait(cpu->Index);
            if (started) SvmApStartup.WaitForStartup(ref v);   // a new guest state: nothing to deliver again
            // SVM re-injects no software event (INTn, INT3, INTO): RIP still points at the instruction, which runs again.
            // Nothing to deliver unless EXITINTINFO is valid (bit 31, APM Vol 2 15.7.2) or an event was held back: most exits.
            else if ((vmcb->ExitIntInfo & VcpuEvent.ValidBit) != 0 || cpu->Deferred.Valid) VcpuEvents.BeforeEntry(ref v, reinjectSoftware: false);
            vmcb->Rax = regs.Rax;
            if (!started) SvmLog.AfterExit(cpu, code);
            if (!started) SvmGuard.BeforeEntry(ref v);   // the guard's intercepts for this generation and mode (a CPU waiting for start-up arms at its first exit)
            SvmNmi.Deliver(cpu);
            SvmNestedMapChanges.Acknowledge(cpu->Index);
        }

        private static ExitAction Hypercall(ref SvmVcpu v)
        {
            var memory = new HostPhysicalMemory();
            var guard = default(SvmGuardPlatform);
            return From(HypercallExit.Handle(ref v, ref memory, ref guard));
        }

        private static ExitAction Msr(ref SvmVcpu v, bool write)
        {
            var cpus = default(SvmNestedMapCpus);
            return From(MsrExit.Handle(ref v, ref cpus, write));
        }

        /// <summary>MOV to CR0/CR4, CLTS, LMSW, LIDT, LGDT intercepted while the guard is armed (hv/Core/Vcpu/SystemInstructionExit).</summary>
        private static ExitAction Guarded(ref SvmVcpu v, ref GuestRegisters regs)
        {
            var memory = new HostPhysicalMemory();
            var cpus = default(SvmNestedMapCpus);
            if (!SystemInstructionExit.Handle(ref v, ref memory, ref cpus, out VcpuAction action, out int length)) return UnexpectedExitHandler.Handle(v.Cpu, ref regs);
            v.Cpu->EmulatedLength = length;
            return From(action);
        }

        /// <summary>INT3 (INTO, INTn under QEMU) while the guard is armed: delivered, or a stale breakpoint touched and run again (hv/Core/Vcpu/BreakpointExit).</summary>
        private static ExitAction Breakpoint(ref SvmVcpu v)
        {
            var memory = new HostPhysicalMemory();
            if (BreakpointExit.Handle(ref v, ref memory, out ulong stale) == BreakpointOutcome.Stale) Vigil.Platform.Cpu.TouchByte((byte*)stale);
            return ExitAction.Resume;
        }

        private static ExitAction From(VcpuAction action) => action == VcpuAction.Skip ? ExitAction.Skip : ExitAction.Resume;

        /// <summary>
        /// The emulated instruction cannot be sized (SvmInstructionLength): RIP cannot move past it, and replaying
        /// it would repeat its effect forever. The state goes to the log and the guest stops on this CPU.
        /// </summary>
        private static void SkipFailed(SvmCpu* cpu, ref GuestRegisters regs)
        {
            SvmLog.Fatal(cpu);
            Hv.Log.Error("CPU " + cpu->Index.ToString() + ": cannot size the instruction at RIP 0x" + HvMain.Hex(cpu->Vmcb->Rip)
                + " to skip it (unreadable or not decodable); the guest stops on this CPU");
            SvmStateLog.Write(cpu, ref regs);
            Host.HostExceptions.Stop();
        }
    }
}
