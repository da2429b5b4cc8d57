// RDMSR/WRMSR that exit (VMX: the MSR bitmap or outside its ranges, SDM Vol 3C 26.1.3, 25.6.9; SVM: the MSR
// permission map or outside its ranges, APM Vol 2 15.11), for both back ends. The MSRs whose meaning is the
// same on both vendors are handled here:
//   x2APIC ICR (0x830): INIT and start-up IPIs to virtualized CPUs are caught (ApStartup); any other IPI is
//     sent as written; a write the CPU would refuse (not in x2APIC mode, reserved bits) gets #GP.
//   IA32_PAT (0x277): the guest's own PAT (SVM: G_PAT, VMX: the VMCS field), invalid types get #GP.
// Everything else goes through the seam to the vendor's policy (IVcpu.ReadVendorMsr/WriteVendorMsr:
// VmxMsrPolicy, SvmMsrPolicy), which answers or says #GP. The host never executes an RDMSR/WRMSR of an
// MSR the guest chose without knowing it exists (a #GP in root mode would bring the host down).
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class MsrExit
    {
        public const uint PatMsr = 0x277;   // IA32_PAT (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1)

        public static VcpuAction Handle<T>(ref T vcpu, bool write) where T : struct, IVcpu
        {
            ref GuestRegisters r = ref vcpu.Registers;
            uint msr = (uint)r.Rcx;
            if (write)
            {
                ulong value = (r.Rdx << 32) | (uint)r.Rax;
                switch (msr)
                {
                    case ApicPage.X2ApicIcrMsr:
                        if (!ApicPage.X2ApicIcrWritable(vcpu.ApicBaseMsr, value)) return VcpuState.GeneralProtection(ref vcpu);
                        if (!ApStartup.OnIcrWrite(vcpu.Index, (uint)value, (uint)(value >> 32))) vcpu.SendX2ApicIcr(value);
                        return VcpuAction.Skip;
                    case PatMsr:
                        if (!IsValidPat(value)) return VcpuState.GeneralProtection(ref vcpu);
                        vcpu.Pat = value;
                        return VcpuAction.Skip;
                    default:
                        return vcpu.WriteVendorMsr(msr, value) == MsrOutcome.Done ? VcpuAction.Skip : VcpuState.GeneralProtection(ref vcpu);
                }
            }
            ulong result;
            if (msr == PatMsr) result = vcpu.Pat;
            else if (vcpu.ReadVendorMsr(msr, out result) != MsrOutcome.Done) return VcpuState.GeneralProtection(ref vcpu);
            r.Rax = (uint)result;
            r.Rdx = result >> 32;
            return VcpuAction.Skip;
        }

        /// <summary>Each of the eight PAT entries must be 0, 1, 4, 5, 6 or 7, else WRMSR raises #GP (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1).</summary>
        public static bool IsValidPat(ulong value)
        {
            for (int i = 0; i < 8; i++)
            {
                ulong type = (value >> (8 * i)) & 0xFF;
                if (type == 2 || type == 3 || type > 7) return false;
            }
            return true;
        }
    }
}
