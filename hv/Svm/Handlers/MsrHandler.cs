// SVM host, GIF=0: RDMSR/WRMSR of the MSRs the permission map intercepts (APM Vol 2 15.11;
// EXITINFO1 = 0 read, 1 write; ECX = the MSR) and of every MSR outside the map's ranges.
//   EFER: SVME stays set in the guest's EFER (VMRUN needs it) but reads as clear.
//   VM_CR: reads as SVM disabled and locked; writes are dropped.
//   VM_HSAVE_PA: reads as 0; writes are dropped (the host save area is Vigil's).
//   IA32_PAT: the guest's PAT is the VMCB's G_PAT (nested paging, APM Vol 2 15.25.8); the real one stays
//     the reset layout NptFormat assumes. Invalid entries (2, 3, 8-255) get #GP as on hardware.
//   x2APIC ICR: INIT and start-up IPIs to virtualized CPUs are caught (hv/Core/ApStartup).
// Which MSRs exit is hv/Core/Msr/MsrPolicy. Any other MSR that exits lies outside the map (e.g. AMD's
// SMCA banks at C000_2000 and up): the host executes it for the guest with the safe stubs, and a #GP
// the CPU raises is reflected to the guest (GuestMsrAccess), never raised in the host.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Msr;
using Vigil.Hypervisor.Host;

namespace Vigil.Hypervisor.Svm.Handlers
{
    internal static unsafe class MsrHandler
    {
        public static ExitAction Handle(SvmCpu* cpu, ref GuestRegisters regs)
        {
            Vmcb* vmcb = cpu->Vmcb;
            uint msr = (uint)regs.Rcx;
            bool write = vmcb->ExitInfo1 == 1;
            ulong value = (regs.Rdx << 32) | (uint)regs.Rax;
            ulong result = 0;
            var hardware = default(HostSafeMsr);
            switch (msr)
            {
                case SvmBackEnd.EferMsr:
                    if (write) vmcb->Efer = value | SvmBackEnd.EferSvme;
                    else result = vmcb->Efer & ~SvmBackEnd.EferSvme;
                    break;
                case SvmBackEnd.VmCrMsr:
                    if (!write) result = SvmBackEnd.VmCrSvmDisable | SvmBackEnd.VmCrLock;
                    break;
                case SvmBackEnd.HsavePaMsr:
                    break;
                case SvmBackEnd.PatMsr:
                    if (!write) result = vmcb->GuestPat;
                    else if (!SvmMsrPolicy.IsValidPat(value)) return SvmEvents.InjectGeneralProtection(cpu);
                    else
                    {
                        vmcb->GuestPat = value;
                        vmcb->CleanBits &= ~VmcbCleanNestedPaging;   // G_PAT changed
                    }
                    break;
                case ApicPage.X2ApicIcrMsr when write:
                    if (!ApicPage.X2ApicIcrWritable(Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr), value)) return SvmEvents.InjectGeneralProtection(cpu);
                    if (!ApStartup.OnIcrWrite(cpu->Index, (uint)value, (uint)(value >> 32)) && !hardware.TryWrite(msr, value)) return SvmEvents.InjectGeneralProtection(cpu);
                    break;
                default:
                    // Not intercepted on purpose (MsrPolicy): it exited for lying outside the map. The guest's own
                    // access, on the hardware; a #GP the CPU raises is the guest's.
                    bool done = write ? GuestMsrAccess.Write(ref hardware, regs) : GuestMsrAccess.Read(ref hardware, ref regs);
                    return done ? ExitAction.Skip : SvmEvents.InjectGeneralProtection(cpu);
            }
            if (!write)
            {
                regs.Rax = (uint)result;
                regs.Rdx = result >> 32;
            }
            return ExitAction.Skip;
        }

        /// <summary>VMCB clean bit 4 (NP): nCR3 and G_PAT (APM Vol 2 15.15.3).</summary>
        private const uint VmcbCleanNestedPaging = 1u << 4;
    }
}
