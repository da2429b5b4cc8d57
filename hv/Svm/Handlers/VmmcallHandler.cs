// SVM host, GIF=0: VMMCALL (intercept vector 4 bit 1), the shared hypercall ABI (hv/Abi/Hypercall.cs).
// A call without Vigil's signature gets #UD, as on a machine without a hypervisor.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class VmmcallHandler
    {
        public static ExitAction Handle(SvmCpu* cpu, ref GuestRegisters regs)
        {
            if (!Hypercalls.IsForVigil(regs.Rax)) return SvmEvents.InjectUndefined(cpu);
            Vmcb* vmcb = cpu->Vmcb;
            var paging = new GuestPaging(vmcb->Cr0, vmcb->Cr3, vmcb->Cr4, vmcb->Efer, vmcb->Cpl);
            var memory = new HostPhysicalMemory();
            Hypercalls.Dispatch(ref memory, ref regs, paging, cpu->Index);
            return ExitAction.Skip;
        }
    }
}
