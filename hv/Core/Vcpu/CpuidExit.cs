// CPUID, for both back ends (VMX: always exits, SDM Vol 3C 26.1.2; SVM: intercept vector 3 bit 18). The
// hardware's answer (executed by the host) edited by CpuidPolicy, Vigil's own leaves at 0x40000000, and
// what depends on who executes CPUID: the OS-enabled bits mirror CR4 of the CPU that runs it, here the
// host, so OSXSAVE and OSPKE are taken from the guest's CR4 (SDM Vol 2A CPUID, Table 3-8; APM Vol 3
// E.3.2). Features the back end cannot make work in the guest are hidden (CpuidPolicy.ForGuest), and so is the
// compacted XSAVE format where the CPU's leaf 0DH contradicts itself (XsaveCompaction: Bochs 2.7).
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class CpuidExit
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static VcpuAction Handle<T>(ref T vcpu) where T : struct, IVcpu
        {
            ref GuestRegisters r = ref vcpu.Registers;
            uint leaf = (uint)r.Rax;
            uint subleaf = (uint)r.Rcx;
            uint eax, ebx, ecx, edx;
            if (CpuidPolicy.IsVigilLeaf(leaf))
            {
                CpuidPolicy.VigilLeaf(leaf, out eax, out ebx, out ecx, out edx);
            }
            else
            {
                vcpu.HostCpuid(leaf, subleaf, out eax, out ebx, out ecx, out edx);
                CpuidPolicy.Filter(leaf, ref eax, ref ebx, ref ecx, ref edx);
                CpuidPolicy.ForGuest(leaf, subleaf, vcpu.Cr4, vcpu.Features, ref eax, ref ebx, ref ecx, ref edx);
                if (leaf == 0xD && subleaf == 1) XsaveCompaction.Filter(ref vcpu, ref eax, ebx, ref ecx, ref edx);
            }
            // CPUID writes the low 32 bits and clears the high 32 bits of each register (SDM Vol 2A CPUID).
            r.Rax = eax;
            r.Rbx = ebx;
            r.Rcx = ecx;
            r.Rdx = edx;
            return VcpuAction.Skip;
        }
    }
}
