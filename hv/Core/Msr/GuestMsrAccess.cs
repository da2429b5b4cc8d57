// RDMSR and WRMSR executed by the host on the guest's behalf: the pass-through MSRs that exit only
// because they lie outside the MSR map (MsrPolicy), and the intercepted ones whose emulation ends in
// the real MSR (the x2APIC ICR, IA32_FEATURE_CONTROL's value). The CPU's answer is the guest's answer:
// the value, or the #GP the hardware raised — which the host catches (IMsrInstructions' hardware
// implementation, hv/Host/HostSafeMsr.cs, through the host #GP fix-up) and the caller reflects to the
// guest. Never a host fault, never a #GP the hardware did not raise.
// Compiled twice: into the hypervisor (no runtime) and into the tests (with a fake CPU).
namespace Vigil.Hypervisor.Core.Msr
{
    /// <summary>RDMSR/WRMSR that report a #GP instead of raising it in the host.</summary>
    public interface IMsrInstructions
    {
        /// <summary>RDMSR; false when the CPU raised #GP (<paramref name="value"/> is then 0).</summary>
        bool TryRead(uint msr, out ulong value);

        /// <summary>WRMSR; false when the CPU raised #GP (nothing was written).</summary>
        bool TryWrite(uint msr, ulong value);
    }

    public static class GuestMsrAccess
    {
        /// <summary>
        /// The guest's RDMSR (ECX = MSR) on the hardware: EDX:EAX = the value (upper halves of RAX/RDX cleared,
        /// SDM Vol 2B RDMSR). False, registers untouched, when the CPU raised #GP: inject #GP, do not skip.
        /// </summary>
        public static bool Read<TMsr>(ref TMsr cpu, ref GuestRegisters registers)
            where TMsr : struct, IMsrInstructions
        {
            if (!cpu.TryRead((uint)registers.Rcx, out ulong value)) return false;
            registers.Rax = (uint)value;
            registers.Rdx = value >> 32;
            return true;
        }

        /// <summary>The guest's WRMSR (ECX = MSR, EDX:EAX = value) on the hardware; false when the CPU raised #GP.</summary>
        public static bool Write<TMsr>(ref TMsr cpu, in GuestRegisters registers)
            where TMsr : struct, IMsrInstructions
            => cpu.TryWrite((uint)registers.Rcx, WrittenValue(registers));

        /// <summary>The value a WRMSR writes: EDX:EAX (the upper halves of RAX and RDX are ignored).</summary>
        public static ulong WrittenValue(in GuestRegisters registers) => (registers.Rdx << 32) | (uint)registers.Rax;
    }
}
