// VM-execution, VM-exit and VM-entry control bits (SDM Vol 3C 25.6, 25.7, 25.8) and the capability
// MSRs that say which of them a CPU allows (SDM Vol 3C Appendix A). Pure architecture definitions
// and logic: compiled into the hypervisor and into the tests.
namespace Vigil.Hypervisor.Vmx
{
    /// <summary>Pin-based VM-execution controls (SDM Vol 3C 25.6.1, Table 25-5).</summary>
    [System.Flags]
    public enum PinBasedControls : uint
    {
        None = 0,
        ExternalInterruptExiting = 1u << 0,
        NmiExiting = 1u << 3,
        VirtualNmis = 1u << 5,
        ActivateVmxPreemptionTimer = 1u << 6,
        ProcessPostedInterrupts = 1u << 7,
    }

    /// <summary>Primary processor-based VM-execution controls (SDM Vol 3C 25.6.2, Table 25-6).</summary>
    [System.Flags]
    public enum PrimaryControls : uint
    {
        None = 0,
        InterruptWindowExiting = 1u << 2,
        UseTscOffsetting = 1u << 3,
        HltExiting = 1u << 7,
        InvlpgExiting = 1u << 9,
        MwaitExiting = 1u << 10,
        RdpmcExiting = 1u << 11,
        RdtscExiting = 1u << 12,
        Cr3LoadExiting = 1u << 15,
        Cr3StoreExiting = 1u << 16,
        ActivateTertiaryControls = 1u << 17,
        Cr8LoadExiting = 1u << 19,
        Cr8StoreExiting = 1u << 20,
        UseTprShadow = 1u << 21,
        NmiWindowExiting = 1u << 22,
        MovDrExiting = 1u << 23,
        UnconditionalIoExiting = 1u << 24,
        UseIoBitmaps = 1u << 25,
        MonitorTrapFlag = 1u << 27,
        UseMsrBitmaps = 1u << 28,
        MonitorExiting = 1u << 29,
        PauseExiting = 1u << 30,
        ActivateSecondaryControls = 1u << 31,
    }

    /// <summary>Secondary processor-based VM-execution controls (SDM Vol 3C 25.6.2, Table 25-7).</summary>
    [System.Flags]
    public enum SecondaryControls : uint
    {
        None = 0,
        VirtualizeApicAccesses = 1u << 0,
        EnableEpt = 1u << 1,
        DescriptorTableExiting = 1u << 2,
        EnableRdtscp = 1u << 3,
        VirtualizeX2ApicMode = 1u << 4,
        EnableVpid = 1u << 5,
        WbinvdExiting = 1u << 6,
        UnrestrictedGuest = 1u << 7,
        ApicRegisterVirtualization = 1u << 8,
        VirtualInterruptDelivery = 1u << 9,
        PauseLoopExiting = 1u << 10,
        RdrandExiting = 1u << 11,
        EnableInvpcid = 1u << 12,
        EnableVmFunctions = 1u << 13,
        VmcsShadowing = 1u << 14,
        EnableEnclsExiting = 1u << 15,
        RdseedExiting = 1u << 16,
        EnablePml = 1u << 17,
        EptViolationVe = 1u << 18,
        ConcealVmxFromPt = 1u << 19,
        EnableXsavesXrstors = 1u << 20,
        ModeBasedExecuteControlForEpt = 1u << 22,
        SubPageWritePermissionsForEpt = 1u << 23,
        IntelPtUsesGuestPhysicalAddresses = 1u << 24,
        UseTscScaling = 1u << 25,
        EnableUserWaitAndPause = 1u << 26,
        EnableEnclvExiting = 1u << 28,
    }

    /// <summary>Primary VM-exit controls (SDM Vol 3C 25.7.1, Table 25-13).</summary>
    [System.Flags]
    public enum VmExitControls : uint
    {
        None = 0,
        SaveDebugControls = 1u << 2,
        HostAddressSpaceSize = 1u << 9,
        LoadIa32PerfGlobalCtrl = 1u << 12,
        AcknowledgeInterruptOnExit = 1u << 15,
        SaveIa32Pat = 1u << 18,
        LoadIa32Pat = 1u << 19,
        SaveIa32Efer = 1u << 20,
        LoadIa32Efer = 1u << 21,
        SaveVmxPreemptionTimerValue = 1u << 22,
        ClearIa32Bndcfgs = 1u << 23,
        ConcealVmxFromPt = 1u << 24,
    }

    /// <summary>VM-entry controls (SDM Vol 3C 25.8.1, Table 25-15).</summary>
    [System.Flags]
    public enum VmEntryControls : uint
    {
        None = 0,
        LoadDebugControls = 1u << 2,
        Ia32eModeGuest = 1u << 9,
        EntryToSmm = 1u << 10,
        DeactivateDualMonitorTreatment = 1u << 11,
        LoadIa32PerfGlobalCtrl = 1u << 13,
        LoadIa32Pat = 1u << 14,
        LoadIa32Efer = 1u << 15,
        LoadIa32Bndcfgs = 1u << 16,
        ConcealVmxFromPt = 1u << 17,
    }

