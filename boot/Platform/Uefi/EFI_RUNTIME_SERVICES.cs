// EFI_RUNTIME_SERVICES (UEFI 2.10 §4.5).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_RUNTIME_SERVICES
    {
        public EFI_TABLE_HEADER Hdr;
        public void* GetTime;
        public void* SetTime;
        public void* GetWakeupTime;
        public void* SetWakeupTime;
        public void* SetVirtualAddressMap;
        public void* ConvertPointer;
        public void* GetVariable;
        public void* GetNextVariableName;
        public void* SetVariable;
        public void* GetNextHighMonotonicCount;
        public delegate* unmanaged<EFI_RESET_TYPE, ulong, ulong, void*, void> ResetSystem;
    }
}
