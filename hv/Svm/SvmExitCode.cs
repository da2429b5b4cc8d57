// #VMEXIT codes, the VMCB's EXITCODE field (APM Vol 2 Appendix C, Table C-1), and their mapping onto
// the vendor-neutral ExitReason the status report counts.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Svm
{
    public enum SvmExitCode : ulong
    {
        ReadCr0 = 0x00,
        WriteCr0 = 0x10,
        WriteCr4 = 0x14,
        Exception0 = 0x40,
        Breakpoint = 0x43,
        Exception31 = 0x5F,
        Intr = 0x60,
        Nmi = 0x61,
        Smi = 0x62,
        Init = 0x63,
        Vintr = 0x64,
        IdtrWrite = 0x6A,
        GdtrWrite = 0x6B,
        Cpuid = 0x72,
        Iret = 0x74,
        SoftwareInterrupt = 0x75,
        Invd = 0x76,
        Hlt = 0x78,
        Ioio = 0x7B,
        Msr = 0x7C,
        TaskSwitch = 0x7D,
        Shutdown = 0x7F,
        Vmrun = 0x80,
        Vmmcall = 0x81,
        Vmload = 0x82,
        Vmsave = 0x83,
        Stgi = 0x84,
        Clgi = 0x85,
        Skinit = 0x86,
        Rdtscp = 0x87,
        Wbinvd = 0x89,
        Monitor = 0x8A,
        Mwait = 0x8B,
        Xsetbv = 0x8D,
        NestedPageFault = 0x400,

        /// <summary>VMRUN found invalid guest state (APM Vol 2 15.5.1): -1.</summary>
        Invalid = 0xFFFF_FFFF_FFFF_FFFF,
    }

    public static class SvmExitCodes
    {
        /// <summary>The vendor-neutral counter an exit code counts under.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ExitReason Reason(SvmExitCode code, ulong exitInfo1)
        {
            if (code == SvmExitCode.Cpuid) return ExitReason.Cpuid;   // the commonest exit first (every exit counts)
            ulong c = (ulong)code;
            if (c <= 0x1F) return ExitReason.ControlRegister;
            if (c >= 0x40 && c <= 0x5F) return ExitReason.Exception;
            return code switch
            {
                SvmExitCode.Intr => ExitReason.ExternalInterrupt,
                SvmExitCode.SoftwareInterrupt => ExitReason.Exception,   // INT3/INTO/INTn under QEMU's TCG (hv/Core/Vcpu/BreakpointExit)
                SvmExitCode.Nmi or SvmExitCode.Iret => ExitReason.Nmi,
                SvmExitCode.Init => ExitReason.Init,
                SvmExitCode.Cpuid => ExitReason.Cpuid,
                SvmExitCode.Invd => ExitReason.Invd,
                SvmExitCode.Wbinvd => ExitReason.Wbinvd,
                SvmExitCode.Hlt or SvmExitCode.Mwait or SvmExitCode.Monitor => ExitReason.Halt,
                SvmExitCode.Ioio => ExitReason.Io,
                SvmExitCode.Msr => exitInfo1 == 1 ? ExitReason.MsrWrite : ExitReason.MsrRead,   // EXITINFO1: 0 RDMSR, 1 WRMSR (APM 15.11)
                SvmExitCode.Shutdown => ExitReason.Shutdown,
                SvmExitCode.Vmmcall => ExitReason.Hypercall,
                SvmExitCode.Vmrun or SvmExitCode.Vmload or SvmExitCode.Vmsave or SvmExitCode.Stgi
                    or SvmExitCode.Clgi or SvmExitCode.Skinit => ExitReason.VirtualizationInstruction,
                SvmExitCode.Xsetbv => ExitReason.Xsetbv,
                SvmExitCode.NestedPageFault => ExitReason.NestedPageFault,
                SvmExitCode.IdtrWrite or SvmExitCode.GdtrWrite => ExitReason.DescriptorTable,
                _ => ExitReason.Other,
            };
        }

        public static string Name(SvmExitCode code)
        {
            ulong c = (ulong)code;
            if (c <= 0x0F) return "cr-read";
            if (c <= 0x1F) return "cr-write";
            if (c >= 0x40 && c <= 0x5F) return "exception";
            return code switch
            {
                SvmExitCode.Intr => "intr",
                SvmExitCode.Nmi => "nmi",
                SvmExitCode.Iret => "iret",
                SvmExitCode.Init => "init",
                SvmExitCode.Cpuid => "cpuid",
                SvmExitCode.Hlt => "hlt",
                SvmExitCode.Wbinvd => "wbinvd",
                SvmExitCode.Msr => "msr",
                SvmExitCode.Shutdown => "shutdown",
                SvmExitCode.Vmrun => "vmrun",
                SvmExitCode.Vmmcall => "vmmcall",
                SvmExitCode.NestedPageFault => "npf",
                SvmExitCode.Invalid => "invalid-guest-state",
                _ => "other",
            };
        }
    }
}
