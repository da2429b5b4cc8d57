// SVM host, GIF=0: CPUID (intercept vector 3 bit 18). The hardware's answer through the shared
// policy (SVM hidden, hypervisor-present bit set) and Vigil's own leaves at 0x40000000, as on Intel.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class CpuidHandler
    {
        public static ExitAction Handle(ref GuestRegisters regs)
        {
            uint leaf = (uint)regs.Rax;
            uint subleaf = (uint)regs.Rcx;
            uint eax, ebx, ecx, edx;
            if (CpuidPolicy.IsVigilLeaf(leaf))
            {
                CpuidPolicy.VigilLeaf(leaf, out eax, out ebx, out ecx, out edx);
            }
            else
            {
                uint* r = stackalloc uint[4];
                Vigil.Platform.Cpu.Cpuid(leaf, subleaf, r);
                eax = r[0];
                ebx = r[1];
                ecx = r[2];
                edx = r[3];
                CpuidPolicy.Filter(leaf, ref eax, ref ebx, ref ecx, ref edx);
            }
            regs.Rax = eax;
            regs.Rbx = ebx;
            regs.Rcx = ecx;
            regs.Rdx = edx;
            return ExitAction.Skip;
        }
    }
}
