// Every event the hypervisor logs, declared once: its id (what the record carries), its severity and
// its message template (what `vigil log` prints). The hypervisor uses the ids and severities; the host
// tool compiles this file in and uses the templates. Compiled three times, like LogRecord.cs.
//
// Templates: {N} is argument N (0-3) in decimal, {N:x} in hexadecimal with 0x. Ids are stable: a log
// written by an older hypervisor must decode with a newer tool, so never renumber, only add.
// Severity (STYLE.md 9): error = the guest may be unprotected; warn = unexpected but handled;
// info = lifecycle; trace = per exit (LogRing.Trace, compiled out unless VIGIL_TRACE is defined).
namespace Vigil.Hypervisor.Core
{
    public enum LogEvent : ushort
    {
        None = 0,

        // Written by LogRing.Drain itself.
        RecordsDropped = 1,

        // Lifecycle (info).
        HypervisorStarted = 16,
        CpuVirtualized = 17,
        PolicyLocked = 18,
        StatusReported = 19,
        ApStarted = 20,
        GuardProtected = 21,
        LaunchPinsArmed = 22,
        ApicTrapArmed = 28,
        ApicTrapLifted = 29,

        // Failures that leave the guest unprotected (error).
        CpuNotVirtualized = 32,
        VmEntryFailed = 33,
        FatalExit = 34,
        NestedFault = 35,
        GuestShutdown = 36,
        GuardProtectFailed = 37,

        // Unexpected but handled (warn).
        ExitUnexpected = 48,
        InstructionLengthUnknown = 49,
        HypercallRejected = 50,
        NmiReinjected = 51,
        GuestWriteBlocked = 52,
        HiddenMemoryRead = 53,
        HiddenMemoryBlocked = 54,
        StaleBreakpoint = 55,

        // Per exit (trace).
        Exit = 64,
        Hypercall = 65,
    }

    public readonly struct LogEventInfo
    {
        public LogEventInfo(LogSeverity severity, string template)
        {
            Severity = severity;
            Template = template;
        }

        public LogSeverity Severity { get; }

        /// <summary>Null for an id this build does not know.</summary>
        public string? Template { get; }
    }

    public static class LogEvents
    {
        /// <summary>The one table of severities and templates.</summary>
        public static LogEventInfo Describe(LogEvent id) => id switch
        {
            LogEvent.RecordsDropped => new(LogSeverity.Warn, "log ring full: {0} records dropped ({1} in total on this cpu)"),

            LogEvent.HypervisorStarted => new(LogSeverity.Info, "hypervisor started: {0} cpus, {1:x} bytes reserved at {2:x}"),
            LogEvent.CpuVirtualized => new(LogSeverity.Info, "cpu virtualized (apic id {0}, vendor {1})"),
            LogEvent.ApStarted => new(LogSeverity.Info, "cpu started by a start-up ipi caught at the sender (vector {0:x}: real mode at {1:x})"),
            LogEvent.ApicTrapArmed => new(LogSeverity.Info, "xapic write trap armed: a cpu may be started by the os (marks {0:x}, armed {1} times)"),
            LogEvent.ApicTrapLifted => new(LogSeverity.Info, "xapic write trap lifted: no cpu may be started (lifted {0} times)"),
            LogEvent.PolicyLocked => new(LogSeverity.Info, "policy locked by the agent (cr3 {0:x})"),
            LogEvent.LaunchPinsArmed => new(LogSeverity.Info, "the kernel runs (rip {0:x}, cr3 {1:x}): CR0/CR4/EFER pins and syscall-MSR values are judged from now on, before Protect"),
            LogEvent.GuardProtected => new(LogSeverity.Info, "kernel guarded (kernel cr3 {0:x}): {1} ranges, {2:x} bytes; hints accepted/rejected {3:x}"),
            LogEvent.StatusReported => new(LogSeverity.Info, "status hypercall answered: {2} cpus reported to the buffer at {1:x} (cr3 {0:x})"),

            LogEvent.CpuNotVirtualized => new(LogSeverity.Error, "cpu not virtualized: status {0}, detail {1:x}"),
            LogEvent.VmEntryFailed => new(LogSeverity.Error, "vm entry failed: reason {0:x}, qualification {1:x}"),
            LogEvent.FatalExit => new(LogSeverity.Error, "exit {0:x} at rip {1:x} cannot be handled (detail {2:x}, {3:x}): the guest stops on this cpu"),
            LogEvent.NestedFault => new(LogSeverity.Error, "guest access to gpa {0:x} from rip {1:x} faults in the nested tables (qualification {2:x}): not mapped by design"),
            LogEvent.GuardProtectFailed => new(LogSeverity.Error, "protect failed (cr3 {0:x}): step {1}, detail {2:x} at {3:x}: the kernel is not (fully) guarded"),
            LogEvent.GuestShutdown => new(LogSeverity.Error, "the guest triple-faulted at rip {0:x}: resetting the machine"),

            LogEvent.ExitUnexpected => new(LogSeverity.Warn, "unexpected exit {0:x} at rip {1:x}"),
            LogEvent.InstructionLengthUnknown => new(LogSeverity.Warn, "cannot size the instruction at rip {0:x} (first bytes {1:x}): not skipped"),
            LogEvent.HypercallRejected => new(LogSeverity.Warn, "hypercall {0:x} (cr3 {1:x}) rejected: status {2}"),
            LogEvent.NmiReinjected => new(LogSeverity.Warn, "nmi in root mode re-injected (exit {0:x})"),
            LogEvent.GuestWriteBlocked => new(LogSeverity.Warn, "write to guarded gpa {0:x} from rip {1:x} blocked (rule {2})"),
            LogEvent.HiddenMemoryRead => new(LogSeverity.Warn, "guest read of the hypervisor's memory at gpa {0:x} from rip {1:x}: a blank page is mapped there"),
            LogEvent.StaleBreakpoint => new(LogSeverity.Warn, "breakpoint at rip {0:x} no longer in memory (gpa {1:x}): not delivered, run again after an atomic touch of the byte (an emulator's stale translation)"),
            LogEvent.HiddenMemoryBlocked => new(LogSeverity.Warn, "guest write or fetch at gpa {0:x} from rip {1:x} (error {2:x}) hits the hypervisor's memory: #GP injected"),

            LogEvent.Exit => new(LogSeverity.Trace, "exit {0:x} at rip {1:x}, qualification {2:x}"),
            LogEvent.Hypercall => new(LogSeverity.Trace, "hypercall {0:x} ({1:x}, {2:x}, {3:x})"),

            _ => default,
        };

        public static LogSeverity SeverityOf(LogEvent id) => Describe(id).Severity;
    }
}
