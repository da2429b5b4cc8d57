// VMX root, interrupts off. The defined outcome for what the hypervisor cannot handle: the full
// guest state goes to the log, then this CPU stops (cli; hlt) — loud, never a silent hang and never
// a guess that corrupts the guest. Text formatting allocates: acceptable on this one-way path only.
using Vigil.Hypervisor.Core;
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxFatal
    {
        public static void Report(ref VmxExit e, string what)
        {
            VmxLog.Fatal(ref e);
            DumpState(ref e, what);
            Hv.Log.Error("CPU " + e.Cpu->Index.ToString() + " stopped: the guest on this CPU cannot continue safely");
            while (true)
            {
                Cpu.DisableInterrupts();
                Cpu.Halt();
            }
        }

        public static void DumpState(ref VmxExit e, string what)
        {
            GuestRegisters* r = e.Registers;
            Hv.Log.Error("CPU " + e.Cpu->Index.ToString() + ": " + what + ": exit reason " + ((int)e.Reason).ToString()
                + " (raw 0x" + HvMain.Hex(e.Read(VmcsField.ExitReason)) + "), qualification 0x" + HvMain.Hex(e.Qualification)
                + ", instruction error " + ((long)e.Read(VmcsField.VmInstructionError)).ToString());
            Hv.Log.Error("  rip 0x" + HvMain.Hex(e.Read(VmcsField.GuestRip)) + " rsp 0x" + HvMain.Hex(e.Read(VmcsField.GuestRsp))
                + " rflags 0x" + HvMain.Hex(e.Read(VmcsField.GuestRflags)) + " cs 0x" + HvMain.Hex(e.Read(VmcsField.GuestCsSelector))
                + " cs.ar 0x" + HvMain.Hex(e.Read(VmcsField.GuestCsAccessRights)) + " activity " + ((long)e.Read(VmcsField.GuestActivityState)).ToString());
            Hv.Log.Error("  cr0 0x" + HvMain.Hex(e.Read(VmcsField.GuestCr0)) + " cr3 0x" + HvMain.Hex(e.Read(VmcsField.GuestCr3))
                + " cr4 0x" + HvMain.Hex(e.Read(VmcsField.GuestCr4)) + " efer 0x" + HvMain.Hex(e.Read(VmcsField.GuestIa32Efer))
                + " gpa 0x" + HvMain.Hex(e.Read(VmcsField.GuestPhysicalAddress)) + " gla 0x" + HvMain.Hex(e.Read(VmcsField.GuestLinearAddress)));
            Hv.Log.Error("  idt-vectoring 0x" + HvMain.Hex(e.Read(VmcsField.IdtVectoringInformation)) + " exit-interruption 0x"
                + HvMain.Hex(e.Read(VmcsField.VmExitInterruptionInformation)) + " interruptibility 0x" + HvMain.Hex(e.Read(VmcsField.GuestInterruptibilityState)));
            Hv.Log.Error("  rax 0x" + HvMain.Hex(r->Rax) + " rbx 0x" + HvMain.Hex(r->Rbx) + " rcx 0x" + HvMain.Hex(r->Rcx) + " rdx 0x" + HvMain.Hex(r->Rdx)
                + " rsi 0x" + HvMain.Hex(r->Rsi) + " rdi 0x" + HvMain.Hex(r->Rdi) + " rbp 0x" + HvMain.Hex(r->Rbp));
            Hv.Log.Error("  r8 0x" + HvMain.Hex(r->R8) + " r9 0x" + HvMain.Hex(r->R9) + " r10 0x" + HvMain.Hex(r->R10) + " r11 0x" + HvMain.Hex(r->R11)
                + " r12 0x" + HvMain.Hex(r->R12) + " r13 0x" + HvMain.Hex(r->R13) + " r14 0x" + HvMain.Hex(r->R14) + " r15 0x" + HvMain.Hex(r->R15));
        }
    }
}
