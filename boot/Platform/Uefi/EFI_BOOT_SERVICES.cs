// EFI_BOOT_SERVICES (UEFI 2.10 §4.4). Slots Vigil does not call are kept as void* padding
// so the layout matches the specification.
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_BOOT_SERVICES
    {
        public EFI_TABLE_HEADER Hdr;

        // Task priority services
        public void* RaiseTPL;
        public void* RestoreTPL;

        // Memory services (§7.2)
        public delegate* unmanaged<EFI_ALLOCATE_TYPE, EFI_MEMORY_TYPE, ulong, ulong*, ulong> AllocatePages;
        public delegate* unmanaged<ulong, ulong, ulong> FreePages;
        public delegate* unmanaged<ulong*, void*, ulong*, ulong*, uint*, ulong> GetMemoryMap;
        public delegate* unmanaged<EFI_MEMORY_TYPE, ulong, void**, ulong> AllocatePool;
        public delegate* unmanaged<void*, ulong> FreePool;

        // Event and timer services
        public void* CreateEvent;
        public void* SetTimer;
        public void* WaitForEvent;
        public void* SignalEvent;
        public void* CloseEvent;
        public void* CheckEvent;

        // Protocol handler services (§7.3)
        public void* InstallProtocolInterface;
        public void* ReinstallProtocolInterface;
        public void* UninstallProtocolInterface;
        public delegate* unmanaged<void*, EFI_GUID*, void**, ulong> HandleProtocol;
        public void* Reserved;
        public void* RegisterProtocolNotify;
        public void* LocateHandle;
        public void* LocateDevicePath;
        public delegate* unmanaged<EFI_GUID*, void*, ulong> InstallConfigurationTable;

        // Image services (§7.4)
        public delegate* unmanaged<byte, void*, EFI_DEVICE_PATH_PROTOCOL*, void*, ulong, void**, ulong> LoadImage;
        public delegate* unmanaged<void*, ulong*, char**, ulong> StartImage;
        public void* Exit;
        public delegate* unmanaged<void*, ulong> UnloadImage;
        public void* ExitBootServices;

        // Miscellaneous services (§7.5)
        public void* GetNextMonotonicCount;
        public delegate* unmanaged<ulong, ulong> Stall;
        public delegate* unmanaged<ulong, ulong, ulong, char*, ulong> SetWatchdogTimer;

        // Driver support services
        public void* ConnectController;
        public void* DisconnectController;

        // Open and close protocol services
        public void* OpenProtocol;
        public void* CloseProtocol;
        public void* OpenProtocolInformation;

        // Library services
        public void* ProtocolsPerHandle;
        public void* LocateHandleBuffer;
        public delegate* unmanaged<EFI_GUID*, void*, void**, ulong> LocateProtocol;
        public void* InstallMultipleProtocolInterfaces;
        public void* UninstallMultipleProtocolInterfaces;

        // 32-bit CRC services
        public void* CalculateCrc32;

        // Miscellaneous services
        public void* CopyMem;
        public void* SetMem;
        public void* CreateEventEx;
    }
}
