// RDMSR/WRMSR that exit (VMX: the MSR bitmap or outside its ranges, SDM Vol 3C 26.1.3, 25.6.9; SVM: the MSR
// permission map or outside its ranges, APM Vol 2 15.11), for both back ends. The MSRs whose meaning is the
// same on both vendors are handled here:
//   x2APIC ICR (0x830): INIT and start-up IPIs to virtualized CPUs are caught (ApStartup); any other IPI is
//     sent as written; a write the CPU would refuse (not in x2APIC mode, reserved bits) gets #GP.
//   IA32_PAT (0x277): the guest's own PAT (SVM: G_PAT, VMX: the VMCS field), invalid types get #GP.
// An MSR the vendor-neutral table (hv/Core/Msr/MsrPolicy) does not intercept exited only for lying outside
// the bitmap/permission map (e.g. AMD's SMCA banks at C000_2000 and up, Intel MSRs above 1FFF): the host
// executes the guest's access on the hardware through the safe stubs (IMsrInstructions), and a #GP the CPU
// raises is reflected to the guest (GuestMsrAccess) - never a host fault, never an invented #GP. The other
// intercepted MSRs go through the seam to the vendor's policy (IVcpu.ReadVendorMsr/WriteVendorMsr:
// VmxMsrPolicy, SvmMsrPolicy), which answers or says #GP.
// While the guard is armed, writes of EFER and the syscall MSRs exit too (GuardMsrs, the maps' write bits
// set by the back ends' arming): they are judged (hv/Core/Guard/GuardRegisters) and, allowed, written where
// the back end keeps the guest's copy (IVcpu.WriteGuardedMsr); Block skips the WRMSR (EFER: the pinned bits
// stay set, the rest loads), BlockAndFault raises #GP(0).
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Msr;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class MsrExit
    {
        public const uint PatMsr = 0x277;   // IA32_PAT (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1)

        public static VcpuAction Handle<T, TCpus>(ref T vcpu, ref TCpus cpus, bool write)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            ref GuestRegisters r = ref vcpu.Registers;
            uint msr = (uint)r.Rcx;
            if (write && GuardMsrs.IsGuarded(msr))   // exits only where a map bit asks for it (armed, or SVM's EFER): the guest's copy is the back end's
            {
                ulong value = GuestMsrAccess.WrittenValue(r);
                switch (GuardRegisters.Msr(ref vcpu, ref cpus, msr, value, out ulong keep))
                {
                    case PinOutcome.Retry: return VcpuAction.Resume;
                    case PinOutcome.Fault: return VcpuState.GeneralProtection(ref vcpu);
                    case PinOutcome.Block:
                        if (keep == 0) return VcpuAction.Skip;
                        value |= keep;
                        break;
                }
                return vcpu.WriteGuardedMsr(msr, value) == MsrOutcome.Done ? VcpuAction.Skip : VcpuState.GeneralProtection(ref vcpu);
            }
            if (MsrPolicy.IsPassThrough(msr, write, vcpu.Vendor))
            {
                bool done = write ? GuestMsrAccess.Write(ref vcpu, r) : GuestMsrAccess.Read(ref vcpu, ref r);
                return done ? VcpuAction.Skip : VcpuState.GeneralProtection(ref vcpu);
            }
            if (write)
            {
                ulong value = GuestMsrAccess.WrittenValue(r);
                switch (msr)
                {
                    case ApicPage.X2ApicIcrMsr:
                        if (!ApicPage.X2ApicIcrWritable(vcpu.ApicBaseMsr, value)) return VcpuState.GeneralProtection(ref vcpu);
                        if (ApStartup.OnIcrWrite(vcpu.Index, (uint)value, (uint)(value >> 32))) return VcpuAction.Skip;
                        return vcpu.TryWrite(msr, value) ? VcpuAction.Skip : VcpuState.GeneralProtection(ref vcpu);
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
