// VMCS field encodings (SDM Vol 3C Appendix B, "Field Encoding in VMCS"; layout of an encoding in
// 25.11.2: bit 0 access type, bits 9:1 index, bits 11:10 type, bits 14:13 width). Pure
// architecture definitions: compiled into the hypervisor and into the tests.
namespace Vigil.Hypervisor.Vmx
{
    /// <summary>Width of a VMCS field: encoding bits 14:13 (SDM Vol 3C 25.11.2, Table 25-21).</summary>
    public enum VmcsWidth
    {
        Bits16 = 0,
        Bits64 = 1,
        Bits32 = 2,
        Natural = 3,
    }

    /// <summary>Type of a VMCS field: encoding bits 11:10 (SDM Vol 3C 25.11.2).</summary>
    public enum VmcsFieldType
    {
        Control = 0,
        ExitInformation = 1,
        GuestState = 2,
        HostState = 3,
    }

    /// <summary>Every VMCS field Vigil uses, by its SDM name (SDM Vol 3C Appendix B, Tables B-1 to B-14).</summary>
    public enum VmcsField : uint
    {
        // B.1.1 16-bit control fields
        VirtualProcessorIdentifier = 0x0000,
        PostedInterruptNotificationVector = 0x0002,
        EptpIndex = 0x0004,

        // B.1.2 16-bit guest-state fields
        GuestEsSelector = 0x0800,
        GuestCsSelector = 0x0802,
        GuestSsSelector = 0x0804,
        GuestDsSelector = 0x0806,
        GuestFsSelector = 0x0808,
        GuestGsSelector = 0x080A,
        GuestLdtrSelector = 0x080C,
        GuestTrSelector = 0x080E,
        GuestInterruptStatus = 0x0810,
        GuestPmlIndex = 0x0812,

        // B.1.3 16-bit host-state fields
        HostEsSelector = 0x0C00,
        HostCsSelector = 0x0C02,
        HostSsSelector = 0x0C04,
        HostDsSelector = 0x0C06,
        HostFsSelector = 0x0C08,
        HostGsSelector = 0x0C0A,
        HostTrSelector = 0x0C0C,

        // B.2.1 64-bit control fields
        IoBitmapAAddress = 0x2000,
        IoBitmapBAddress = 0x2002,
        MsrBitmapAddress = 0x2004,
        VmExitMsrStoreAddress = 0x2006,
        VmExitMsrLoadAddress = 0x2008,
        VmEntryMsrLoadAddress = 0x200A,
        ExecutiveVmcsPointer = 0x200C,
        PmlAddress = 0x200E,
        TscOffset = 0x2010,
        VirtualApicAddress = 0x2012,
        ApicAccessAddress = 0x2014,
        PostedInterruptDescriptorAddress = 0x2016,
        VmFunctionControls = 0x2018,
        EptPointer = 0x201A,
        EoiExitBitmap0 = 0x201C,
        EoiExitBitmap1 = 0x201E,
        EoiExitBitmap2 = 0x2020,
        EoiExitBitmap3 = 0x2022,
        EptpListAddress = 0x2024,
        VmreadBitmapAddress = 0x2026,
        VmwriteBitmapAddress = 0x2028,
        VirtualizationExceptionInformationAddress = 0x202A,
        XssExitingBitmap = 0x202C,
        EnclsExitingBitmap = 0x202E,
        TscMultiplier = 0x2032,

        // B.2.2 64-bit read-only data field
        GuestPhysicalAddress = 0x2400,

        // B.2.3 64-bit guest-state fields
        VmcsLinkPointer = 0x2800,
        GuestIa32Debugctl = 0x2802,
        GuestIa32Pat = 0x2804,
        GuestIa32Efer = 0x2806,
        GuestIa32PerfGlobalCtrl = 0x2808,
        GuestPdpte0 = 0x280A,
        GuestPdpte1 = 0x280C,
        GuestPdpte2 = 0x280E,
        GuestPdpte3 = 0x2810,
        GuestIa32Bndcfgs = 0x2812,

        // B.2.4 64-bit host-state fields
        HostIa32Pat = 0x2C00,
        HostIa32Efer = 0x2C02,
        HostIa32PerfGlobalCtrl = 0x2C04,

        // B.3.1 32-bit control fields
        PinBasedVmExecutionControls = 0x4000,
        PrimaryProcessorBasedVmExecutionControls = 0x4002,
        ExceptionBitmap = 0x4004,
        PageFaultErrorCodeMask = 0x4006,
        PageFaultErrorCodeMatch = 0x4008,
        Cr3TargetCount = 0x400A,
        VmExitControls = 0x400C,
        VmExitMsrStoreCount = 0x400E,
        VmExitMsrLoadCount = 0x4010,
        VmEntryControls = 0x4012,
        VmEntryMsrLoadCount = 0x4014,
        VmEntryInterruptionInformation = 0x4016,
        VmEntryExceptionErrorCode = 0x4018,
        VmEntryInstructionLength = 0x401A,
        TprThreshold = 0x401C,
        SecondaryProcessorBasedVmExecutionControls = 0x401E,
        PleGap = 0x4020,
        PleWindow = 0x4022,

