// VMX root, interrupts off. INIT always exits in VMX non-root (SDM Vol 3C 26.2). The OS sends
// INIT-SIPI-SIPI to start an AP that is already our guest: put the vCPU in the INIT state (SDM Vol 3A
// 9.1.1, Table 9-1) and in the wait-for-SIPI activity state (SDM Vol 3C 25.4.2), so the next SIPI
// exits and StartupIpiHandler starts it at the vector. QEMU/KVM lacks wait-for-SIPI (DESIGN.md
// pitfall): there a host-side wait is needed; not done yet. No logging here: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class InitSignalHandler
    {
        public const uint ActivityWaitForSipi = 3;

        public static ExitAction Handle(ref VmxExit e)
        {
            VmxCpu* c = e.Cpu;
            const ulong resetCr0 = 0x6000_0010;   // CD, NW, ET
            e.Write(VmcsField.GuestCr0, (resetCr0 | (c->Cr0Fixed0 & ~1UL & ~(1UL << 31))) & c->Cr0Fixed1);
            e.Write(VmcsField.Cr0ReadShadow, resetCr0);
            e.Write(VmcsField.GuestCr3, 0);
            e.Write(VmcsField.GuestCr4, c->Cr4Fixed0);
            e.Write(VmcsField.Cr4ReadShadow, 0);
            e.Write(VmcsField.GuestIa32Efer, 0);
            e.Write(VmcsField.VmEntryControls, e.Read(VmcsField.VmEntryControls) & ~(ulong)VmEntryControls.Ia32eModeGuest);
            e.Write(VmcsField.GuestRflags, 2);
            e.Write(VmcsField.GuestRip, 0xFFF0);
            e.Write(VmcsField.GuestRsp, 0);
            e.Write(VmcsField.GuestDr7, 0x400);
            for (uint n = 0; n < 12; n += 2)
            {
                // ES, CS, SS, DS, FS, GS: real-mode segments (CS gets its SIPI vector later).
                e.Write((VmcsField)((uint)VmcsField.GuestEsSelector + n), 0);
                e.Write((VmcsField)((uint)VmcsField.GuestEsBase + n), 0);
                e.Write((VmcsField)((uint)VmcsField.GuestEsLimit + n), 0xFFFF);
                e.Write((VmcsField)((uint)VmcsField.GuestEsAccessRights + n), n == 2 ? 0x9BUL : 0x93UL);
            }
            e.Write(VmcsField.GuestLdtrSelector, 0);
            e.Write(VmcsField.GuestLdtrBase, 0);
            e.Write(VmcsField.GuestLdtrLimit, 0xFFFF);
            e.Write(VmcsField.GuestLdtrAccessRights, 0x82);
            e.Write(VmcsField.GuestTrSelector, 0);
            e.Write(VmcsField.GuestTrBase, 0);
            e.Write(VmcsField.GuestTrLimit, 0xFFFF);
            e.Write(VmcsField.GuestTrAccessRights, 0x8B);
            e.Write(VmcsField.GuestGdtrBase, 0);
            e.Write(VmcsField.GuestGdtrLimit, 0xFFFF);
            e.Write(VmcsField.GuestIdtrBase, 0);
            e.Write(VmcsField.GuestIdtrLimit, 0xFFFF);
            e.Write(VmcsField.GuestFsBase, 0);
            e.Write(VmcsField.GuestGsBase, 0);
            e.Write(VmcsField.GuestIa32SysenterCs, 0);
            e.Write(VmcsField.GuestIa32SysenterEsp, 0);
            e.Write(VmcsField.GuestIa32SysenterEip, 0);
            e.Write(VmcsField.GuestInterruptibilityState, 0);
            e.Write(VmcsField.GuestPendingDebugExceptions, 0);
            e.Write(VmcsField.VmEntryInterruptionInformation, 0);
            GuestRegisters* r = e.Registers;
            r->Rax = r->Rbx = r->Rcx = r->Rsi = r->Rdi = r->Rbp = 0;
            r->R8 = r->R9 = r->R10 = r->R11 = r->R12 = r->R13 = r->R14 = r->R15 = 0;
            r->Rdx = 0x600;   // family 6 processor signature after INIT
            c->WaitingForSipi = 1;
            e.Write(VmcsField.GuestActivityState, ActivityWaitForSipi);
            ControlRegisterHandler.FlushGuestTlb();
            return ExitAction.Resume;
        }
    }
}
