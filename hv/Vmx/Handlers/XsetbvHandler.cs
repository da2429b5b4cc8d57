// VMX root, interrupts off. XSETBV always exits (SDM Vol 3C 26.1.2). Executed on the guest's behalf
// after the checks the instruction itself makes (SDM Vol 2C XSETBV): XCR0 only, bit 0 (x87) set,
// AVX state only with SSE state; anything else is the #GP hardware would raise.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class XsetbvHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            uint index = (uint)r->Rcx;
            ulong value = ((r->Rdx & 0xFFFF_FFFF) << 32) | (r->Rax & 0xFFFF_FFFF);
            bool cpl0 = ((e.Read(VmcsField.GuestSsAccessRights) >> 5) & 3) == 0;
            if (!cpl0 || index != 0 || (value & 1) == 0 || ((value & 4) != 0 && (value & 2) == 0)) return VmxInject.GeneralProtectionFault(ref e);
            HvStubs.Xsetbv(index, value);
            return ExitAction.AdvanceRip;
        }
    }
}
