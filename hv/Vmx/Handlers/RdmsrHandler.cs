// VMX root, interrupts off. RDMSR of an MSR the bitmap intercepts, or outside its ranges (SDM Vol 3C
// 26.1.3, 25.6.9); which is which is hv/Core/Msr/MsrPolicy. An MSR the policy does not intercept
// exited only for lying outside the bitmap: the host executes it for the guest with the safe stub, and
// a #GP the CPU raises is the guest's (GuestMsrAccess). Intercepted: the guest sees a CPU without VMX,
// IA32_FEATURE_CONTROL locked with VMX off, #GP for the VMX capability MSRs.
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Msr;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class RdmsrHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            uint msr = (uint)r->Rcx;
            var hardware = default(HostSafeMsr);
            if (MsrPolicy.IsPassThrough(msr, write: false, Vendor.IntelVmx))
            {
                return GuestMsrAccess.Read(ref hardware, ref *r) ? ExitAction.AdvanceRip : VmxInject.GeneralProtectionFault(ref e);
            }
            if (msr != MsrPolicy.FeatureControl || !hardware.TryRead(msr, out ulong value)) return VmxInject.GeneralProtectionFault(ref e);
            value = VmxMsrPolicy.FeatureControlView(value);
            r->Rax = (uint)value;
            r->Rdx = value >> 32;
            return ExitAction.AdvanceRip;
        }
    }
}
