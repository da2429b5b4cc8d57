// VMX root, interrupts off. WRMSR of an MSR the bitmap intercepts, or outside its ranges (SDM Vol 3C
// 26.1.3); which is which is hv/Core/Msr/MsrPolicy. Not intercepted (outside the bitmap): executed for
// the guest with the safe stub, a #GP from the CPU reflected (GuestMsrAccess). The x2APIC ICR: an INIT
// or start-up IPI to virtualized APs is caught (hv/Core/ApStartup), any other IPI is sent as written.
// IA32_FEATURE_CONTROL is locked (a write faults on hardware too), the VMX capability MSRs are
// read-only: #GP.
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Msr;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class WrmsrHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            uint msr = (uint)r->Rcx;
            var hardware = default(HostSafeMsr);
            if (MsrPolicy.IsPassThrough(msr, write: true, Vendor.IntelVmx))
            {
                return GuestMsrAccess.Write(ref hardware, *r) ? ExitAction.AdvanceRip : VmxInject.GeneralProtectionFault(ref e);
            }
            if (msr != ApicPage.X2ApicIcrMsr) return VmxInject.GeneralProtectionFault(ref e);
            ulong value = GuestMsrAccess.WrittenValue(*r);
            if (!ApicPage.X2ApicIcrWritable(Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr), value)) return VmxInject.GeneralProtectionFault(ref e);
            if (!ApStartup.OnIcrWrite(e.Cpu->Index, (uint)value, (uint)(value >> 32)) && !hardware.TryWrite(msr, value)) return VmxInject.GeneralProtectionFault(ref e);
            return ExitAction.AdvanceRip;
        }
    }
}
