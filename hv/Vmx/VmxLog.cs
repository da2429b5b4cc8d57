// VMX root, interrupts off: the VMX back end's binary log records (hv/Core/Logging/LogRings.cs: no
// formatting, no allocation) and the drain to the log UART at the end of an exit (LogUart).
// Handlers call one of these in a single line; the text dumps of fatal paths (VmxFatal) follow.
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxLog
    {
        /// <summary>
        /// The end of every exit: a bounded drain. Not on an INIT or SIPI exit (timing-sensitive); the records go
        /// out on a later exit of any CPU.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void AfterExit(ref VmxExit e)
        {
            if (e.Reason is VmxExitReason.InitSignal or VmxExitReason.StartupIpi) return;
            LogUart.AfterExit(e.Cpu->Index);
        }

        /// <summary>
        /// The guest stops on this CPU: the raw exit reason (bit 31: VM entry failed, SDM Vol 3C 25.9.1), RIP, the
        /// qualification and the VM-instruction error, then all of this CPU's records out.
        /// </summary>
        public static void Fatal(ref VmxExit e)
        {
            LogRings.Write(e.Cpu->Index, LogEvent.FatalExit, e.Read(VmcsField.ExitReason), e.Read(VmcsField.GuestRip), e.Qualification,
                e.Read(VmcsField.VmInstructionError));
            LogUart.Flush(e.Cpu->Index);
        }

        /// <summary>The guest triple-faulted: the machine is about to reset.</summary>
        public static void Shutdown(ref VmxExit e)
        {
            LogRings.Write(e.Cpu->Index, LogEvent.GuestShutdown, e.Read(VmcsField.GuestRip));
            LogUart.Flush(e.Cpu->Index);
        }

        /// <summary>An EPT violation (SDM Vol 3C 29.3.3.2): the guest-physical address, RIP and the qualification.</summary>
        public static void NestedFault(ref VmxExit e)
        {
            LogRings.Write(e.Cpu->Index, LogEvent.NestedFault, e.Read(VmcsField.GuestPhysicalAddress), e.Read(VmcsField.GuestRip), e.Qualification);
        }
    }
}
