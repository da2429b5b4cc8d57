// The Status hypercall's output, written into a guest buffer. Blittable, fixed layout (tests check it).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vigil.Abi
{
    public enum Vendor : uint
    {
        None = 0,
        IntelVmx = 1,
        AmdSvm = 2,
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct CpuStatus
    {
        /// <summary>Local APIC ID of the CPU.</summary>
        public uint ApicId;

        /// <summary>1 when this CPU runs under the hypervisor.</summary>
        public uint Virtualized;

        public ulong TotalExits;

        /// <summary>Exits per <see cref="ExitReason"/>.</summary>
        public fixed ulong Exits[ExitReasons.Count];
    }

    [InlineArray(StatusReport.MaxCpus)]
    public struct CpuStatusArray
    {
        private CpuStatus _element0;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct StatusReport
    {
        /// <summary>"VIGILSTS" as little-endian bytes.</summary>
        public const ulong ExpectedSignature = 0x5354_534C_4947_4956;
        public const int MaxCpus = 64;

        public ulong Signature;
        public uint Version;
        public Vendor Vendor;
        public uint CpuCount;
        public uint VirtualizedCount;

        /// <summary>Bytes of physical memory the hypervisor reserved (image, tables, stacks, logs).</summary>
        public ulong ReservedBytes;

        /// <summary>Physical address of that reservation (tests check the guest cannot read it).</summary>
        public ulong ReservedBase;

        public CpuStatusArray Cpus;

        /// <summary>The kernel guard: what is guarded, how attempts were judged, how many events were lost.</summary>
        public GuardStatus Guard;

        /// <summary>Which policy is in force and where it came from (the ESP's file, the built-in one, vigild protect --policy).</summary>
        public PolicyStatus Policy;
    }

    /// <summary>Where the policy in force came from.</summary>
    public enum PolicyOrigin : uint
    {
        /// <summary>The built-in rules: vigil.conf names no policy file (`policy = built-in`).</summary>
        BuiltIn = 0,

        /// <summary>The compiled policy vigil.efi read from the ESP (<see cref="PolicyStatus.Name"/>), validated by the hypervisor.</summary>
        File = 1,

        /// <summary>The built-in rules because the ESP's policy file was missing or rejected (<see cref="PolicyStatus.Problem"/> says why).</summary>
        FileRejected = 2,

        /// <summary>A compiled policy handed over by `vigild protect --policy` (before Lock).</summary>
        HandedOver = 3,

        /// <summary>A rule set other than a compiled policy: Protect's StrictRules flag or its raw RuleSet (GuardStatus.RuleSource says which).</summary>
        Protect = 4,
    }

    /// <summary>The policy part of the status report. ASCII texts, NUL-padded.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct PolicyStatus
    {
        /// <summary>The largest compiled policy the hypervisor takes (from vigil.efi or vigild protect --policy).</summary>
        public const int MaxImageBytes = 64 * 1024;

        public const int NameBytes = 64;
        public const int ProblemBytes = 128;
        public const int HashBytes = 32;

        public PolicyOrigin Origin;

        /// <summary>1 when the policy's mode is audit-only (every block becomes audit).</summary>
        public uint AuditOnly;

        /// <summary>Rules of the policy in force.</summary>
        public uint RuleCount;

        /// <summary>Bytes of the compiled policy in force (0: built-in).</summary>
        public uint ImageBytes;

        /// <summary>
        /// 1 once the kernel ran: CR0/CR4/EFER pins and syscall-MSR values are judged from the kernel's first instruction on,
        /// before Protect (hv/Core/Guard/LaunchPins.cs says what is and is not in force then).
        /// </summary>
        public uint PinnedFromKernelStart;

        /// <summary>Syscall MSRs whose first value the OS wrote became the expected one (before Protect).</summary>
        public uint LearnedMsrs;

        /// <summary>The hash of the policy's source text (as `vigil policy show` prints it); zeros for the built-in rules.</summary>
        public fixed byte SourceHash[HashBytes];

        /// <summary>The ESP path of the policy file vigil.efi was told to read (also when it was rejected, and after a handover), or "built-in".</summary>
        public fixed byte Name[NameBytes];

        /// <summary>Why the ESP's policy file is not in force (missing, or rejected: by vigil.efi or by the hypervisor); empty otherwise.</summary>
        public fixed byte Problem[ProblemBytes];
    }

    /// <summary>
    /// The guard's part of the status report: counts only (events hold kernel addresses: ReadEvents, with the secret).
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct GuardStatus
    {
        /// <summary>Slots per object class in the arrays below (GuardObject values index them).</summary>
        public const int ObjectSlots = 16;

        /// <summary>Verdicts per object class in <see cref="Verdicts"/> (GuardVerdict values).</summary>
        public const int VerdictSlots = 4;

        /// <summary>1 when the kernel is guarded (Protect succeeded).</summary>
        public uint Protected;

        /// <summary>1 after Lock (until reset).</summary>
        public uint Locked;

        /// <summary>1 when the rule set is audit-only (blocks become audits).</summary>
        public uint AuditOnly;

        /// <summary>Guest-physical ranges guarded.</summary>
        public uint RangeCount;

        /// <summary>Rules in force and their layout version.</summary>
        public uint RuleCount;

        public uint RuleVersion;

        /// <summary>Events the log holds at most.</summary>
        public uint EventCapacity;

        /// <summary>Bumped whenever pins or ranges change.</summary>
        public uint Generation;

        /// <summary>The newest event's sequence number (0: none yet).</summary>
        public ulong NewestEvent;

        /// <summary>Events the ring overwrote (lost to readers that had not read them).</summary>
        public ulong EventsLost;

        /// <summary>CR0, CR4, EFER bits pinned set.</summary>
        public ulong PinnedCr0;

        public ulong PinnedCr4;

        public ulong PinnedEfer;

        /// <summary>Syscall MSRs pinned (LSTAR, STAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP: 7 when protected).</summary>
        public uint PinnedMsrs;

        /// <summary>1 when IDTR (base and limit) and the GDT limit are pinned.</summary>
        public uint PinnedTables;

        /// <summary>Ranges per object class.</summary>
        public fixed uint Ranges[ObjectSlots];

        /// <summary>Bytes guarded per object class.</summary>
        public fixed ulong Bytes[ObjectSlots];

        /// <summary>Attempts judged per object class and verdict: [object * VerdictSlots + verdict].</summary>
        public fixed ulong Verdicts[ObjectSlots * VerdictSlots];

        /// <summary>Which rule set is in force (GuardRuleSource; None before Protect).</summary>
        public GuardRuleSource RuleSource;

        /// <summary>CPUs whose GDT descriptors the guard checks (it has their snapshot: hv/Core/Guard/GuardDescriptors).</summary>
        public uint GdtWatched;

        /// <summary>Entries of <see cref="Listed"/> filled (at most <see cref="MaxListedRanges"/>; the first ranges in Protect's order).</summary>
        public uint ListedCount;

        /// <summary>
        /// 1 when the ranges were not listed because the caller did not present the agent's secret in RDX (guest-physical
        /// addresses of the kernel weaken its physical KASLR: only the agent sees them; the counts above are for everyone).
        /// </summary>
        public uint RangesHidden;

        /// <summary>The guarded guest-physical ranges (for the agent, see <see cref="RangesHidden"/>).</summary>
        public GuardRangeArray Listed;

        /// <summary>Ranges <see cref="Listed"/> holds at most.</summary>
        public const int MaxListedRanges = 16;
    }

    /// <summary>One guarded guest-physical range in Status. 24 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct GuardRangeStatus
    {
        public ulong Gpa;
        public ulong Size;
        public GuardObject Object;
        private byte _reserved0;
        private ushort _reserved1;
        private uint _reserved2;
    }

    [InlineArray(GuardStatus.MaxListedRanges)]
    public struct GuardRangeArray
    {
        private GuardRangeStatus _element0;
    }

    /// <summary>Where the rule set in force came from (Protect's request).</summary>
    public enum GuardRuleSource : uint
    {
        /// <summary>No Protect yet.</summary>
        None = 0,

        /// <summary>The built-in set (text patches into code loaded after Protect are audited).</summary>
        BuiltIn = 1,

        /// <summary>The built-in set's strict variant (GuardProtectFlags.StrictRules: those patches are blocked).</summary>
        BuiltInStrict = 2,

        /// <summary>A set the caller handed over in the request.</summary>
        HandedOver = 3,

        /// <summary>A compiled policy: the ESP's (from launch) or one `vigild protect --policy` handed over (StatusReport.Policy says which).</summary>
        Policy = 4,
    }
}
