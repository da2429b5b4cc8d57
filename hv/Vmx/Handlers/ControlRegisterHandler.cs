// VMX root, interrupts off. Control-register accesses that exit (SDM Vol 3C 26.1.3; exit
// qualification Table 28-3): MOV to CR0/CR4 changing a bit the host owns (the guest/host masks hold
// the VMX fixed bits, and for CR4 every bit the CPU does not support, so CR4.VMXE stays set underneath
// and reads as the guest wrote it), CLTS/LMSW likewise, and CR3 accesses where the CPU forces CR3
// exiting, and, while the kernel guard is armed, writes of its pinned bits (VmxGuard adds them to the
// masks; ControlRegisterExit judges a write that clears one). The qualification is decoded here (Intel's); the validation and the load are the
// vendor-neutral ones (hv/Core/Vcpu/ControlRegisterExit): a value the CPU would refuse gets #GP.
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class ControlRegisterHandler
    {
        public static ExitAction Handle(ref VmxVcpu v)
        {
            ref VmxExit e = ref *v.Exit;
            ulong q = e.Qualification;
            var cpus = default(VmxNestedMapCpus);
            int cr = (int)(q & 0xF);
            int type = (int)((q >> 4) & 3);
            int gpr = (int)((q >> 8) & 0xF);
            switch (type)
            {
                case 0:   // MOV to CR
                {
                    ulong value = gpr == 4 ? v.Rsp : e.Registers->Get(gpr);
                    if (v.Mode != Core.CpuMode.Bits64) value &= 0xFFFF_FFFF;   // outside 64-bit mode the operand is 32 bits
                    if (cr == 0) return VmxExitDispatcher.From(ControlRegisterExit.WriteCr0(ref v, ref cpus, value));
                    if (cr == 4) return VmxExitDispatcher.From(ControlRegisterExit.WriteCr4(ref v, ref cpus, value));
                    if (cr == 3) return VmxExitDispatcher.From(ControlRegisterExit.WriteCr3(ref v, value, VmxBackEnd.Cr3ReservedMask));
                    break;
                }
                case 1:   // MOV from CR (only CR3 can exit this way)
                    if (cr == 3)
                    {
                        ulong value = v.Cr3;
                        if (gpr == 4) v.Rsp = value;
                        else e.Registers->Set(gpr, value);
                        return ExitAction.AdvanceRip;
                    }
                    break;
                case 2:   // CLTS
                    return VmxExitDispatcher.From(ControlRegisterExit.Clts(ref v, ref cpus));
                case 3:   // LMSW: the source operand's bits 3:0 are in qualification bits 19:16
                    return VmxExitDispatcher.From(ControlRegisterExit.Lmsw(ref v, ref cpus, (q >> 16) & 0xF));
            }
            VmxFatal.Report(ref e, "unexpected control-register access");
            return ExitAction.Resume;
        }
    }
}
