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
            CpuidResult c;   // one block the hardware's answer lands in and the policy edits in place (every CPUID exit)
            if (CpuidPolicy.IsVigilLeaf(leaf))
            {
                CpuidPolicy.VigilLeaf(leaf, out c.Eax, out c.Ebx, out c.Ecx, out c.Edx);
            }
            else
            {
                vcpu.HostCpuid(leaf, subleaf, out c);
                if (CpuidPolicy.Edits(leaf))
                {
                    CpuidPolicy.Filter(leaf, ref c.Eax, ref c.Ebx, ref c.Ecx, ref c.Edx);
                    CpuidPolicy.ForGuest(leaf, subleaf, vcpu.Cr4, vcpu.Features, ref c.Eax, ref c.Ebx, ref c.Ecx, ref c.Edx);
                    if (leaf == 0xD && subleaf == 1) XsaveCompaction.Filter(ref vcpu, ref c.Eax, c.Ebx, ref c.Ecx, ref c.Edx);
                }
            }
            // CPUID writes the low 32 bits and clears the high 32 bits of each register (SDM Vol 2A CPUID).
            r.Rax = c.Eax;
            r.Rbx = c.Ebx;
            r.Rcx = c.Ecx;
            r.Rdx = c.Edx;
            return VcpuAction.Skip;
        }
    }

    /// <summary>EAX, EBX, ECX and EDX of one CPUID, in this order (the layout the host's CPUID stub stores).</summary>
    public struct CpuidResult
    {
        public uint Eax;
        public uint Ebx;
        public uint Ecx;
        public uint Edx;
    }
}
