// The kernel guard's data, shared by the hypervisor (rules, events), vigild (events, status) and the
// host tool (a policy compiler later). Blittable, fixed layouts (tests check them); the rule list is
// data with a version, so rules can be written elsewhere and handed over.
using System.Runtime.InteropServices;

namespace Vigil.Abi
{
    /// <summary>What an attempt touched. One class per thing a rule can name.</summary>
    public enum GuardObject : byte
    {
        None = 0,

        /// <summary>A page of the core kernel's code (what the kernel maps executable and read-only at Protect).</summary>
        KernelText = 1,

        /// <summary>A page of the kernel's read-only data (.rodata, __ro_after_init), other than the pages below.</summary>
        KernelReadOnlyData = 2,

        /// <summary>The page(s) holding sys_call_table (part of .rodata, named on its own for rules and events).</summary>
        SysCallTable = 3,

        /// <summary>A page holding an IDT of a CPU.</summary>
        InterruptTable = 4,

        /// <summary>IDTR: LIDT.</summary>
        InterruptTableRegister = 5,

        /// <summary>GDTR: LGDT.</summary>
        GlobalTableRegister = 6,

        /// <summary>A pinned bit of CR0 (WP).</summary>
        ControlRegister0 = 7,

        /// <summary>A pinned bit of CR4 (SMEP, SMAP, UMIP where set).</summary>
        ControlRegister4 = 8,

        /// <summary>A pinned bit of EFER (NXE, SCE).</summary>
        Efer = 9,

        /// <summary>A syscall MSR (LSTAR, STAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP): the event's Detail names it.</summary>
        SyscallMsr = 10,

        /// <summary>The hypervisor's own memory (always guarded, from launch).</summary>
        HypervisorMemory = 11,

        /// <summary>
        /// A descriptor of a CPU's GDT (checked, not write-protected: hv/Core/Guard/GuardDescriptors): a fixed entry that
        /// changed, or an LDT/TLS slot holding what Linux never puts there. The event's Detail is the entry index.
        /// </summary>
        GlobalTableDescriptor = 12,
    }

    /// <summary>How the object was touched.</summary>
    public enum GuardAccess : byte
    {
        None = 0,

        /// <summary>A store to a guarded page (decoded: destination, size, value).</summary>
        Write = 1,

        /// <summary>A load from memory the guest may not read (the hypervisor's).</summary>
        Read = 2,

        /// <summary>MOV to CR0/CR4, WRMSR to EFER or a syscall MSR, LIDT, LGDT.</summary>
        RegisterWrite = 3,
    }

    /// <summary>Where the instruction that tried it lies (its RIP), as the hypervisor classifies it.</summary>
    public enum ActorRegion : byte
    {
        Unknown = 0,

        /// <summary>The core kernel's code, as it was at Protect.</summary>
        KernelText = 1,

        /// <summary>The module area (0xffffffffc0000000-0xffffffffff000000): modules, ftrace/BPF trampolines.</summary>
        ModuleArea = 2,

        /// <summary>Other kernel addresses (the upper half outside the two above: vmalloc, direct map, ...).</summary>
        KernelOther = 3,

        /// <summary>The lower half (user space).</summary>
        User = 4,
    }

    /// <summary>
    /// What the hypervisor found about the content of an attempt, a flag each; a rule may require one. Found
    /// from the write or value itself and the kernel's state at Protect, never from what the guest claims.
    /// </summary>
    [System.Flags]
    public enum GuardContent : ushort
    {
        None = 0,

        /// <summary>The write makes or continues one of the kernel's text-patch shapes at an instruction (NOP ↔ JMP/CALL, INT3 protocol, ...) whose JMP/CALL destination is code the kernel had at Protect.</summary>
        KernelPatch = 1 << 0,

        /// <summary>A text-patch shape whose JMP/CALL leads into code the kernel did not have at Protect (a trampoline of a module loaded since).</summary>
        JumpIntoNewCode = 1 << 1,

        /// <summary>The new value clears a pinned bit (CR0.WP, CR4.SMEP/SMAP/UMIP, EFER.NXE/SCE).</summary>
        PinnedBitCleared = 1 << 2,

        /// <summary>The new value is one the hypervisor expects: the same as at Protect (an MSR rewritten by CPU bring-up), a known table base for LIDT/LGDT.</summary>
        ExpectedValue = 1 << 3,

        /// <summary>The instruction could not be decoded: the write's destination or value is unknown.</summary>
        Undecodable = 1 << 4,

        /// <summary>The new content equals the old (a write that changes nothing).</summary>
        Unchanged = 1 << 5,

