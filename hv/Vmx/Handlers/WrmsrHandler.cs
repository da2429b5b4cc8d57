// VMX root, interrupts off. WRMSR of an MSR the bitmap intercepts, or outside its ranges (SDM Vol 3C
// 26.1.3). The x2APIC ICR: an INIT or start-up IPI to virtualized APs is caught (hv/Core/ApStartup),
// any other IPI is sent as written. IA32_FEATURE_CONTROL is locked (a write faults on hardware too),
// the VMX capability MSRs are read-only, unknown MSRs fault: all #GP.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class WrmsrHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            GuestRegisters* r = e.Registers;
            uint msr = (uint)r->Rcx;
            if (msr != ApicPage.X2ApicIcrMsr) return VmxInject.GeneralProtectionFault(ref e);
            ulong value = (r->Rdx << 32) | (uint)r->Rax;
            if (!ApicPage.X2ApicIcrWritable(Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr), value)) return VmxInject.GeneralProtectionFault(ref e);
            if (!ApStartup.OnIcrWrite(e.Cpu->Index, (uint)value, (uint)(value >> 32))) Vigil.Platform.Cpu.WriteMsr(msr, value);
            return ExitAction.AdvanceRip;
        }
    }
}
