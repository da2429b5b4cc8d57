// Basic VM-exit reasons (SDM Vol 3C Appendix C, Table C-1) and their vendor-neutral category for
// the status report (Vigil.Abi.ExitReason). Pure definitions: compiled into the hypervisor and tests.
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Vmx
{
    public enum VmxExitReason : ushort
    {
        ExceptionOrNmi = 0,
        ExternalInterrupt = 1,
        TripleFault = 2,
        InitSignal = 3,
        StartupIpi = 4,
        IoSmi = 5,
        OtherSmi = 6,
        InterruptWindow = 7,
        NmiWindow = 8,
        TaskSwitch = 9,
        Cpuid = 10,
        Getsec = 11,
        Hlt = 12,
        Invd = 13,
        Invlpg = 14,
        Rdpmc = 15,
        Rdtsc = 16,
        Rsm = 17,
        Vmcall = 18,
        Vmclear = 19,
        Vmlaunch = 20,
        Vmptrld = 21,
        Vmptrst = 22,
        Vmread = 23,
        Vmresume = 24,
        Vmwrite = 25,
        Vmxoff = 26,
        Vmxon = 27,
        ControlRegisterAccess = 28,
        MovDr = 29,
        IoInstruction = 30,
        Rdmsr = 31,
        Wrmsr = 32,
        EntryFailureInvalidGuestState = 33,
        EntryFailureMsrLoading = 34,
        Mwait = 36,
        MonitorTrapFlag = 37,
        Monitor = 39,
        Pause = 40,
        EntryFailureMachineCheck = 41,
        TprBelowThreshold = 43,
        ApicAccess = 44,
        VirtualizedEoi = 45,
        GdtrIdtrAccess = 46,
        LdtrTrAccess = 47,
        EptViolation = 48,
        EptMisconfiguration = 49,
        Invept = 50,
        Rdtscp = 51,
        VmxPreemptionTimerExpired = 52,
        Invvpid = 53,
        Wbinvd = 54,
        Xsetbv = 55,
        ApicWrite = 56,
        Rdrand = 57,
        Invpcid = 58,
        Vmfunc = 59,
        Encls = 60,
        Rdseed = 61,
        PageModificationLogFull = 62,
        Xsaves = 63,
        Xrstors = 64,
    }

    public static class VmxExitReasons
    {
        /// <summary>EXIT_REASON bit 31: the VM entry failed (SDM Vol 3C 25.9.1).</summary>
        public const uint EntryFailureBit = 1u << 31;

        public static VmxExitReason Basic(ulong exitReasonField) => (VmxExitReason)(exitReasonField & 0xFFFF);

        /// <summary>The category the status report counts this exit under.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ExitReason Category(VmxExitReason reason) => reason == VmxExitReason.Cpuid ? ExitReason.Cpuid : reason switch   // the commonest exit first
        {
            VmxExitReason.Vmcall => ExitReason.Hypercall,
            VmxExitReason.Rdmsr => ExitReason.MsrRead,
            VmxExitReason.Wrmsr => ExitReason.MsrWrite,
            VmxExitReason.ControlRegisterAccess => ExitReason.ControlRegister,
            VmxExitReason.Xsetbv => ExitReason.Xsetbv,
            VmxExitReason.Invd => ExitReason.Invd,
            VmxExitReason.Wbinvd => ExitReason.Wbinvd,
            VmxExitReason.EptViolation or VmxExitReason.EptMisconfiguration => ExitReason.NestedPageFault,
            VmxExitReason.InitSignal => ExitReason.Init,
            VmxExitReason.StartupIpi => ExitReason.StartupIpi,
            VmxExitReason.NmiWindow => ExitReason.Nmi,
            VmxExitReason.ExternalInterrupt => ExitReason.ExternalInterrupt,
            VmxExitReason.Vmclear or VmxExitReason.Vmlaunch or VmxExitReason.Vmptrld or VmxExitReason.Vmptrst
                or VmxExitReason.Vmread or VmxExitReason.Vmresume or VmxExitReason.Vmwrite or VmxExitReason.Vmxoff
                or VmxExitReason.Vmxon or VmxExitReason.Invept or VmxExitReason.Invvpid or VmxExitReason.Vmfunc => ExitReason.VirtualizationInstruction,
            VmxExitReason.TripleFault => ExitReason.Shutdown,
            VmxExitReason.IoInstruction => ExitReason.Io,
            VmxExitReason.ExceptionOrNmi => ExitReason.Exception,
            VmxExitReason.GdtrIdtrAccess or VmxExitReason.LdtrTrAccess => ExitReason.DescriptorTable,
            VmxExitReason.Getsec => ExitReason.Getsec,
            VmxExitReason.Hlt => ExitReason.Halt,
            _ => ExitReason.Other,
        };
    }
}
