// The Protect hypercall's request (HypercallFunction.Protect, RBX/RCX): flags and hints. Hints are
// addresses the agent read from /proc/kallsyms; the hypervisor checks each against what it found in
// the kernel's own page tables and reports it accepted or rejected. A hint never shrinks or moves
// what is guarded. Blittable, fixed layout (tests check it).
using System.Runtime.InteropServices;

namespace Vigil.Abi
{
    /// <summary>Request flags.</summary>
    [System.Flags]
    public enum GuardProtectFlags : uint
    {
        None = 0,

        /// <summary>Lock right after protecting (one call: nothing can run between the two).</summary>
        Lock = 1 << 0,

        /// <summary>The built-in rule set's strict variant (text patches into code loaded after Protect are blocked).</summary>
        StrictRules = 1 << 1,

        /// <summary>Audit only: every block becomes audit (for rollout; Status says so).</summary>
        AuditOnly = 1 << 2,
    }

    /// <summary>One bit per hint, in the verdict bit masks Protect returns in RSI.</summary>
    [System.Flags]
    public enum GuardHint : uint
    {
        None = 0,

        /// <summary>sys_call_table: must lie in read-only data the walk found; its page(s) become SysCallTable.</summary>
        SysCallTable = 1 << 0,

        /// <summary>_stext.._etext: both ends must lie in code the walk found.</summary>
        KernelText = 1 << 1,

        /// <summary>__start_rodata..__end_rodata: both ends must lie in read-only data the walk found.</summary>
        ReadOnlyData = 1 << 2,

        /// <summary>idt_table: must translate to the page of this CPU's IDT.</summary>
        InterruptTable = 1 << 3,
    }

    /// <summary>The Protect request. 128 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct GuardProtectRequest
    {
        /// <summary>"VIGILPRO" as little-endian bytes.</summary>
        public const ulong ExpectedSignature = 0x4F52_504C_4947_4956;

        public const uint CurrentVersion = 1;

        public ulong Signature;
        public uint Version;

        /// <summary>sizeof(GuardProtectRequest).</summary>
        public uint Size;

        public GuardProtectFlags Flags;
        private uint _reserved0;

        /// <summary>Guest-virtual address of sys_call_table (0: no hint).</summary>
        public ulong SysCallTable;

        /// <summary>_stext and _etext (both 0: no hint).</summary>
        public ulong TextStart;

        public ulong TextEnd;

        /// <summary>__start_rodata and __end_rodata (both 0: no hint).</summary>
        public ulong ReadOnlyDataStart;

        public ulong ReadOnlyDataEnd;

        /// <summary>idt_table (0: no hint).</summary>
        public ulong InterruptTable;

        /// <summary>
        /// Guest-virtual address of a rule set to use instead of the built-in one: a <see cref="GuardRuleSetHeader"/>
        /// followed by its rules (0: the built-in set). Validated whole; a bad set fails the call with BadRequest.
        /// </summary>
        public ulong RuleSet;

        /// <summary>Bytes at <see cref="RuleSet"/>.</summary>
        public ulong RuleSetSize;

        /// <summary>
        /// Guest-virtual address of a compiled policy (`vigil policy compile`, the file vigil.efi reads from the ESP) to put in
        /// force instead of the rules in force (0: none). Copied into the hypervisor's memory and validated whole there
        /// (GuardPolicyImage.Validate); a bad policy fails the call with BadRequest and changes nothing. Not together with
        /// <see cref="RuleSet"/> or StrictRules.
        /// </summary>
        public ulong PolicyImage;

        /// <summary>Bytes at <see cref="PolicyImage"/> (at most LaunchParameters.MaxPolicyBytes).</summary>
        public ulong PolicyImageSize;

        private ulong _reserved3;
        private ulong _reserved4;
        private ulong _reserved5;

        /// <summary>A request with the signature, version and size filled in.</summary>
        public static GuardProtectRequest Create(GuardProtectFlags flags)
        {
            var r = default(GuardProtectRequest);
            r.Signature = ExpectedSignature;
            r.Version = CurrentVersion;
            r.Size = 128;
            r.Flags = flags;
            return r;
        }

        /// <summary>True when the reserved fields are zero (a request from a later version is refused, not half-read).</summary>
        public readonly bool ReservedClear => _reserved0 == 0 && _reserved3 == 0 && _reserved4 == 0 && _reserved5 == 0;
    }
}