    /// <summary>The VMX capability MSRs (SDM Vol 3C Appendix A; Vol 4 Table 2-2).</summary>
    public enum VmxMsr : uint
    {
        Ia32FeatureControl = 0x3A,
        Ia32VmxBasic = 0x480,
        Ia32VmxPinbasedCtls = 0x481,
        Ia32VmxProcbasedCtls = 0x482,
        Ia32VmxExitCtls = 0x483,
        Ia32VmxEntryCtls = 0x484,
        Ia32VmxMisc = 0x485,
        Ia32VmxCr0Fixed0 = 0x486,
        Ia32VmxCr0Fixed1 = 0x487,
        Ia32VmxCr4Fixed0 = 0x488,
        Ia32VmxCr4Fixed1 = 0x489,
        Ia32VmxVmcsEnum = 0x48A,
        Ia32VmxProcbasedCtls2 = 0x48B,
        Ia32VmxEptVpidCap = 0x48C,
        Ia32VmxTruePinbasedCtls = 0x48D,
        Ia32VmxTrueProcbasedCtls = 0x48E,
        Ia32VmxTrueExitCtls = 0x48F,
        Ia32VmxTrueEntryCtls = 0x490,
    }

    /// <summary>IA32_FEATURE_CONTROL bits (SDM Vol 3C 24.7).</summary>
    [System.Flags]
    public enum FeatureControl : ulong
    {
        Lock = 1UL << 0,
        VmxInsideSmx = 1UL << 1,
        VmxOutsideSmx = 1UL << 2,
    }

    /// <summary>IA32_VMX_EPT_VPID_CAP bits Vigil looks at (SDM Vol 3C Appendix A.10).</summary>
    [System.Flags]
    public enum EptVpidCapabilities : ulong
    {
        ExecuteOnly = 1UL << 0,
        PageWalkLength4 = 1UL << 6,
        WriteBackPagingStructures = 1UL << 14,
        Pages2MiB = 1UL << 16,
        Pages1GiB = 1UL << 17,
        Invept = 1UL << 20,
        AccessedDirty = 1UL << 21,
        InveptSingleContext = 1UL << 25,
        InveptAllContexts = 1UL << 26,
        Invvpid = 1UL << 32,
        InvvpidIndividualAddress = 1UL << 40,
        InvvpidSingleContext = 1UL << 41,
        InvvpidAllContexts = 1UL << 42,
    }

    /// <summary>What a CPU's capability MSRs allow, and the adjustment of desired controls to it.</summary>
    public static class VmxCapabilities
    {
        /// <summary>IA32_VMX_BASIC bit 55: the TRUE_* capability MSRs exist (SDM Vol 3C A.1).</summary>
        public const ulong BasicTrueControls = 1UL << 55;

        /// <summary>IA32_VMX_BASIC bits 53:50: memory type for the VMCS (6 = write-back).</summary>
        public static uint VmcsMemoryType(ulong basic) => (uint)((basic >> 50) & 0xF);

        /// <summary>IA32_VMX_BASIC bits 30:0: the VMCS revision identifier.</summary>
        public static uint RevisionId(ulong basic) => (uint)(basic & 0x7FFF_FFFF);

        /// <summary>IA32_VMX_BASIC bits 44:32: bytes to allocate for the VMXON region and VMCS.</summary>
        public static uint RegionSize(ulong basic) => (uint)((basic >> 32) & 0x1FFF);

        /// <summary>The MSR to read for a control's capabilities: the TRUE_ one where IA32_VMX_BASIC bit 55 says it exists (SDM Vol 3C A.2).</summary>
        public static VmxMsr CapabilityMsr(VmxMsr legacy, ulong basic)
        {
            if ((basic & BasicTrueControls) == 0) return legacy;
            return legacy switch
            {
                VmxMsr.Ia32VmxPinbasedCtls => VmxMsr.Ia32VmxTruePinbasedCtls,
                VmxMsr.Ia32VmxProcbasedCtls => VmxMsr.Ia32VmxTrueProcbasedCtls,
                VmxMsr.Ia32VmxExitCtls => VmxMsr.Ia32VmxTrueExitCtls,
                VmxMsr.Ia32VmxEntryCtls => VmxMsr.Ia32VmxTrueEntryCtls,
                _ => legacy,
            };
        }

        /// <summary>
        /// The control value to write: bits the CPU requires (allowed 0-settings, low dword of the capability
        /// MSR, 1 = must be 1) are set, bits it does not allow (allowed 1-settings, high dword, 0 = must be 0)
        /// are cleared (SDM Vol 3C A.3-A.5, 26.2.1.1).
        /// </summary>
        public static uint Adjust(uint desired, ulong capability)
        {
            uint mustBeOne = (uint)capability;
            uint mayBeOne = (uint)(capability >> 32);
            return (desired | mustBeOne) & mayBeOne;
        }

        /// <summary>The desired bits the CPU does not allow (0 when all are available).</summary>
        public static uint Missing(uint desired, ulong capability) => desired & ~(uint)(capability >> 32);

        /// <summary>
        /// A control register value made acceptable in VMX operation: bits set in FIXED0 forced to 1, bits clear in
        /// FIXED1 forced to 0 (SDM Vol 3C 24.8, A.7, A.8).
        /// </summary>
        public static ulong ApplyFixedBits(ulong value, ulong fixed0, ulong fixed1) => (value | fixed0) & fixed1;
    }
}
