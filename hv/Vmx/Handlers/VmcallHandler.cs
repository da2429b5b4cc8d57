// VMX root, interrupts off. VMCALL (SDM Vol 3C 26.1.3): a hypercall when RAX carries Vigil's
// signature (the vendor-neutral dispatcher in hv/Core validates everything and sets RAX); any other
// VMCALL gets #UD, as on hardware without a hypervisor.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class VmcallHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            if (!Hypercalls.IsForVigil(r->Rax)) return VmxInject.UndefinedOpcode(ref e);
            int cpl = (int)((e.Read(VmcsField.GuestSsAccessRights) >> 5) & 3);   // SS.DPL is the CPL (SDM Vol 3C 26.3.1.2)
            var paging = new GuestPaging(e.Read(VmcsField.GuestCr0), e.Read(VmcsField.GuestCr3), e.Read(VmcsField.GuestCr4),
                e.Read(VmcsField.GuestIa32Efer), cpl);
            var memory = new HostPhysicalMemory();
            Hypercalls.Dispatch(ref memory, ref *r, paging, e.Cpu->Index);
            return ExitAction.AdvanceRip;
        }
    }
}
