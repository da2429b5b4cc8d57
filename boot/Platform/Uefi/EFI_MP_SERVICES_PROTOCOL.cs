// EFI_MP_SERVICES_PROTOCOL (UEFI PI 1.7 Vol 2 §13.4).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_MP_SERVICES_PROTOCOL
    {
        public delegate* unmanaged<EFI_MP_SERVICES_PROTOCOL*, ulong*, ulong*, ulong> GetNumberOfProcessors;
        public delegate* unmanaged<EFI_MP_SERVICES_PROTOCOL*, ulong, EFI_PROCESSOR_INFORMATION*, ulong> GetProcessorInfo;
        /// <summary>(This, Procedure(void* arg), SingleThread, WaitEvent, TimeoutInMicroSeconds, ProcedureArgument, FailedCpuList).</summary>
        public delegate* unmanaged<EFI_MP_SERVICES_PROTOCOL*, delegate* unmanaged<void*, void>, byte, void*, ulong, void*, ulong**, ulong> StartupAllAPs;
        public void* StartupThisAP;
        public void* SwitchBSP;
        public void* EnableDisableAP;
        public delegate* unmanaged<EFI_MP_SERVICES_PROTOCOL*, ulong*, ulong> WhoAmI;

        public static readonly EFI_GUID Guid = new(0x3FDDA605, 0xA76E, 0x4F46, 0xAD, 0x29, 0x12, 0xF4, 0x53, 0x1B, 0x3D, 0x08);
    }

    /// <summary>EFI_PROCESSOR_INFORMATION, with room for the PI 1.7 extended location.</summary>
    public unsafe struct EFI_PROCESSOR_INFORMATION
    {
        public ulong ProcessorId;   // the local APIC ID
        public uint StatusFlag;
        public uint Package;
        public uint Core;
        public uint Thread;
        public fixed byte ExtendedInformation[24];

        public const uint PROCESSOR_AS_BSP_BIT = 0x1;
        public const uint PROCESSOR_ENABLED_BIT = 0x2;
        public const uint PROCESSOR_HEALTH_STATUS_BIT = 0x4;
    }
}
