// EFI_LOADED_IMAGE_PROTOCOL (UEFI 2.10 §9.1).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_LOADED_IMAGE_PROTOCOL
    {
        public uint Revision;
        public void* ParentHandle;
        public EFI_SYSTEM_TABLE* SystemTable;
        public void* DeviceHandle;
        public EFI_DEVICE_PATH_PROTOCOL* FilePath;
        public void* Reserved;
        public uint LoadOptionsSize;
        public void* LoadOptions;
        public void* ImageBase;
        public ulong ImageSize;
        public EFI_MEMORY_TYPE ImageCodeType;
        public EFI_MEMORY_TYPE ImageDataType;
        public void* Unload;

        public static readonly EFI_GUID Guid = new(0x5B1B31A1, 0x9562, 0x11D2, 0x8E, 0x3F, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B);
    }
}