        // B.3.2 32-bit read-only data fields
        VmInstructionError = 0x4400,
        ExitReason = 0x4402,
        VmExitInterruptionInformation = 0x4404,
        VmExitInterruptionErrorCode = 0x4406,
        IdtVectoringInformation = 0x4408,
        IdtVectoringErrorCode = 0x440A,
        VmExitInstructionLength = 0x440C,
        VmExitInstructionInformation = 0x440E,

        // B.3.3 32-bit guest-state fields
        GuestEsLimit = 0x4800,
        GuestCsLimit = 0x4802,
        GuestSsLimit = 0x4804,
        GuestDsLimit = 0x4806,
        GuestFsLimit = 0x4808,
        GuestGsLimit = 0x480A,
        GuestLdtrLimit = 0x480C,
        GuestTrLimit = 0x480E,
        GuestGdtrLimit = 0x4810,
        GuestIdtrLimit = 0x4812,
        GuestEsAccessRights = 0x4814,
        GuestCsAccessRights = 0x4816,
        GuestSsAccessRights = 0x4818,
        GuestDsAccessRights = 0x481A,
        GuestFsAccessRights = 0x481C,
        GuestGsAccessRights = 0x481E,
        GuestLdtrAccessRights = 0x4820,
        GuestTrAccessRights = 0x4822,
        GuestInterruptibilityState = 0x4824,
        GuestActivityState = 0x4826,
        GuestSmbase = 0x4828,
        GuestIa32SysenterCs = 0x482A,
        VmxPreemptionTimerValue = 0x482E,

        // B.3.4 32-bit host-state field
        HostIa32SysenterCs = 0x4C00,

        // B.4.1 natural-width control fields
        Cr0GuestHostMask = 0x6000,
        Cr4GuestHostMask = 0x6002,
        Cr0ReadShadow = 0x6004,
        Cr4ReadShadow = 0x6006,
        Cr3TargetValue0 = 0x6008,
        Cr3TargetValue1 = 0x600A,
        Cr3TargetValue2 = 0x600C,
        Cr3TargetValue3 = 0x600E,

        // B.4.2 natural-width read-only data fields
        ExitQualification = 0x6400,
        IoRcx = 0x6402,
        IoRsi = 0x6404,
        IoRdi = 0x6406,
        IoRip = 0x6408,
        GuestLinearAddress = 0x640A,

        // B.4.3 natural-width guest-state fields
        GuestCr0 = 0x6800,
        GuestCr3 = 0x6802,
        GuestCr4 = 0x6804,
        GuestEsBase = 0x6806,
        GuestCsBase = 0x6808,
        GuestSsBase = 0x680A,
        GuestDsBase = 0x680C,
        GuestFsBase = 0x680E,
        GuestGsBase = 0x6810,
        GuestLdtrBase = 0x6812,
        GuestTrBase = 0x6814,
        GuestGdtrBase = 0x6816,
        GuestIdtrBase = 0x6818,
        GuestDr7 = 0x681A,
        GuestRsp = 0x681C,
        GuestRip = 0x681E,
        GuestRflags = 0x6820,
        GuestPendingDebugExceptions = 0x6822,
        GuestIa32SysenterEsp = 0x6824,
        GuestIa32SysenterEip = 0x6826,

        // B.4.4 natural-width host-state fields
        HostCr0 = 0x6C00,
        HostCr3 = 0x6C02,
        HostCr4 = 0x6C04,
        HostFsBase = 0x6C06,
        HostGsBase = 0x6C08,
        HostTrBase = 0x6C0A,
        HostGdtrBase = 0x6C0C,
        HostIdtrBase = 0x6C0E,
        HostIa32SysenterEsp = 0x6C10,
        HostIa32SysenterEip = 0x6C12,
        HostRsp = 0x6C14,
        HostRip = 0x6C16,
    }

    public static class VmcsFields
    {
        public static VmcsWidth Width(VmcsField field) => (VmcsWidth)(((uint)field >> 13) & 3);

        public static VmcsFieldType Type(VmcsField field) => (VmcsFieldType)(((uint)field >> 10) & 3);

        /// <summary>Bit 0: the high 32 bits of a 64-bit field (Vigil never uses that form in 64-bit mode).</summary>
        public static bool IsHighAccess(VmcsField field) => ((uint)field & 1) != 0;
    }
}
