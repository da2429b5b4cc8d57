// What the guest sees of the MSRs the SVM back end intercepts (which ones exit is the vendor-neutral
// table hv/Core/Msr/MsrPolicy, which also builds the permission map; hv/Core/Vcpu/MsrExit and SvmVcpu
// emulate them).
// Pure logic: compiled into the hypervisor and the tests.
using Vigil.Hypervisor.Core.Msr;

namespace Vigil.Hypervisor.Svm
{
    public static class SvmMsrPolicy
    {
        public const uint Pat = MsrPolicy.Pat;
        public const uint Efer = MsrPolicy.Efer;
        public const uint VmCr = MsrPolicy.VmCr;
        public const uint HsavePa = MsrPolicy.HsavePa;

        /// <summary>Each of the eight PAT entries must be 0, 1, 4, 5, 6 or 7, else WRMSR raises #GP (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1).</summary>
        public static bool IsValidPat(ulong value) => Core.Vcpu.MsrExit.IsValidPat(value);
    }
}
