// VMX root, interrupts off. RDMSR of an MSR the bitmap intercepts, or outside its ranges (SDM Vol 3C
// 26.1.3, 25.6.9). The guest sees a CPU without VMX: IA32_FEATURE_CONTROL locked with VMX off, #GP
// for the VMX capability MSRs and for MSRs Vigil does not know (the host never executes a guest's
// RDMSR of an unknown MSR: a #GP in root mode would bring the host down).
using Vigil.Hypervisor.Core;
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class RdmsrHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            uint msr = (uint)r->Rcx;
            ulong value;
            if (msr == VmxMsrPolicy.FeatureControl) value = VmxMsrPolicy.FeatureControlView(Cpu.ReadMsr(msr));
            else return VmxInject.GeneralProtectionFault(ref e);
            r->Rax = (uint)value;
            r->Rdx = value >> 32;
            return ExitAction.AdvanceRip;
        }
    }
}
