// The hypercall ABI between the guest (vigild, test modules) and the hypervisor. Declared once,
// compiled into the hypervisor (no runtime), vigild, the host tool and the tests.
//
// A hypercall is VMCALL (Intel) or VMMCALL (AMD) with
//   RAX = Signature | function number (low 16 bits)
//   RBX, RCX, RDX = arguments (function-specific)
// and returns RAX = a HypercallStatus, other registers as the function defines. Every argument is
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
        /// <summary>RBX = guest-virtual address of a <see cref="StatusReport"/> buffer, RCX = its size in bytes.</summary>
        Status = 1,
    }

    public enum HypercallStatus : ulong
    {
        Success = 0,
        UnknownFunction = 1,
        BadBufferSize = 2,
        BadAddress = 3,
        NotPermitted = 4,
    }
}
