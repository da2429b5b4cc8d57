// What the guest sees of CPUID: the hardware's answer, minus VMX/SVM (Vigil does not offer
// nested virtualization), plus the hypervisor-present bit and Vigil's own leaves at 0x40000000;
// the OS-enabled bits from the guest's CR4 and only the features the back end makes work (ForGuest).
// No Hyper-V interfaces are claimed. Shared by both back ends; compiled twice (unit-tested).
using System.Runtime.CompilerServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core
{
    public static class CpuidPolicy
    {
        private const uint VmxBit = 1u << 5;                // CPUID.1:ECX.VMX (SDM Vol 2A, Table 3-10)
        private const uint SmxBit = 1u << 6;                // CPUID.1:ECX.SMX: GETSEC gets #UD under Vigil (hv/Vmx/Handlers/GetsecHandler)
        private const uint HypervisorPresentBit = 1u << 31;  // CPUID.1:ECX bit 31: reserved for hypervisor use
        private const uint SvmBit = 1u << 2;                // CPUID.80000001h:ECX.SVM (APM Vol 3, E.4.2)
        private const uint OsxsaveBit = 1u << 27;           // CPUID.1:ECX.OSXSAVE
        private const uint OspkeBit = 1u << 4;              // CPUID.(7,0):ECX.OSPKE
        private const uint WaitPkgBit = 1u << 5;            // CPUID.(7,0):ECX.WAITPKG
        private const uint InvpcidBit = 1u << 10;           // CPUID.(7,0):EBX.INVPCID
        private const uint XsavesBit = 1u << 3;             // CPUID.(0DH,1):EAX.XSAVES
        private const uint RdtscpBit = 1u << 27;            // CPUID.80000001H:EDX.RDTSCP
        public const ulong Cr4Osxsave = 1UL << 18;
        public const ulong Cr4Pke = 1UL << 22;

        /// <summary>True when the hypervisor answers the leaf itself (the hardware is not asked).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool IsVigilLeaf(uint leaf) => leaf >= 0x40000000 && leaf <= 0x400000FF;

        /// <summary>True for the leaves <see cref="Filter"/> or <see cref="ForGuest"/> may change (the others reach the guest as they are).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Edits(uint leaf) => leaf is 1 or 7 or 0xD or 0x80000001 or 0x8000000A;

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
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Filter(uint leaf, ref uint eax, ref uint ebx, ref uint ecx, ref uint edx)
        {
            if (leaf == 1)
            {
                ecx &= ~(VmxBit | SmxBit);
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

        /// <summary>
        /// What depends on the guest: CPUID's OS-enabled bits mirror CR4 of the CPU executing it, which is the host
        /// here, so OSXSAVE and OSPKE come from <paramref name="guestCr4"/> (SDM Vol 2A CPUID Table 3-8, APM Vol 3
        /// E.3.2; glibc turns AVX off when OSXSAVE reads 0). Features the back end cannot make work in the guest are
        /// hidden (<paramref name="features"/>): WAITPKG without "enable user wait and pause" (TPAUSE/UMWAIT would raise
        /// #UD, SDM Vol 3C 25.6.2), XSAVES/XRSTORS and the XSS bits without "enable XSAVES/XRSTORS", RDTSCP, INVPCID.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void ForGuest(uint leaf, uint subleaf, ulong guestCr4, GuestFeatures features, ref uint eax, ref uint ebx, ref uint ecx, ref uint edx)
        {
            if (leaf == 1)
            {
                ecx = (ecx & ~OsxsaveBit) | ((guestCr4 & Cr4Osxsave) != 0 ? OsxsaveBit : 0);
            }
            else if (leaf == 7 && subleaf == 0)
            {
                ecx = (ecx & ~OspkeBit) | ((guestCr4 & Cr4Pke) != 0 ? OspkeBit : 0);
                if ((features & GuestFeatures.WaitPkg) == 0) ecx &= ~WaitPkgBit;
                if ((features & GuestFeatures.Invpcid) == 0) ebx &= ~InvpcidBit;
            }
            else if (leaf == 0xD && subleaf == 1)
            {
                if ((features & GuestFeatures.Xsaves) == 0)
                {
                    eax &= ~XsavesBit;
                    ecx = edx = 0;   // the IA32_XSS bits: nothing can be enabled without XSAVES
                }
            }
            else if (leaf == 0x8000_0001)
            {
                if ((features & GuestFeatures.Rdtscp) == 0) edx &= ~RdtscpBit;
            }
        }
    }
}
