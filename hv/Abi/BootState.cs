// What vigil.efi did at boot, for the OS to read even when no hypervisor answers (booted unprotected:
// more CPUs than Vigil supports, hypervisor = off, a launch that failed). A volatile UEFI variable
// (BOOTSERVICE_ACCESS | RUNTIME_ACCESS: not stored in flash, gone at the next reset, readable by the
// OS at run time; UEFI 2.10 §8.2) holding ASCII text:
//   "protected cpus=N of M[; policy: P]" the hypervisor runs on N of the machine's M CPUs, with policy P
//                                      (the ESP's file and its source hash, or built-in and why)
//   "unprotected: <reason>"            the OS was started without it, and why
// Linux shows it in efivarfs as /sys/firmware/efi/efivars/VigilBootState-<guid>: 4 bytes of
// attributes, then the text. vigil.efi writes it; vigild status reads it.
namespace Vigil.Abi
{
    public static class BootState
    {
        public const string VariableName = "VigilBootState";

        /// <summary>The vendor GUID, as efivarfs spells it.</summary>
        public const string VendorGuidText = "b78fc943-5ef5-48db-937d-54deaafcf25b";

        public const uint GuidData1 = 0xB78FC943;
        public const ushort GuidData2 = 0x5EF5;
        public const ushort GuidData3 = 0x48DB;

        /// <summary>EFI_GUID.Data4's eight bytes, first byte in the low bits.</summary>
        public const ulong GuidData4 = 0x5BF2_FCAA_DE54_7D93;

        /// <summary>Byte <paramref name="index"/> (0-7) of EFI_GUID.Data4.</summary>
        public static byte GuidData4Byte(int index) => (byte)(GuidData4 >> (8 * index));

        /// <summary>EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS (volatile).</summary>
        public const uint Attributes = 0x6;

        /// <summary>The file name under /sys/firmware/efi/efivars.</summary>
        public const string EfivarsName = VariableName + "-" + VendorGuidText;

        public const string EfivarsDirectory = "/sys/firmware/efi/efivars";

        public const string ProtectedPrefix = "protected";

        public const string UnprotectedPrefix = "unprotected: ";

        /// <summary>Bytes of text the variable holds at most (longer reasons are cut).</summary>
        public const int MaxTextBytes = 240;

        public static string Protected(uint cpus, uint total) => ProtectedPrefix + " cpus=" + cpus.ToString() + " of " + total.ToString();

        public static string Unprotected(string reason) => UnprotectedPrefix + reason;

        /// <summary>The boot state with the policy vigil.efi handed over: "protected cpus=N of M; policy: &lt;what&gt;".</summary>
        public static string WithPolicy(string state, string policy) => state + "; policy: " + policy;
    }
}
