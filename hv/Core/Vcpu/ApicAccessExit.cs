// A write to the xAPIC page (read-only in the EPT/NPT: an EPT violation or #NPF), for both back ends: the
// instruction at CS:RIP is fetched through the guest's page walk (GuestCode) and applied to the real local
// APIC (ApicPage.Emulate: INIT and start-up IPIs to virtualized CPUs are caught there). Only 64-bit code is
// decoded (MmioInstruction); anything else returns 0 and the back end's defined outcome applies (the guest
// stops on this CPU with its state logged; never a wrong emulation). The VM-exit instruction length is not
// valid for EPT violations (SDM Vol 3C 28.2.5), so the emulation's own length is the one to skip.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public static unsafe class ApicAccessExit
    {
        /// <summary>Emulates the access to <paramref name="apic"/> + (<paramref name="gpa"/> &amp; 0xFFF); the instruction's length, 0 if it cannot.</summary>
        public static int Emulate<T, TMemory>(ref T vcpu, ref TMemory memory, byte* apic, ulong gpa)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            if (vcpu.Mode != CpuMode.Bits64) return 0;   // the MMIO decoder knows 64-bit code only
            byte* code = stackalloc byte[InstructionLength.MaxLength];
            var bytes = new System.Span<byte>(code, InstructionLength.MaxLength);
            int read = GuestCode.Fetch(ref memory, VcpuState.Paging(ref vcpu), vcpu.Rip, true, bytes, vcpu.ReservedBase, vcpu.ReservedSize);
            if (read == 0) return 0;
            for (int i = read; i < InstructionLength.MaxLength; i++) code[i] = 0;
            ulong rsp = vcpu.Rsp;
            int length = ApicPage.Emulate(apic, (uint)(gpa & 0xFFF), bytes, ref vcpu.Registers, ref rsp, vcpu.Index);
            if (length != 0 && length <= read) vcpu.Rsp = rsp;
            return length <= read ? length : 0;
        }
    }
}
