// The hypercall ABI between the guest (vigild, test modules) and the hypervisor. Declared once,
// compiled into the hypervisor (no runtime), vigild, the host tool and the tests.
//
// A hypercall is VMCALL (Intel) or VMMCALL (AMD) with
//   RAX = Signature | function number (low 16 bits)
//   RBX, RCX, RDX, RSI = arguments (function-specific)
// and returns RAX = a HypercallStatus, other registers as the function defines (registers a function
// does not name come back unchanged). Every argument is
// validated; a bad call gets an error status, never a crash. Without Vigil, the instruction raises
// #UD: ask CPUID leaf 0x40000000 for the vendor string first.
namespace Vigil.Abi
{
    public static class Hypercall
    {
        /// <summary>"VIGIL" in the top 40 bits of RAX: a call that lacks it is not for Vigil.</summary>
        public const ulong Signature = 0x5649_4749_4C00_0000;

        public const ulong SignatureMask = 0xFFFF_FFFF_FF00_0000;

        public const ulong FunctionMask = 0x0000_0000_0000_FFFF;

        /// <summary>CPUID leaf with the vendor signature in EBX, ECX, EDX ("VigilVigilVi"), EAX = highest leaf.</summary>
        public const uint CpuidVendorLeaf = 0x40000000;

        /// <summary>CPUID leaf with the interface version: EAX = "Vig0" interface, EBX = version (major &lt;&lt; 16 | minor &lt;&lt; 8 | patch).</summary>
        public const uint CpuidInterfaceLeaf = 0x40000001;

        public const uint CpuidVendorEbx = 0x69676956;   // "Vigi"
        public const uint CpuidVendorEcx = 0x6769566C;   // "lVig"
        public const uint CpuidVendorEdx = 0x69566C69;   // "ilVi" -> "VigilVigilVi"

        public const uint CpuidInterfaceSignature = 0x30676956;   // "Vig0"

        public const uint VersionMajor = 0;
        public const uint VersionMinor = 1;
        public const uint VersionPatch = 0;

        public static uint Version => (VersionMajor << 16) | (VersionMinor << 8) | VersionPatch;

        public static ulong Rax(HypercallFunction function) => Signature | (ushort)function;
    }

    public enum HypercallFunction : ushort
    {
        /// <summary>
        /// RBX = guest-virtual address of a <see cref="StatusReport"/> buffer, RCX = its size in bytes. Returns RCX = the
        /// size the report needs. Open to every caller: the report holds counts, never event contents.
        /// </summary>
        Status = 1,

        /// <summary>
        /// Start guarding the running kernel (found by the hypervisor itself: the kernel's page tables, this CPU's
        /// registers). RBX = guest-virtual address of a <see cref="GuardProtectRequest"/> (flags and hints such as
        /// sys_call_table's address from /proc/kallsyms: checked, never trusted), or 0 for none; RCX = its size;
        /// RDX = the secret (0 on the first call). Returns RDX = the secret on the first successful call (0 on later
        /// ones), RCX = the ranges guarded, RSI = the hints' verdicts (<see cref="GuardHint"/> bits: accepted in bits
        /// 31:0, rejected in bits 63:32). A later call with the secret (before Lock) rediscovers and adds what is new;
        /// nothing is ever unguarded. After Lock, or without the secret: NotPermitted.
        /// </summary>
        Protect = 2,

        /// <summary>
        /// One way until reset: afterwards Protect, Lock and rule changes answer NotPermitted. RDX = the secret;
        /// RBX = 0 (reserved). NotPermitted before Protect or without the secret.
        /// </summary>
        Lock = 3,

        /// <summary>
        /// Copies of the guard's events after a sequence number, oldest first. RBX = guest-virtual address of a buffer
        /// of <see cref="GuardEvent"/>s, RCX = its size in bytes (at least one event), RDX = the secret, RSI = the
        /// sequence number to read after (0: from the oldest held). Returns RBX = events copied, RCX = the newest
        /// sequence number, RSI = events after the cursor the ring overwrote before this read (missed). BadBufferSize
        /// returns RCX = the size of one event. Needs the secret: events hold kernel addresses.
        /// </summary>
        ReadEvents = 4,
    }

    public enum HypercallStatus : ulong
    {
        Success = 0,
        UnknownFunction = 1,
        BadBufferSize = 2,
        BadAddress = 3,
        NotPermitted = 4,

        /// <summary>
        /// Protect cannot guard this kernel: the caller is not in 4-level or 5-level paging, no kernel code was found
        /// in its page tables, the guarded ranges or the nested map's table reserve ran out, or the event log is
        /// missing. Nothing that was guarded before is unguarded.
        /// </summary>
        Unsupported = 5,

        /// <summary>Bad content in a request (signature, version, a reserved field, an invalid rule set).</summary>
        BadRequest = 6,
    }
}
