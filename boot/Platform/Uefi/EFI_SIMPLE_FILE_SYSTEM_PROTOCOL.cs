// EFI_SIMPLE_FILE_SYSTEM_PROTOCOL (UEFI 2.10 §13.4).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_SIMPLE_FILE_SYSTEM_PROTOCOL
    {
        public ulong Revision;
        public delegate* unmanaged<EFI_SIMPLE_FILE_SYSTEM_PROTOCOL*, EFI_FILE_PROTOCOL**, ulong> OpenVolume;

        public static readonly EFI_GUID Guid = new(0x964E5B22, 0x6459, 0x11D2, 0x8E, 0x39, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B);
    }
}
