// EFI_FILE_PROTOCOL (UEFI 2.10 §13.5).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_FILE_PROTOCOL
    {
        public ulong Revision;
        public delegate* unmanaged<EFI_FILE_PROTOCOL*, EFI_FILE_PROTOCOL**, char*, ulong, ulong, ulong> Open;
        public delegate* unmanaged<EFI_FILE_PROTOCOL*, ulong> Close;
        public void* Delete;
        public delegate* unmanaged<EFI_FILE_PROTOCOL*, ulong*, void*, ulong> Read;
        public void* Write;
        public void* GetPosition;
        public void* SetPosition;
        public void* GetInfo;
        public void* SetInfo;
        public void* Flush;

        public const ulong EFI_FILE_MODE_READ = 0x0000000000000001;
    }
}
