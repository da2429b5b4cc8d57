// EFI_SYSTEM_TABLE (UEFI 2.10 §4.3) and EFI_CONFIGURATION_TABLE (§4.6).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_SYSTEM_TABLE
    {
        public EFI_TABLE_HEADER Hdr;
        public char* FirmwareVendor;
        public uint FirmwareRevision;
        public void* ConsoleInHandle;
        public void* ConIn;
        public void* ConsoleOutHandle;
        public EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* ConOut;
        public void* StandardErrorHandle;
        public EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* StdErr;
        public EFI_RUNTIME_SERVICES* RuntimeServices;
        public EFI_BOOT_SERVICES* BootServices;
        public ulong NumberOfTableEntries;
        public EFI_CONFIGURATION_TABLE* ConfigurationTable;
    }

    public unsafe struct EFI_CONFIGURATION_TABLE
    {
        public EFI_GUID VendorGuid;
        public void* VendorTable;

        /// <summary>ACPI 2.0+ RSDP (EFI_ACPI_20_TABLE_GUID).</summary>
        public static readonly EFI_GUID Acpi20TableGuid = new(0x8868E871, 0xE4F1, 0x11D3, 0xBC, 0x22, 0x00, 0x80, 0xC7, 0x3C, 0x88, 0x81);

        /// <summary>ACPI 1.0 RSDP (ACPI_TABLE_GUID).</summary>
        public static readonly EFI_GUID AcpiTableGuid = new(0xEB9D2D30, 0x2D88, 0x11D3, 0x9A, 0x16, 0x00, 0x90, 0x27, 0x3F, 0xC1, 0x4D);
    }
}
