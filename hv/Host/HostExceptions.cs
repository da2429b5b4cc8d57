// Exceptions taken in the host (SVM host with GIF=0, or VMX root), entered from the generated IDT
// stubs with the full register state. An exception in the host is a hypervisor bug: the state goes
// to the log and this CPU stops (fail safe: it never runs the guest with a broken host), except a #GP
// of the RDMSR/WRMSR in a safe-MSR stub (HostSafeMsr), which resumes at the stub's failure path. An NMI is
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
            // #GP on the RDMSR/WRMSR of a safe-MSR stub (HostSafeMsr): resume at its failure path, which returns 1.
            if (f->Vector == 13)
            {
                ulong resume = Native.HvStubs.SafeMsrResume(f->Rip);
                if (resume != 0)
                {
                    f->Rip = resume;
                    return;
                }
            }
            HostCpu* self = HostEnvironment.Current();
            string where = self == null ? "unknown CPU" : "CPU " + self->Index.ToString();
            ulong cr2 = Vigil.Platform.Cpu.ReadCr2();
            // A stack overflow: the access to the guard page below a stack faults (#PF, CR2 = the guard page);
            // when the CPU then cannot push the #PF frame on that same stack, it raises #DF, taken on IST2
            // (SDM Vol 3A 6.15, interrupt 8). CR2 is fresh in both cases.
            if (f->Vector == 8 || f->Vector == 14)
            {
                int stack = HostEnvironment.GuardPageAt(cr2, out uint owner);
                if (stack != 0)
                {
                    string name = stack == 1 ? "host" : stack == 2 ? "NMI (IST1)" : stack == 3 ? "#DF (IST2)" : "#MC (IST3)";
                    Hv.Log.Error("host stack overflow: the " + name + " stack of CPU " + owner.ToString() + " ran into its guard page 0x"
                        + HvMain.Hex(cr2 & ~0xFFFUL));
                }
            }
            Hv.Log.Error("host exception " + f->Vector.ToString() + " error 0x" + HvMain.Hex(f->ErrorCode) + " on " + where
                + " at RIP 0x" + HvMain.Hex(f->Rip) + " CR2 0x" + HvMain.Hex(cr2));
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
