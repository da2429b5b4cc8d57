// VMX root, interrupts off. CPUID always exits in VMX non-root (SDM Vol 3C 26.1.2). The guest gets
// the hardware's answer filtered by the shared CpuidPolicy (VMX hidden, hypervisor bit set) and
// Vigil's own leaves at 0x40000000 (vendor "VigilVigilVi") and 0x40000001 (interface, version).
using Vigil.Hypervisor.Core;
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class CpuidHandler
    {
        private const uint OsxsaveBit = 1u << 27;   // CPUID.1:ECX.OSXSAVE
        private const uint OspkeBit = 1u << 4;      // CPUID.(7,0):ECX.OSPKE
        private const ulong Cr4Osxsave = 1UL << 18;
        private const ulong Cr4Pke = 1UL << 22;

        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            uint leaf = (uint)r->Rax;
            uint subleaf = (uint)r->Rcx;
            uint eax, ebx, ecx, edx;
            if (CpuidPolicy.IsVigilLeaf(leaf))
            {
                CpuidPolicy.VigilLeaf(leaf, out eax, out ebx, out ecx, out edx);
            }
            else
            {
                uint* regs = stackalloc uint[4];
                Cpu.Cpuid(leaf, subleaf, regs);
                eax = regs[0];
                ebx = regs[1];
                ecx = regs[2];
                edx = regs[3];
                CpuidPolicy.Filter(leaf, ref eax, ref ebx, ref ecx, ref edx);
                // The OS-enabled bits mirror CR4 of whoever executes CPUID: here the host, whose CR4 differs
                // from the guest's. Report the guest's CR4.OSXSAVE and CR4.PKE (SDM Vol 2A CPUID, Table 3-8).
                ulong guestCr4 = e.Read(VmcsField.GuestCr4);
                if (leaf == 1) ecx = (ecx & ~OsxsaveBit) | ((guestCr4 & Cr4Osxsave) != 0 ? OsxsaveBit : 0);
                if (leaf == 7 && subleaf == 0) ecx = (ecx & ~OspkeBit) | ((guestCr4 & Cr4Pke) != 0 ? OspkeBit : 0);
            }
            // CPUID writes the low 32 bits and clears the high 32 bits of each register (SDM Vol 2A CPUID).
            r->Rax = eax;
            r->Rbx = ebx;
            r->Rcx = ecx;
            r->Rdx = edx;
            return ExitAction.AdvanceRip;
        }
    }
}
