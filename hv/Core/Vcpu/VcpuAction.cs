// What a vendor-neutral exit handler (hv/Core/Vcpu) asks of the back end after it ran, and the few
// helpers every handler shares.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public enum VcpuAction
    {
        /// <summary>Re-enter at the same RIP (an event was injected, or the state was replaced).</summary>
        Resume,

        /// <summary>The instruction was emulated: step over it (InstructionSkip).</summary>
        Skip,
    }

    public static class VcpuState
    {
        /// <summary>The guest's paging state, for walks of its page tables (GuestMemory, GuestCode).</summary>
        public static GuestPaging Paging<T>(ref T vcpu) where T : struct, IVcpu
            => new GuestPaging(vcpu.Cr0, vcpu.Cr3, vcpu.Cr4, vcpu.Efer, vcpu.Cpl);

        /// <summary>#GP(0): what the hardware raises for an operand it refuses.</summary>
        public static VcpuAction GeneralProtection<T>(ref T vcpu) where T : struct, IVcpu
        {
            vcpu.Injected = VcpuEvent.Exception(VcpuEvent.GeneralProtection, 0);
            return VcpuAction.Resume;
        }

        /// <summary>#UD: what the guest gets for an instruction the CPU does not offer it.</summary>
        public static VcpuAction InvalidOpcode<T>(ref T vcpu) where T : struct, IVcpu
        {
            vcpu.Injected = VcpuEvent.Exception(VcpuEvent.InvalidOpcode);
            return VcpuAction.Resume;
        }
    }
}
