// VMX root, interrupts off. Control-register accesses that exit (SDM Vol 3C 26.1.3; exit
// qualification Table 28-3): MOV to CR0/CR4 changing a bit the host owns (the guest/host masks hold
// the VMX fixed bits, so CR4.VMXE stays set underneath and reads as the guest wrote it), CLTS/LMSW
// likewise, and CR3 accesses where the CPU forces CR3 exiting. The guest sees its own value through
// the read shadow; the real register gets the fixed bits.
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class ControlRegisterHandler
    {
        private const ulong Cr0Pe = 1UL << 0, Cr0Ts = 1UL << 3, Cr0Pg = 1UL << 31;
        private const ulong EferLme = 1UL << 8, EferLma = 1UL << 10;

        public static ExitAction Handle(ref VmxExit e)
        {
            ulong q = e.Qualification;
            int cr = (int)(q & 0xF);
            int type = (int)((q >> 4) & 3);
            int gpr = (int)((q >> 8) & 0xF);
            switch (type)
            {
                case 0:   // MOV to CR
                {
                    ulong value = gpr == 4 ? e.Read(VmcsField.GuestRsp) : e.Registers->Get(gpr);
                    if (cr == 0) return WriteCr0(ref e, value);
                    if (cr == 4) return WriteCr4(ref e, value);
                    if (cr == 3)
                    {
                        e.Write(VmcsField.GuestCr3, value & ~(1UL << 63));   // bit 63 (no PCID flush) is not part of CR3
                        FlushGuestTlb();
                        return ExitAction.AdvanceRip;
                    }
                    break;
                }
                case 1:   // MOV from CR (only CR3 can exit this way)
                    if (cr == 3)
                    {
                        ulong value = e.Read(VmcsField.GuestCr3);
                        if (gpr == 4) e.Write(VmcsField.GuestRsp, value);
                        else e.Registers->Set(gpr, value);
                        return ExitAction.AdvanceRip;
                    }
                    break;
                case 2:   // CLTS
                    return WriteCr0(ref e, e.Read(VmcsField.Cr0ReadShadow) & ~Cr0Ts);
                case 3:   // LMSW: loads CR0 bits 3:0, cannot clear PE (SDM Vol 2A LMSW)
                {
                    ulong source = (q >> 16) & 0xF;
                    ulong old = e.Read(VmcsField.Cr0ReadShadow);
                    return WriteCr0(ref e, (old & ~0xEUL) | source | (old & Cr0Pe));
                }
            }
            VmxFatal.Report(ref e, "unexpected control-register access");
            return ExitAction.Resume;
        }

        private static ExitAction WriteCr0(ref VmxExit e, ulong value)
        {
            VmxCpu* c = e.Cpu;
            ulong oldReal = e.Read(VmcsField.GuestCr0);
            // Unrestricted guest: PE and PG are the guest's (SDM Vol 3C 26.3.1.1); the other fixed bits are forced.
            ulong real = ((value | (c->Cr0Fixed0 & ~(Cr0Pe | Cr0Pg))) & c->Cr0Fixed1) | (value & (Cr0Pe | Cr0Pg));
            e.Write(VmcsField.GuestCr0, real);
            e.Write(VmcsField.Cr0ReadShadow, value);
            if (((oldReal ^ real) & Cr0Pg) != 0)
            {
                // Paging on/off with EFER.LME set moves the guest in or out of IA-32e mode: EFER.LMA and the
                // "IA-32e mode guest" entry control follow (SDM Vol 3A 10.8.5, Vol 3C 25.8.1).
                ulong efer = e.Read(VmcsField.GuestIa32Efer);
                ulong entry = e.Read(VmcsField.VmEntryControls);
                if ((real & Cr0Pg) != 0 && (efer & EferLme) != 0)
                {
                    efer |= EferLma;
                    entry |= (ulong)VmEntryControls.Ia32eModeGuest;
                }
                else if ((real & Cr0Pg) == 0)
                {
                    efer &= ~EferLma;
                    entry &= ~(ulong)VmEntryControls.Ia32eModeGuest;
                }
                e.Write(VmcsField.GuestIa32Efer, efer);
                e.Write(VmcsField.VmEntryControls, entry);
                FlushGuestTlb();
            }
            return ExitAction.AdvanceRip;
        }

        private static ExitAction WriteCr4(ref VmxExit e, ulong value)
        {
            VmxCpu* c = e.Cpu;
            // The guest has no VMX: setting CR4.VMXE faults as on such a CPU.
            if ((value & VmxBackEnd.Cr4Vmxe) != 0) return VmxInject.GeneralProtectionFault(ref e);
            e.Write(VmcsField.GuestCr4, (value | c->Cr4Fixed0) & c->Cr4Fixed1);
            e.Write(VmcsField.Cr4ReadShadow, value);
            FlushGuestTlb();   // MOV to CR4 may flush the TLB (PGE, PCIDE changes, SDM Vol 3A 4.10.4.1)
            return ExitAction.AdvanceRip;
        }

        public static void FlushGuestTlb()
        {
            if (!VmxBackEnd.UseVpid) return;   // without VPID every VM entry and exit flushes (SDM Vol 3C 29.1)
            ulong* descriptor = stackalloc ulong[2];
            descriptor[0] = 0;
            descriptor[1] = 0;
            HvStubs.Invvpid(2, descriptor);   // all contexts (SDM Vol 2C INVVPID)
        }
    }
}
