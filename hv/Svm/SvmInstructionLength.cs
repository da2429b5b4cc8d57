// SVM host, GIF=0: the length of the instruction an exit emulates, to advance RIP over it. NRIP save
// (VMCB.NextRip) is absent under QEMU and decode assists too (APM Vol 2 15.7.1, 15.33), so the
// length comes from a decoder reading the guest's bytes at RIP through its page tables.
// INTERIM: until hv/Core/InstructionLength.cs lands, the fixed encodings of the instructions the
// intercepts emulate (no prefixes: the guests' compilers emit none for them); the switch to the
// decoder is the one line marked below.
namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmInstructionLength
    {
        public static int Of(SvmCpu* cpu, SvmExitCode code) => code switch
        {
            SvmExitCode.Cpuid => 2,     // 0F A2
            SvmExitCode.Msr => 2,       // 0F 32 (RDMSR) / 0F 30 (WRMSR)
            SvmExitCode.Vmmcall => 3,   // 0F 01 D9
            SvmExitCode.Hlt => 1,       // F4
            SvmExitCode.Monitor or SvmExitCode.Mwait => 3,   // 0F 01 C8 / 0F 01 C9
            SvmExitCode.NestedPageFault => cpu->EmulatedLength,   // decoded by the emulation (ApicTrap)
            _ => Decode(cpu),
        };

        /// <summary>The decoder's answer for the instruction at the guest's RIP (0: unknown, RIP stays).</summary>
        private static int Decode(SvmCpu* cpu) => 0;   // → InstructionLength.Decode(guest bytes at RIP) when it lands
    }
}
