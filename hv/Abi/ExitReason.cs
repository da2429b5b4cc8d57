// Vendor-neutral exit categories the status report counts (each back end maps its own exit
// codes onto these). Shared by the hypervisor, vigild and the tests.
namespace Vigil.Abi
{
    public enum ExitReason
    {
        Other = 0,
        Cpuid = 1,
        Hypercall = 2,
        MsrRead = 3,
        MsrWrite = 4,
        ControlRegister = 5,
        Xsetbv = 6,
        Invd = 7,
        NestedPageFault = 8,
        Init = 9,
        StartupIpi = 10,
        Nmi = 11,
        ExternalInterrupt = 12,
        VirtualizationInstruction = 13,
        Shutdown = 14,
        Io = 15,
        Exception = 16,
        DescriptorTable = 17,
        Getsec = 18,
        Halt = 19,
        Wbinvd = 20,
    }

    public static class ExitReasons
    {
        /// <summary>Slots in a per-CPU counter array (room to grow without changing the layout).</summary>
        public const int Count = 32;

        public static string Name(ExitReason reason) => reason switch
        {
            ExitReason.Other => "other",
            ExitReason.Cpuid => "cpuid",
            ExitReason.Hypercall => "hypercall",
            ExitReason.MsrRead => "msr-read",
            ExitReason.MsrWrite => "msr-write",
            ExitReason.ControlRegister => "cr-access",
            ExitReason.Xsetbv => "xsetbv",
            ExitReason.Invd => "invd",
            ExitReason.NestedPageFault => "nested-page-fault",
            ExitReason.Init => "init",
            ExitReason.StartupIpi => "sipi",
            ExitReason.Nmi => "nmi",
            ExitReason.ExternalInterrupt => "interrupt",
            ExitReason.VirtualizationInstruction => "vmx-svm-instruction",
            ExitReason.Shutdown => "shutdown",
            ExitReason.Io => "io",
            ExitReason.Exception => "exception",
            ExitReason.DescriptorTable => "descriptor-table",
            ExitReason.Getsec => "getsec",
            ExitReason.Halt => "hlt",
            ExitReason.Wbinvd => "wbinvd",
            _ => "reason-" + ((int)reason).ToString(),
        };
    }
}
