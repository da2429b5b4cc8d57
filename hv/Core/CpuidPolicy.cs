// What the guest sees of CPUID: the hardware's answer, minus VMX/SVM (Vigil does not offer
// nested virtualization), plus the hypervisor-present bit and Vigil's own leaves at 0x40000000.
// No Hyper-V interfaces are claimed. Shared by both back ends; compiled twice (unit-tested).
using Vigil.Abi;

namespace Vigil.Hypervisor.Core
{
    public static class CpuidPolicy
    {
        private const uint VmxBit = 1u << 5;                // CPUID.1:ECX.VMX (SDM Vol 2A, Table 3-10)
        private const uint HypervisorPresentBit = 1u << 31;  // CPUID.1:ECX bit 31: reserved for hypervisor use
        private const uint SvmBit = 1u << 2;                // CPUID.80000001h:ECX.SVM (APM Vol 3, E.4.2)

        /// <summary>True when the hypervisor answers the leaf itself (the hardware is not asked).</summary>
        public static bool IsVigilLeaf(uint leaf) => leaf >= 0x40000000 && leaf <= 0x400000FF;

        /// <summary>Vigil's own leaves: 0x40000000 vendor, 0x40000001 interface; others in the range are zero.</summary>
        public static void VigilLeaf(uint leaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
        {
            eax = ebx = ecx = edx = 0;
            if (leaf == Hypercall.CpuidVendorLeaf)
            {
                eax = Hypercall.CpuidInterfaceLeaf;   // highest hypervisor leaf
                ebx = Hypercall.CpuidVendorEbx;
                ecx = Hypercall.CpuidVendorEcx;
                edx = Hypercall.CpuidVendorEdx;
            }
            else if (leaf == Hypercall.CpuidInterfaceLeaf)
            {
                eax = Hypercall.CpuidInterfaceSignature;
                ebx = Hypercall.Version;
            }
        }

        /// <summary>Edits the hardware's answer for <paramref name="leaf"/> before the guest sees it.</summary>
        public static void Filter(uint leaf, ref uint eax, ref uint ebx, ref uint ecx, ref uint edx)
        {
            if (leaf == 1)
            {
                ecx &= ~VmxBit;
                ecx |= HypervisorPresentBit;
            }
            else if (leaf == 0x80000001)
            {
                ecx &= ~SvmBit;
            }
            else if (leaf == 0x8000000A)
            {
                // SVM feature leaf: nothing to advertise when SVM is hidden.
                eax = ebx = ecx = edx = 0;
            }
        }
    }
}
