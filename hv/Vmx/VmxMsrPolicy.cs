// What the guest sees of the MSRs the VMX back end intercepts (which ones exit is the vendor-neutral
// table hv/Core/Msr/MsrPolicy, which also builds the MSR bitmap). The guest's CPUID says it has no VMX.
// Pure logic: compiled into the hypervisor and the tests.
namespace Vigil.Hypervisor.Vmx
{
    public static class VmxMsrPolicy
    {
        /// <summary>The guest's view of IA32_FEATURE_CONTROL: locked, VMX bits clear.</summary>
        public static ulong FeatureControlView(ulong hardware) => (hardware | 1) & ~0x6UL;
    }
}
