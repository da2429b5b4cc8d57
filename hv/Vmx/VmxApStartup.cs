// VMX root, interrupts off: the VMX half of the AP start-up protocol (hv/Core/ApStartup). An AP in the
// INIT state (its INIT was caught at the sender, which then raised an NMI to get it out of the guest:
// hv/Host/ApKick; or a real INIT exit) waits in the host for its start-up IPI, caught at the sender too,
// then resumes in real mode at the vector: the state after INIT
// (SDM Vol 3A 9.1.1, Table 9-1) with CS at vector << 8 (SDM Vol 3A 9.4.4.1), in the active state.
// The wait-for-SIPI activity state is never used: QEMU/KVM's nested VMX lacks it, and Bochs 2.7 keeps
// a delivered INIT pending after the INIT exit (fixed in Bochs after 2.7, commit 88f881c6d), so the
// AP would take the INIT again on every entry. No logging here: timing-sensitive.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxApStartup
    {
        /// <summary>Parks this CPU in the host until a start-up IPI for it arrives, then starts the guest there.</summary>
        public static void WaitForStartup(ref VmxExit e)
        {
            uint vector;
            while (!ApStartup.TryStart(e.Cpu->Index, out vector))
            {
                VmxNestedMapChanges.Acknowledge(e.Cpu->Index);   // a CPU offline waits here for long: EPT changes must not wait for it
                Vigil.Platform.Cpu.Pause();
            }
            StartAt(ref e, vector);
            LogRings.Write(e.Cpu->Index, LogEvent.ApStarted, vector, (ulong)vector << 12);
        }

        /// <summary>The state after INIT and a start-up IPI with <paramref name="vector"/>: real mode at vector:0000.</summary>
        public static void StartAt(ref VmxExit e, uint vector)
        {
            VmxCpu* c = e.Cpu;
            const ulong resetCr0 = 0x6000_0010;   // CD, NW, ET
            // Unrestricted guest: PE and PG may be 0 (SDM Vol 3C 26.3.1.1); the other fixed bits stay, shadowed.
            e.Write(VmcsField.GuestCr0, (resetCr0 | (c->Cr0Fixed0 & ~1UL & ~(1UL << 31))) & c->Cr0Fixed1);
            e.Write(VmcsField.Cr0ReadShadow, resetCr0);
            e.Write(VmcsField.GuestCr3, 0);
            e.Write(VmcsField.GuestCr4, c->Cr4Fixed0);
            e.Write(VmcsField.Cr4ReadShadow, 0);
            e.Write(VmcsField.GuestIa32Efer, 0);
            e.Write(VmcsField.VmEntryControls, e.Read(VmcsField.VmEntryControls) & ~(ulong)VmEntryControls.Ia32eModeGuest);
            e.Write(VmcsField.GuestRflags, 2);
            e.Write(VmcsField.GuestRip, 0);
            e.Write(VmcsField.GuestRsp, 0);
            e.Write(VmcsField.GuestDr7, 0x400);
            for (uint n = 0; n < 12; n += 2)
            {
                // ES, CS, SS, DS, FS, GS: real-mode segments, CS at the vector's page.
                ulong selector = n == 2 ? (ulong)vector << 8 : 0;
                e.Write((VmcsField)((uint)VmcsField.GuestEsSelector + n), selector);
                e.Write((VmcsField)((uint)VmcsField.GuestEsBase + n), selector << 4);
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
            e.Write(VmcsField.GuestIa32SysenterCs, 0);
            e.Write(VmcsField.GuestIa32SysenterEsp, 0);
            e.Write(VmcsField.GuestIa32SysenterEip, 0);
            // Nothing blocked, nothing to inject (Bochs reports SMI/NMI blocking after a wait state; SMI blocking
            // outside SMM fails VM entry, SDM Vol 3C 26.3.1.5), active.
            e.Write(VmcsField.GuestInterruptibilityState, 0);
            e.Write(VmcsField.GuestPendingDebugExceptions, 0);
            e.Write(VmcsField.VmEntryInterruptionInformation, 0);
            e.Write(VmcsField.GuestActivityState, 0);
            GuestRegisters* r = e.Registers;
            r->Rax = r->Rbx = r->Rcx = r->Rsi = r->Rdi = r->Rbp = 0;
            r->R8 = r->R9 = r->R10 = r->R11 = r->R12 = r->R13 = r->R14 = r->R15 = 0;
            uint* id = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(1, 0, id);
            r->Rdx = id[0];   // EDX = the processor signature after INIT
            Handlers.ControlRegisterHandler.FlushGuestTlb();
        }
    }
}
