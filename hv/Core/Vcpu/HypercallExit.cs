// VMCALL (VMX, SDM Vol 3C 26.1.3) / VMMCALL (SVM, intercept vector 4 bit 1): Vigil's hypercall ABI
// (hv/Abi/Hypercall.cs) when RAX carries its signature; the dispatcher (Hypercalls) validates everything
// and reaches guest buffers through the guest's own page walk. Any other call gets #UD, as on a machine
// without a hypervisor.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class HypercallExit
    {
        public static VcpuAction Handle<T, TMemory, TPlatform>(ref T vcpu, ref TMemory memory, ref TPlatform platform)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TPlatform : struct, Guard.IGuardPlatform
        {
            if (!Hypercalls.IsForVigil(vcpu.Registers.Rax)) return VcpuState.InvalidOpcode(ref vcpu);
            Hypercalls.Dispatch(ref vcpu, ref memory, ref platform);
            return VcpuAction.Skip;
        }
    }
}
