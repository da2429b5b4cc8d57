// Boot services, on the CPU being virtualized (called from the launch stub, one CPU at a time):
// enters VMX operation (SDM Vol 3C 24.7, 24.8) and writes the VMCS: controls, host state (hv/Host's
// GDT, TSS, IDT, page tables and stack for this CPU; the firmware's stay loaded until the VM exit) and guest state captured from the running firmware context
// (SDM Vol 3C 25.4, 25.5, 26.3 for what VM entry checks).
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;
using Vigil.Hypervisor.Native;
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxLaunch
    {
        private const ulong Cr0Pe = 1UL << 0, Cr0Pg = 1UL << 31;
        private const ulong Cr4Osxsave = 1UL << 18;
        private const ulong Cr4Smxe = 1UL << 14;

        public static LaunchStatus EnterVmxOperation(VmxCpu* c)
        {
            // IA32_FEATURE_CONTROL is per core: enable VMX outside SMX and lock it if the firmware left it unlocked (SDM Vol 3C 24.7).
            ulong fc = Cpu.ReadMsr((uint)VmxMsr.Ia32FeatureControl);
            if ((fc & (ulong)FeatureControl.Lock) == 0)
            {
                fc |= (ulong)(FeatureControl.Lock | FeatureControl.VmxOutsideSmx);
                Cpu.WriteMsr((uint)VmxMsr.Ia32FeatureControl, fc);
            }
            if ((fc & (ulong)FeatureControl.VmxOutsideSmx) == 0)
            {
                Hv.Log.Error("CPU " + c->Index.ToString() + ": VMX disabled and locked in IA32_FEATURE_CONTROL");
                return LaunchStatus.DisabledByFirmware;
            }
            if ((Cpu.ReadCr4() & VmxBackEnd.Cr4Vmxe) != 0) return LaunchStatus.AlreadyInUse;

            // CR0 and CR4 must hold the fixed bits in VMX operation (SDM Vol 3C 24.8, A.7, A.8).
            c->Cr0Fixed0 = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxCr0Fixed0);
            c->Cr0Fixed1 = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxCr0Fixed1);
            c->Cr4Fixed0 = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxCr4Fixed0);
            c->Cr4Fixed1 = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxCr4Fixed1);
            Cpu.WriteCr0(VmxCapabilities.ApplyFixedBits(Cpu.ReadCr0(), c->Cr0Fixed0, c->Cr0Fixed1));
            Cpu.WriteCr4(VmxCapabilities.ApplyFixedBits(Cpu.ReadCr4() | VmxBackEnd.Cr4Vmxe, c->Cr4Fixed0, c->Cr4Fixed1));

            ulong result = HvStubs.VmxOn(&c->VmxonPhysical);
            if (result != (ulong)VmxResult.Success)
            {
                Cpu.WriteCr4(Cpu.ReadCr4() & ~VmxBackEnd.Cr4Vmxe);
                Hv.Log.Error("CPU " + c->Index.ToString() + ": VMXON failed (" + ((long)result).ToString() + ")");
                return LaunchStatus.LaunchFailed;
            }
            if (HvStubs.VmClear(&c->VmcsPhysical) != 0 || HvStubs.VmPtrLoad(&c->VmcsPhysical) != 0)
            {
                HvStubs.VmxOff();
                Cpu.WriteCr4(Cpu.ReadCr4() & ~VmxBackEnd.Cr4Vmxe);
                Hv.Log.Error("CPU " + c->Index.ToString() + ": VMCLEAR/VMPTRLD failed");
                return LaunchStatus.LaunchFailed;
            }
            return LaunchStatus.Virtualized;
        }

        public static LaunchStatus WriteVmcs(VmxCpu* c, ulong guestRsp, ulong guestRip, ulong guestRflags)
        {
            var v = new HardwareVmcs();

            // --- controls (SDM Vol 3C 25.6-25.8) ---
            ulong efer = Cpu.ReadMsr(0xC000_0080);
            VmEntryControls entry = VmxBackEnd.Entry;
            if ((efer & (1UL << 10)) != 0) entry |= VmEntryControls.Ia32eModeGuest;   // EFER.LMA
            Vmcs.Write32(ref v, VmcsField.PinBasedVmExecutionControls, (uint)VmxBackEnd.Pin);
            Vmcs.Write32(ref v, VmcsField.PrimaryProcessorBasedVmExecutionControls, (uint)VmxBackEnd.Primary);
            Vmcs.Write32(ref v, VmcsField.SecondaryProcessorBasedVmExecutionControls, (uint)VmxBackEnd.Secondary);
            Vmcs.Write32(ref v, VmcsField.VmExitControls, (uint)VmxBackEnd.Exit);
            Vmcs.Write32(ref v, VmcsField.VmEntryControls, (uint)entry);
            Vmcs.Write32(ref v, VmcsField.ExceptionBitmap, 0);
            Vmcs.Write32(ref v, VmcsField.Cr3TargetCount, 0);
            Vmcs.Write32(ref v, VmcsField.VmExitMsrStoreCount, 0);
            Vmcs.Write32(ref v, VmcsField.VmExitMsrLoadCount, 0);
            Vmcs.Write32(ref v, VmcsField.VmEntryMsrLoadCount, 0);
            Vmcs.Write32(ref v, VmcsField.VmEntryInterruptionInformation, 0);
            Vmcs.Write64(ref v, VmcsField.MsrBitmapAddress, VmxBackEnd.MsrBitmap);
            Vmcs.Write64(ref v, VmcsField.EptPointer, VmxEpt.Pointer);
            // With XSAVES/XRSTORS enabled the XSS-exiting bitmap decides which IA32_XSS components make them exit: none
            // (SDM Vol 3C 25.6.20); the field must hold a defined value before the first entry.
            if ((VmxBackEnd.Secondary & SecondaryControls.EnableXsavesXrstors) != 0) Vmcs.Write64(ref v, VmcsField.XssExitingBitmap, 0);
            if (VmxBackEnd.UseVpid) Vmcs.Write16(ref v, VmcsField.VirtualProcessorIdentifier, (ushort)(c->Index + 1));   // 0 is the host's (SDM Vol 3C 29.1)

            // CR0/CR4 bits the guest may not change freely are owned by the host; the guest reads its own
            // value from the shadow (SDM Vol 3C 25.6.6). CR4.VMXE stays set underneath and reads as 0.
            ulong cr0 = Cpu.ReadCr0();
            ulong cr4 = Cpu.ReadCr4();
            ulong cr0Mask = (c->Cr0Fixed0 | ~c->Cr0Fixed1) & ~(Cr0Pe | Cr0Pg);
            ulong cr4Mask = c->Cr4Fixed0 | ~c->Cr4Fixed1 | Cr4Smxe;   // SMXE too: the guest has no SMX (CPUID hides it), setting it faults
            c->Cr0Mask = cr0Mask;
            c->Cr4Mask = cr4Mask;
            Vmcs.WriteNatural(ref v, VmcsField.Cr0GuestHostMask, cr0Mask);
            Vmcs.WriteNatural(ref v, VmcsField.Cr0ReadShadow, cr0);
            Vmcs.WriteNatural(ref v, VmcsField.Cr4GuestHostMask, cr4Mask);
            Vmcs.WriteNatural(ref v, VmcsField.Cr4ReadShadow, cr4 & ~VmxBackEnd.Cr4Vmxe);

            // --- host state (SDM Vol 3C 25.5, 26.2.2-26.2.4) ---
            Vmcs.WriteNatural(ref v, VmcsField.HostCr0, cr0);
            Vmcs.WriteNatural(ref v, VmcsField.HostCr3, HostEnvironment.Cr3);
            uint* r = stackalloc uint[4];
            Cpu.Cpuid(1, 0, r);
            ulong hostCr4 = cr4 | ((r[2] & (1u << 26)) != 0 ? Cr4Osxsave : 0);   // XSETBV on the guest's behalf needs OSXSAVE
            Vmcs.WriteNatural(ref v, VmcsField.HostCr4, hostCr4);
            Vmcs.Write16(ref v, VmcsField.HostCsSelector, HostEnvironment.CodeSelector);
            Vmcs.Write16(ref v, VmcsField.HostSsSelector, HostEnvironment.DataSelector);
            Vmcs.Write16(ref v, VmcsField.HostDsSelector, HostEnvironment.DataSelector);
            Vmcs.Write16(ref v, VmcsField.HostEsSelector, HostEnvironment.DataSelector);
            Vmcs.Write16(ref v, VmcsField.HostFsSelector, HostEnvironment.DataSelector);
            Vmcs.Write16(ref v, VmcsField.HostGsSelector, HostEnvironment.DataSelector);
            Vmcs.Write16(ref v, VmcsField.HostTrSelector, HostEnvironment.TssSelector);
            Vmcs.WriteNatural(ref v, VmcsField.HostFsBase, 0);
            Vmcs.WriteNatural(ref v, VmcsField.HostGsBase, (ulong)c);
            // A VM exit loads TR without checking the descriptor; the GDT limit becomes 0xFFFF, the IDT's too (SDM Vol 3C 28.5.2).
            Vmcs.WriteNatural(ref v, VmcsField.HostTrBase, HostEnvironment.TssBase(c->Index));
            Vmcs.WriteNatural(ref v, VmcsField.HostGdtrBase, HostEnvironment.GdtBase(c->Index));
            Vmcs.WriteNatural(ref v, VmcsField.HostIdtrBase, HostEnvironment.IdtBase);
            Vmcs.Write32(ref v, VmcsField.HostIa32SysenterCs, 0);
            Vmcs.WriteNatural(ref v, VmcsField.HostIa32SysenterEsp, 0);
            Vmcs.WriteNatural(ref v, VmcsField.HostIa32SysenterEip, 0);
            Vmcs.Write64(ref v, VmcsField.HostIa32Efer, efer);
            Vmcs.Write64(ref v, VmcsField.HostIa32Pat, X86PageEntry.DefaultPat);   // HostFormat's leaves use PAT entry 0 (WB): the MTRRs decide
            Vmcs.WriteNatural(ref v, VmcsField.HostRsp, c->HostStackTop - 16);
            Vmcs.WriteNatural(ref v, VmcsField.HostRip, HvStubs.VmxExitEntryAddress());

            // --- guest state: this CPU as the firmware runs it (SDM Vol 3C 25.4) ---
            Vmcs.WriteNatural(ref v, VmcsField.GuestCr0, cr0);
            Vmcs.WriteNatural(ref v, VmcsField.GuestCr3, Cpu.ReadCr3());
            Vmcs.WriteNatural(ref v, VmcsField.GuestCr4, cr4);
            Vmcs.WriteNatural(ref v, VmcsField.GuestDr7, 0x400);
            Vmcs.WriteNatural(ref v, VmcsField.GuestRsp, guestRsp);
            Vmcs.WriteNatural(ref v, VmcsField.GuestRip, guestRip);
            Vmcs.WriteNatural(ref v, VmcsField.GuestRflags, guestRflags);
            byte* gdtr = stackalloc byte[16];
            byte* idtr = stackalloc byte[16];
            Cpu.StoreGdtr(gdtr);
            Cpu.StoreIdtr(idtr);
            ulong gdtBase = *(ulong*)(gdtr + 2);
            uint gdtLimit = *(ushort*)gdtr;
            Vmcs.WriteNatural(ref v, VmcsField.GuestGdtrBase, gdtBase);
            Vmcs.Write32(ref v, VmcsField.GuestGdtrLimit, gdtLimit);
            Vmcs.WriteNatural(ref v, VmcsField.GuestIdtrBase, *(ulong*)(idtr + 2));
            Vmcs.Write32(ref v, VmcsField.GuestIdtrLimit, *(ushort*)idtr);
            WriteSegment(ref v, VmcsField.GuestEsSelector, (byte*)gdtBase, gdtLimit, Cpu.ReadEs());
            WriteSegment(ref v, VmcsField.GuestCsSelector, (byte*)gdtBase, gdtLimit, Cpu.ReadCs());
            WriteSegment(ref v, VmcsField.GuestSsSelector, (byte*)gdtBase, gdtLimit, Cpu.ReadSs());
            WriteSegment(ref v, VmcsField.GuestDsSelector, (byte*)gdtBase, gdtLimit, Cpu.ReadDs());
            WriteSegment(ref v, VmcsField.GuestFsSelector, (byte*)gdtBase, gdtLimit, Cpu.ReadFs());
            WriteSegment(ref v, VmcsField.GuestGsSelector, (byte*)gdtBase, gdtLimit, Cpu.ReadGs());
            WriteSegment(ref v, VmcsField.GuestLdtrSelector, (byte*)gdtBase, gdtLimit, Cpu.StoreLdtr());
            ushort tr = Cpu.StoreTr();
            if (tr == 0)
            {
                // The firmware never loaded a TR; VM entry still wants a usable busy TSS (SDM Vol 3C 26.3.1.2).
                Vmcs.Write16(ref v, VmcsField.GuestTrSelector, 0);
                Vmcs.WriteNatural(ref v, VmcsField.GuestTrBase, 0);
                Vmcs.Write32(ref v, VmcsField.GuestTrLimit, 0xFFFF);
                Vmcs.Write32(ref v, VmcsField.GuestTrAccessRights, 0x8B);
            }
            else
            {
                WriteSegment(ref v, VmcsField.GuestTrSelector, (byte*)gdtBase, gdtLimit, tr);
            }
            Vmcs.WriteNatural(ref v, VmcsField.GuestFsBase, Cpu.ReadMsr(0xC000_0100));
            Vmcs.WriteNatural(ref v, VmcsField.GuestGsBase, Cpu.ReadMsr(0xC000_0101));
            Vmcs.Write64(ref v, VmcsField.GuestIa32Debugctl, Cpu.ReadMsr(0x1D9));
            Vmcs.Write64(ref v, VmcsField.GuestIa32Efer, efer);
            Vmcs.Write64(ref v, VmcsField.GuestIa32Pat, Cpu.ReadMsr(0x277));
            Vmcs.Write32(ref v, VmcsField.GuestIa32SysenterCs, (uint)Cpu.ReadMsr(0x174));
            Vmcs.WriteNatural(ref v, VmcsField.GuestIa32SysenterEsp, Cpu.ReadMsr(0x175));
            Vmcs.WriteNatural(ref v, VmcsField.GuestIa32SysenterEip, Cpu.ReadMsr(0x176));
            Vmcs.Write64(ref v, VmcsField.VmcsLinkPointer, ulong.MaxValue);   // no shadow VMCS (SDM Vol 3C 26.3.1.5)
            Vmcs.Write32(ref v, VmcsField.GuestInterruptibilityState, 0);
            Vmcs.Write32(ref v, VmcsField.GuestActivityState, 0);
            Vmcs.WriteNatural(ref v, VmcsField.GuestPendingDebugExceptions, 0);

            if (v.Failures != 0)
            {
                Hv.Log.Error("CPU " + c->Index.ToString() + ": " + v.Failures.ToString() + " VMCS writes failed, first 0x" + HvMain.Hex((uint)v.FirstFailure));
                return LaunchStatus.LaunchFailed;
            }
            return LaunchStatus.Virtualized;
        }

        private static void WriteSegment(ref HardwareVmcs v, VmcsField selectorField, byte* gdt, uint gdtLimit, ushort selector)
        {
            // Selector, limit, access rights and base fields of one register sit at fixed distances
            // from the selector's encoding (SDM Vol 3C Appendix B: 0x08xx, 0x48xx, 0x4814 + n, 0x6806 + n).
            uint n = (uint)selectorField - (uint)VmcsField.GuestEsSelector;
            SegmentState s = SegmentAccessRights.FromGdt(gdt, gdtLimit, selector);
            Vmcs.Write16(ref v, selectorField, selector);
            Vmcs.Write32(ref v, (VmcsField)((uint)VmcsField.GuestEsLimit + n), s.Limit);
            Vmcs.Write32(ref v, (VmcsField)((uint)VmcsField.GuestEsAccessRights + n), s.AccessRights);
            Vmcs.WriteNatural(ref v, (VmcsField)((uint)VmcsField.GuestEsBase + n), s.Base);
        }

        /// <summary>VM-instruction error numbers (SDM Vol 3C 31.4, Table 31-1) for the log.</summary>
        public static string InstructionErrorName(ulong error) => error switch
        {
            1 => "VMCALL in VMX root",
            2 => "VMCLEAR with invalid address",
            4 => "VMLAUNCH with non-clear VMCS",
            5 => "VMRESUME with non-launched VMCS",
            7 => "entry with invalid control fields",
            8 => "entry with invalid host-state fields",
            9 => "VMPTRLD with invalid address",
            12 => "VMREAD/VMWRITE of unsupported field",
            13 => "VMWRITE to read-only field",
            26 => "entry with events blocked by MOV SS",
            28 => "invalid operand to INVEPT/INVVPID",
            _ => "see SDM Vol 3C Table 31-1",
        };
    }
}
