// VMX root, interrupts off (RFLAGS is cleared on every VM exit, SDM Vol 3C 28.5.3). Called by the
// exit stub (vigil_vmx_exit) with the guest's registers saved on this CPU's host stack. One switch
// over the basic exit reason (SDM Vol 3C Appendix C), one handler per reason in Handlers/, RIP
// advanced in one place; then, before the VM entry: a CPU in the INIT state (hv/Core/ApStartup) waits
// in the host for its start-up IPI (VmxApStartup), an event the exit interrupted is delivered again,
// and pending NMIs are handed to the guest (VmxNmi). Never allocates on the normal paths; unexpected
// exits are logged in full and fail safe (VmxFatal).
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;

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
        public ulong Qualification;

        public ulong Read(VmcsField field)
        {
            ulong value;
            Native.HvStubs.VmRead((uint)field, &value);
            return value;
        }

        public void Write(VmcsField field, ulong value) => Native.HvStubs.VmWrite((uint)field, value);

        /// <summary>Steps over an instruction of <paramref name="length"/> bytes the handler emulated; ends STI/MOV SS blocking (SDM Vol 3C 25.4.2).</summary>
        public void Skip(ulong length)
        {
            Write(VmcsField.GuestRip, Read(VmcsField.GuestRip) + length);
            ulong interruptibility = Read(VmcsField.GuestInterruptibilityState);
            if ((interruptibility & 3) != 0) Write(VmcsField.GuestInterruptibilityState, interruptibility & ~3UL);
        }
    }

    internal static unsafe class VmxExitDispatcher
    {
        [UnmanagedCallersOnly]
        public static void Exit(GuestRegisters* registers, VmxCpu* cpu)
        {
            var e = new VmxExit { Registers = registers, Cpu = cpu };
            ulong rawReason = e.Read(VmcsField.ExitReason);
            e.Reason = VmxExitReasons.Basic(rawReason);
            e.Qualification = e.Read(VmcsField.ExitQualification);
            if (cpu->Running == 0 && cpu->Index == VmxBackEnd.BspIndex) VmxNestedMapChanges.StartupCheck(cpu->Index, VmxBackEnd.ReservedBase, VmxBackEnd.ReservedSize);
            cpu->Running = 1;
            ExitStatistics.Count(cpu->Index, VmxExitReasons.Category(e.Reason));
            if ((rawReason & VmxExitReasons.EntryFailureBit) != 0)
            {
                VmxFatal.Report(ref e, "VM entry failed");
                return;
            }

            ExitAction action = e.Reason switch
            {
                VmxExitReason.Cpuid => Handlers.CpuidHandler.Handle(ref e),
                VmxExitReason.Vmcall => Handlers.VmcallHandler.Handle(ref e),
                VmxExitReason.Rdmsr => Handlers.RdmsrHandler.Handle(ref e),
                VmxExitReason.Wrmsr => Handlers.WrmsrHandler.Handle(ref e),
                VmxExitReason.ControlRegisterAccess => Handlers.ControlRegisterHandler.Handle(ref e),
                VmxExitReason.Xsetbv => Handlers.XsetbvHandler.Handle(ref e),
                VmxExitReason.Invd => Handlers.InvdHandler.Handle(ref e),
                VmxExitReason.Getsec => Handlers.GetsecHandler.Handle(ref e),
                VmxExitReason.Vmclear or VmxExitReason.Vmlaunch or VmxExitReason.Vmptrld or VmxExitReason.Vmptrst
                    or VmxExitReason.Vmread or VmxExitReason.Vmresume or VmxExitReason.Vmwrite or VmxExitReason.Vmxoff
                    or VmxExitReason.Vmxon or VmxExitReason.Invept or VmxExitReason.Invvpid or VmxExitReason.Vmfunc
                    => Handlers.VmxInstructionHandler.Handle(ref e),
                VmxExitReason.InitSignal => Handlers.InitSignalHandler.Handle(ref e),
                VmxExitReason.StartupIpi => Handlers.StartupIpiHandler.Handle(ref e),
                VmxExitReason.TripleFault => Handlers.TripleFaultHandler.Handle(ref e),
                VmxExitReason.EptViolation => Handlers.EptViolationHandler.Handle(ref e),
                VmxExitReason.EptMisconfiguration => Handlers.EptMisconfigurationHandler.Handle(ref e),
                VmxExitReason.ExceptionOrNmi => VmxNmi.OnExceptionOrNmi(ref e),
                VmxExitReason.NmiWindow => ExitAction.Resume,   // VmxNmi.Deliver below injects the NMI
                _ => Handlers.UnexpectedExitHandler.Handle(ref e),
            };

            // The one place RIP moves past an instruction the CPU measured (VM-exit instruction length, SDM Vol 3C 28.2.5).
            if (action == ExitAction.AdvanceRip) e.Skip(e.Read(VmcsField.VmExitInstructionLength));
            if (ApStartup.MustWait(cpu->Index)) VmxApStartup.WaitForStartup(ref e);   // a new guest state: nothing to deliver again
            else Redeliver(ref e);
            VmxNmi.Deliver(ref e);
            VmxLog.AfterExit(ref e);
            VmxNestedMapChanges.Acknowledge(cpu->Index);   // last before the entry: INVEPT if the EPT changed (hv/Core/NestedMapService)
        }

        /// <summary>
        /// An exit during event delivery (IDT-vectoring information valid, SDM Vol 3C 28.2.4) loses the event unless
        /// the entry delivers it again (SDM Vol 3C 28.2.4, 27.6): same type, vector, error code and, for software
        /// events, instruction length; unless the handler injected something itself.
        /// </summary>
        private static void Redeliver(ref VmxExit e)
        {
            const uint valid = 1u << 31;
            ulong vectoring = e.Read(VmcsField.IdtVectoringInformation);
            if ((vectoring & valid) == 0 || (e.Read(VmcsField.VmEntryInterruptionInformation) & valid) != 0) return;
            if ((vectoring & (1u << 11)) != 0) e.Write(VmcsField.VmEntryExceptionErrorCode, e.Read(VmcsField.IdtVectoringErrorCode));
            uint type = (uint)(vectoring >> 8) & 7;
            if (type >= 4) e.Write(VmcsField.VmEntryInstructionLength, e.Read(VmcsField.VmExitInstructionLength));   // software interrupt/exception
            e.Write(VmcsField.VmEntryInterruptionInformation, vectoring & ~(1UL << 12));   // bit 12 is reserved on entry
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
