// Exceptions taken in the host (SVM host with GIF=0, or VMX root), entered from the generated IDT
// stubs with the full register state. An exception in the host is a hypervisor bug: the state goes
// to the log and this CPU stops (fail safe: it never runs the guest with a broken host). An NMI is
// recorded as pending for the back end to re-inject into the guest or drop as a kick (VmxNmi, SvmNmi);
// under SVM the host runs with GIF=0, where NMIs are held (APM Vol 2 15.17), except where it sets GIF
// on purpose: after an NMI intercept, in the start-up wait and around log drains.
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Host
{
    internal static unsafe class HostExceptions
    {
        [UnmanagedCallersOnly(EntryPoint = "vigil_host_exception")]
        private static void OnException(HostTrapFrame* f)
        {
            if (f->Vector == 2)
            {
                HostCpu* cpu = HostEnvironment.Current();
                if (cpu != null) cpu->PendingNmis++;
                return;
            }
            HostCpu* self = HostEnvironment.Current();
            string where = self == null ? "unknown CPU" : "CPU " + self->Index.ToString();
            Hv.Log.Error("host exception " + f->Vector.ToString() + " error 0x" + HvMain.Hex(f->ErrorCode) + " on " + where
                + " at RIP 0x" + HvMain.Hex(f->Rip) + " CR2 0x" + HvMain.Hex(Vigil.Platform.Cpu.ReadCr2()));
            Hv.Log.Error("  RAX " + HvMain.Hex(f->Rax) + " RBX " + HvMain.Hex(f->Rbx) + " RCX " + HvMain.Hex(f->Rcx) + " RDX " + HvMain.Hex(f->Rdx)
                + " RSI " + HvMain.Hex(f->Rsi) + " RDI " + HvMain.Hex(f->Rdi) + " RBP " + HvMain.Hex(f->Rbp) + " RSP " + HvMain.Hex(f->Rsp));
            Hv.Log.Error("  R8 " + HvMain.Hex(f->R8) + " R9 " + HvMain.Hex(f->R9) + " R10 " + HvMain.Hex(f->R10) + " R11 " + HvMain.Hex(f->R11)
                + " R12 " + HvMain.Hex(f->R12) + " R13 " + HvMain.Hex(f->R13) + " R14 " + HvMain.Hex(f->R14) + " R15 " + HvMain.Hex(f->R15)
                + " RFLAGS " + HvMain.Hex(f->Rflags) + " CS " + HvMain.Hex(f->Cs) + " SS " + HvMain.Hex(f->Ss));
            Hv.Log.Error("this CPU stops (hypervisor fault)");
            Stop();
        }

        /// <summary>Stops this CPU for good: interrupts off, HLT forever (GIF=0 under SVM holds NMIs too).</summary>
        public static void Stop()
        {
            while (true)
            {
                Vigil.Platform.Cpu.DisableInterrupts();
                Vigil.Platform.Cpu.Halt();
            }
        }
    }
}
