// Basic UEFI types and status codes (UEFI 2.10 §2.3.1, Appendix D).
using System.Runtime.InteropServices;

namespace Vigil.Platform.Uefi
{
    /// <summary>EFI_GUID: 128-bit identifier, Data1-Data3 little-endian, Data4 as bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct EFI_GUID
    {
        public uint Data1;
        public ushort Data2;
        public ushort Data3;
        public fixed byte Data4[8];

        public EFI_GUID(uint d1, ushort d2, ushort d3, byte d40, byte d41, byte d42, byte d43, byte d44, byte d45, byte d46, byte d47)
        {
            Data1 = d1;
            Data2 = d2;
            Data3 = d3;
            Data4[0] = d40;
            Data4[1] = d41;
            Data4[2] = d42;
            Data4[3] = d43;
            Data4[4] = d44;
            Data4[5] = d45;
            Data4[6] = d46;
            Data4[7] = d47;
        }

        public readonly bool Equals(EFI_GUID* other)
        {
            fixed (EFI_GUID* self = &this)
            {
                ulong* a = (ulong*)self;
                ulong* b = (ulong*)other;
                return a[0] == b[0] && a[1] == b[1];
            }
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct EFI_TABLE_HEADER
    {
        public ulong Signature;
        public uint Revision;
        public uint HeaderSize;
        public uint CRC32;
        public uint Reserved;
    }

    /// <summary>EFI_STATUS values (Appendix D): errors have the top bit set.</summary>
    public static class EFI_STATUS
    {
        public const ulong EFI_SUCCESS = 0;
        private const ulong Error = 0x8000000000000000;
        public const ulong EFI_LOAD_ERROR = Error | 1;
        public const ulong EFI_INVALID_PARAMETER = Error | 2;
        public const ulong EFI_UNSUPPORTED = Error | 3;
        public const ulong EFI_BAD_BUFFER_SIZE = Error | 4;
        public const ulong EFI_BUFFER_TOO_SMALL = Error | 5;
        public const ulong EFI_NOT_READY = Error | 6;
        public const ulong EFI_DEVICE_ERROR = Error | 7;
        public const ulong EFI_OUT_OF_RESOURCES = Error | 9;
        public const ulong EFI_NOT_FOUND = Error | 14;
        public const ulong EFI_ACCESS_DENIED = Error | 15;
        public const ulong EFI_ABORTED = Error | 21;
        public const ulong EFI_SECURITY_VIOLATION = Error | 26;
        public const ulong EFI_NOT_STARTED = Error | 19;

        public static bool IsError(ulong status) => (status & Error) != 0;

        /// <summary>The specification's name for a status, for messages.</summary>
        public static string Name(ulong status) => status switch
        {
            EFI_SUCCESS => "EFI_SUCCESS",
            EFI_LOAD_ERROR => "EFI_LOAD_ERROR",
            EFI_INVALID_PARAMETER => "EFI_INVALID_PARAMETER",
            EFI_UNSUPPORTED => "EFI_UNSUPPORTED",
            EFI_BAD_BUFFER_SIZE => "EFI_BAD_BUFFER_SIZE",
            EFI_BUFFER_TOO_SMALL => "EFI_BUFFER_TOO_SMALL",
            EFI_NOT_READY => "EFI_NOT_READY",
            EFI_DEVICE_ERROR => "EFI_DEVICE_ERROR",
            EFI_OUT_OF_RESOURCES => "EFI_OUT_OF_RESOURCES",
            EFI_NOT_FOUND => "EFI_NOT_FOUND",
            EFI_ACCESS_DENIED => "EFI_ACCESS_DENIED",
            EFI_ABORTED => "EFI_ABORTED",
            EFI_SECURITY_VIOLATION => "EFI_SECURITY_VIOLATION",
            EFI_NOT_STARTED => "EFI_NOT_STARTED",
            _ => "EFI status " + ((long)(status & ~Error)).ToString() + (IsError(status) ? " (error)" : " (warning)"),
        };
    }

    /// <summary>EFI_ALLOCATE_TYPE (§7.2 AllocatePages).</summary>
    public enum EFI_ALLOCATE_TYPE
    {
        AllocateAnyPages = 0,
        AllocateMaxAddress = 1,
        AllocateAddress = 2,
    }

    /// <summary>EFI_MEMORY_TYPE (§7.2).</summary>
    public enum EFI_MEMORY_TYPE
    {
        EfiReservedMemoryType = 0,
        EfiLoaderCode = 1,
        EfiLoaderData = 2,
        EfiBootServicesCode = 3,
        EfiBootServicesData = 4,
        EfiRuntimeServicesCode = 5,
        EfiRuntimeServicesData = 6,
        EfiConventionalMemory = 7,
        EfiUnusableMemory = 8,
        EfiACPIReclaimMemory = 9,
        EfiACPIMemoryNVS = 10,
    }

    /// <summary>EFI_RESET_TYPE (§8.5.1 ResetSystem).</summary>
    public enum EFI_RESET_TYPE
    {
        EfiResetCold = 0,
        EfiResetWarm = 1,
        EfiResetShutdown = 2,
    }
}
