// SVM host, GIF=0: the SVM back end's binary log records (hv/Core/Logging/LogRings.cs: no formatting, no
// allocation) and the drain to the log UART at the end of an exit (LogUart). Handlers call one of
// these in a single line; the text dumps of fatal paths (SvmStateLog) follow the record.
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmLog
    {
        private const ulong WriteOrFetch = (1UL << 1) | (1UL << 4);   // #NPF error code bits (APM Vol 2 15.25.6)

        /// <summary>
        /// The end of every exit: a bounded drain, with GIF set (a drain can take tens of milliseconds at 115200
        /// baud: NMIs, SMIs and machine checks are not held that long, APM Vol 2 15.17). Not after an AP started
        /// (INIT, start-up IPI: ApStartup), which is timing-sensitive; the records go out on a later exit of any CPU.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void AfterExit(SvmCpu* cpu, SvmExitCode code)
        {
            if (code is not SvmExitCode.Init && LogUart.HasWork) Drain(cpu);   // nothing to drain: GIF stays clear (no STGI/CLGI pair per exit)
        }

        private static void Drain(SvmCpu* cpu)
        {
            Native.HvStubs.Stgi();
            LogUart.AfterExit(cpu->Index);
            Native.HvStubs.Clgi();
        }

        /// <summary>The guest stops on this CPU: what exited and where, then all of this CPU's records out.</summary>
        public static void Fatal(SvmCpu* cpu)
        {
            Vmcb* v = cpu->Vmcb;
            LogRings.Write(cpu->Index, LogEvent.FatalExit, v->ExitCode, v->Rip, v->ExitInfo1, v->ExitInfo2);
            LogUart.Flush(cpu->Index);
        }

        /// <summary>The guest triple-faulted: the machine is about to reset.</summary>
        public static void Shutdown(SvmCpu* cpu)
        {
            LogRings.Write(cpu->Index, LogEvent.GuestShutdown, cpu->Vmcb->Rip);
            LogUart.Flush(cpu->Index);
        }

        /// <summary>A nested page fault inside the hypervisor's reservation (NestedPageFaultHandler).</summary>
        public static void HiddenMemory(SvmCpu* cpu, ulong gpa, ulong error)
        {
            Vmcb* v = cpu->Vmcb;
            if ((error & WriteOrFetch) != 0) LogRings.Write(cpu->Index, LogEvent.HiddenMemoryBlocked, gpa, v->Rip, error);
            else LogRings.Write(cpu->Index, LogEvent.HiddenMemoryRead, gpa, v->Rip);
        }
    }
}