        /// <summary>Not an instruction's store: the guest's page walker setting an accessed/dirty bit in an entry on a guarded page.</summary>
        PageWalkUpdate = 1 << 6,
    }

    /// <summary>What happens to the attempt.</summary>
    public enum GuardVerdict : byte
    {
        /// <summary>The write or instruction takes effect, nothing is recorded.</summary>
        Allow = 0,

        /// <summary>It takes effect and an event is recorded.</summary>
        Audit = 1,

        /// <summary>It does not take effect (the old value stays), the guest continues after the instruction; recorded.</summary>
        Block = 2,

        /// <summary>Blocked, and a fault is injected into the offending context (#GP for CR/MSR/LIDT/LGDT, #PF for memory); recorded.</summary>
        BlockAndFault = 3,
    }

    /// <summary>Whether a rule applies before Lock, after it, or always.</summary>
    public enum LockCondition : byte
    {
        Any = 0,
        Unlocked = 1,
        Locked = 2,
    }

    /// <summary>
    /// One rule: every condition must hold (a zero mask or range means "any"). The first rule that matches an
    /// attempt gives its verdict. 64 bytes.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct GuardRule
    {
        /// <summary>Bit (1 &lt;&lt; GuardObject) per object class; 0 = any.</summary>
        public uint Objects;

        /// <summary>Bit (1 &lt;&lt; GuardAccess) per access; 0 = any.</summary>
        public byte Accesses;

        /// <summary>Bit (1 &lt;&lt; ActorRegion) per region; 0 = any.</summary>
        public byte Regions;

        /// <summary>Bit (1 &lt;&lt; CPL) per privilege level; 0 = any.</summary>
        public byte Cpls;

        public LockCondition Lock;

        /// <summary>Content flags that must all be present (0 = any content).</summary>
        public GuardContent ContentAll;

        /// <summary>Content flags that must all be absent.</summary>
        public GuardContent ContentNone;

        public GuardVerdict Verdict;

        private byte _reserved0;
        private ushort _reserved1;

        /// <summary>Actor RIP range, inclusive; both 0 = any.</summary>
        public ulong RipFirst;

        public ulong RipLast;

        /// <summary>The actor's CR3 (address bits only); 0 = any.</summary>
        public ulong Cr3;

        /// <summary>For SyscallMsr: the MSR index; for control registers: the bits concerned; 0 = any.</summary>
        public ulong Detail;

        private ulong _reserved2;

        private ulong _reserved3;
    }

    /// <summary>The header before the rules of a rule set.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct GuardRuleSetHeader
    {
        /// <summary>"VIGILRUL" as little-endian bytes.</summary>
        public const ulong ExpectedSignature = 0x4C55_524C_4947_4956;

        /// <summary>The layout version of <see cref="GuardRule"/> this header introduces.</summary>
        public const uint CurrentVersion = 1;

        /// <summary>Rules a set may hold (the hypervisor keeps them in a fixed array).</summary>
        public const int MaxRules = 64;

        public ulong Signature;
        public uint Version;
        public uint Count;

        /// <summary>The verdict when no rule matches.</summary>
        public GuardVerdict Default;

        /// <summary>1: audit only (every block becomes audit; for rollout, said loudly in Status).</summary>
        public byte AuditOnly;

        private ushort _reserved0;
        private uint _reserved1;
    }

    /// <summary>
    /// One recorded attempt, as readers get it (copies: no reader can change or hide what another reads).
    /// 112 bytes.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct GuardEvent
    {
        public const int ContentBytes = 16;

        /// <summary>The rule index for "no rule matched, the default verdict applied".</summary>
        public const ushort DefaultRule = 0xFFFF;

        /// <summary>1, 2, 3, ... in the order attempts were judged, over all CPUs.</summary>
        public ulong Sequence;

        public ulong Tsc;

        public ushort Cpu;
        public GuardObject Object;
        public GuardAccess Access;
        public GuardVerdict Verdict;
        public ActorRegion Region;
        public byte Cpl;

        /// <summary>Bytes of <see cref="Old"/> and <see cref="New"/> that are meaningful (at most 16).</summary>
        public byte ContentLength;

        public ushort Rule;
        public GuardContent Content;

        private uint _reserved0;

        /// <summary>Guest-physical address written (memory) or 0.</summary>
        public ulong Gpa;

        /// <summary>Guest-linear address written (memory), the table base (LIDT/LGDT) or 0.</summary>
        public ulong Linear;

        public ulong Rip;
        public ulong Cr3;

        /// <summary>MSR index, CR number, or the write's full size when it exceeds 16 bytes.</summary>
        public ulong Detail;

        private ulong _reserved1;

        public fixed byte Old[ContentBytes];
        public fixed byte New[ContentBytes];
    }
}
