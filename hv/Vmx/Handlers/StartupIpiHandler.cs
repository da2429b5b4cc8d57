// VMX root, interrupts off. A SIPI to a vCPU in wait-for-SIPI exits (SDM Vol 3C 26.2); the vector is
// the exit qualification's low byte. Start the AP in real mode at vector * 4 KiB: CS selector
// vector << 8, base vector << 12, IP 0 (SDM Vol 3A 9.4.4.1). No logging here: timing-sensitive.
namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class StartupIpiHandler
    {
        public static ExitAction Handle(ref VmxExit e)
        {
            ulong vector = e.Qualification & 0xFF;
            e.Write(VmcsField.GuestCsSelector, vector << 8);
            e.Write(VmcsField.GuestCsBase, vector << 12);
            e.Write(VmcsField.GuestRip, 0);
            // Nothing may stay blocked from the wait state (Bochs reports SMI/NMI blocking there; SMI blocking
            // outside SMM fails VM entry, SDM Vol 3C 26.3.1.5).
            e.Write(VmcsField.GuestInterruptibilityState, 0);
            e.Write(VmcsField.GuestPendingDebugExceptions, 0);
            e.Write(VmcsField.GuestActivityState, 0);
            e.Cpu->WaitingForSipi = 0;
            return ExitAction.Resume;
        }
    }
}
