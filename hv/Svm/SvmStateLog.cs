// SVM host, GIF=0: the guest's full state to the log, for exits that end the guest on a CPU.
// Formats strings (allocates): only on fail-safe paths, never on a normal exit.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmStateLog
    {
        public static void Write(SvmCpu* cpu, ref GuestRegisters r)
        {
            Vmcb* v = cpu->Vmcb;
            Hv.Log.Error("  exit 0x" + HvMain.Hex(v->ExitCode) + " info1 0x" + HvMain.Hex(v->ExitInfo1) + " info2 0x" + HvMain.Hex(v->ExitInfo2)
                + " intinfo 0x" + HvMain.Hex(v->ExitIntInfo));
            Hv.Log.Error("  RIP " + HvMain.Hex(v->Rip) + " RSP " + HvMain.Hex(v->Rsp) + " RFLAGS " + HvMain.Hex(v->Rflags)
                + " CS " + HvMain.Hex(v->Cs.Selector) + "/" + HvMain.Hex(v->Cs.Attributes) + " base " + HvMain.Hex(v->Cs.Base) + " CPL " + v->Cpl.ToString());
            Hv.Log.Error("  CR0 " + HvMain.Hex(v->Cr0) + " CR2 " + HvMain.Hex(v->Cr2) + " CR3 " + HvMain.Hex(v->Cr3) + " CR4 " + HvMain.Hex(v->Cr4)
                + " EFER " + HvMain.Hex(v->Efer));
            Hv.Log.Error("  DR6 " + HvMain.Hex(v->Dr6) + " DR7 " + HvMain.Hex(v->Dr7) + " intctl " + HvMain.Hex(v->InterruptControl)
                + " shadow " + HvMain.Hex(v->InterruptShadow) + " eventinj " + HvMain.Hex(v->EventInjection) + " asid " + v->GuestAsid.ToString()
                + " misc " + HvMain.Hex(v->InterceptMisc1) + "/" + HvMain.Hex(v->InterceptMisc2) + " nested " + HvMain.Hex(v->NestedControl));
            Hv.Log.Error("  RAX " + HvMain.Hex(r.Rax) + " RBX " + HvMain.Hex(r.Rbx) + " RCX " + HvMain.Hex(r.Rcx) + " RDX " + HvMain.Hex(r.Rdx)
                + " RSI " + HvMain.Hex(r.Rsi) + " RDI " + HvMain.Hex(r.Rdi) + " RBP " + HvMain.Hex(r.Rbp));
            Hv.Log.Error("  R8 " + HvMain.Hex(r.R8) + " R9 " + HvMain.Hex(r.R9) + " R10 " + HvMain.Hex(r.R10) + " R11 " + HvMain.Hex(r.R11)
                + " R12 " + HvMain.Hex(r.R12) + " R13 " + HvMain.Hex(r.R13) + " R14 " + HvMain.Hex(r.R14) + " R15 " + HvMain.Hex(r.R15));
        }
    }
}
