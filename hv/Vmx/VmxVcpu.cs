// VMX root, interrupts off. The vendor-neutral vCPU (hv/Core/Vcpu/IVcpu) over the current VMCS: what the
// shared handlers read and write, as VMREAD/VMWRITE of the SDM's fields (SDM Vol 3C 25.4 guest state, 25.8.3
// entry event injection, 28.2 exit information). Created on the stack per exit by VmxExitDispatcher and
// passed by reference (struct-constrained generics: no interface dispatch at run time).
using System.Runtime.CompilerServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;
using Vigil.Hypervisor.Host;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx
{
    internal unsafe struct VmxVcpu : IVcpu
    {
        private const ulong Cr0Pe = 1UL << 0, Cr0Pg = 1UL << 31;
        private const ulong EferLme = 1UL << 8, EferLma = 1UL << 10;
        private const ulong RflagsVm = 1UL << 17;
        private const ulong CsLong = 1UL << 13, CsDefaultBig = 1UL << 14;   // access rights (SDM Vol 3C 25.4.1)
        private const ulong BlockingStiMovSs = 3, BlockingNmi = 1UL << 3;  // interruptibility state (SDM Vol 3C Table 25-3)
        private const ulong PendingSingleStep = 1UL << 14;                   // pending debug exceptions BS (SDM Vol 3C Table 25-4)

        private readonly VmxExit* _exit;

        /// <summary>The guest state was replaced (start-up IPI): the exit's interrupted event belongs to the old one.</summary>
        private bool _startedOver;

        public VmxVcpu(VmxExit* exit)
        {
            _exit = exit;
            _startedOver = false;
        }

        public VmxExit* Exit => _exit;

        private static ulong Read(VmcsField field) => HvStubs.VmReadValue((uint)field);

        private static void Write(VmcsField field, ulong value) => HvStubs.VmWrite((uint)field, value);

        public uint Index => _exit->Cpu->Index;

        public Vendor Vendor => Vendor.IntelVmx;

        public ref GuestRegisters Registers => ref *_exit->Registers;

        public ulong Rip { get => Read(VmcsField.GuestRip); set => Write(VmcsField.GuestRip, value); }

        public ulong Rsp { get => Read(VmcsField.GuestRsp); set => Write(VmcsField.GuestRsp, value); }

        public ulong Rflags { get => Read(VmcsField.GuestRflags); set => Write(VmcsField.GuestRflags, value); }

        /// <summary>Host-owned bits (guest/host mask) read from the shadow, the others from the register (SDM Vol 3C 25.6.6).</summary>
        public ulong Cr0
        {
            get
            {
                ulong mask = _exit->Cpu->Cr0Mask;
                return (Read(VmcsField.GuestCr0) & ~mask) | (Read(VmcsField.Cr0ReadShadow) & mask);
            }
        }

        public ulong Cr3 => Read(VmcsField.GuestCr3);

        public ulong Cr4
        {
            get
            {
                ulong mask = _exit->Cpu->Cr4Mask;
                return (Read(VmcsField.GuestCr4) & ~mask) | (Read(VmcsField.Cr4ReadShadow) & mask);
            }
        }

        public ulong Efer => Read(VmcsField.GuestIa32Efer);

        /// <summary>SS.DPL is the CPL (SDM Vol 3C 26.3.1.2).</summary>
        public int Cpl => (int)((Read(VmcsField.GuestSsAccessRights) >> 5) & 3);

        public ulong CsBase => Read(VmcsField.GuestCsBase);

        public CpuMode Mode
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get
            {
                ulong cs = Read(VmcsField.GuestCsAccessRights);
                bool csLong = (cs & CsLong) != 0, lma = csLong && (Efer & EferLma) != 0;   // EFER read only when CS.L is set
                if (lma) return CpuMode.Bits64;   // the common case in two VMREADs (LMA implies PE, excludes VM)
                if ((Read(VmcsField.GuestCr0) & Cr0Pe) == 0 || (Read(VmcsField.GuestRflags) & RflagsVm) != 0) return CpuMode.Bits16;
                return InstructionLength.ModeOf(lma, csLong, (cs & CsDefaultBig) != 0);
            }
        }

        public ulong Pat { get => Read(VmcsField.GuestIa32Pat); set => Write(VmcsField.GuestIa32Pat, value); }

        public ulong ExitGuestPhysical => Read(VmcsField.GuestPhysicalAddress);

        public ulong ExitGuestLinear => _exit->Reason == VmxExitReason.EptViolation && (_exit->Qualification & (1UL << 7)) != 0
            ? Read(VmcsField.GuestLinearAddress) : VcpuConstants.NoLinearAddress;

        /// <summary>Valid for exits caused by an instruction; not for EPT violations and event exits (SDM Vol 3C 28.2.5).</summary>
        public int ExitInstructionLength
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => _exit->Reason is VmxExitReason.EptViolation or VmxExitReason.EptMisconfiguration or VmxExitReason.ExceptionOrNmi
            or VmxExitReason.InitSignal or VmxExitReason.StartupIpi or VmxExitReason.InterruptWindow or VmxExitReason.NmiWindow
            ? 0 : (int)Read(VmcsField.VmExitInstructionLength);
        }

        public ulong ReservedBase => VmxBackEnd.ReservedBase;

        public ulong ReservedSize => VmxBackEnd.ReservedSize;

        public void HostCpuid(uint leaf, uint subleaf, out CpuidResult result) => Host.HostCpuid.Read(leaf, subleaf, out result);

        public GuestFeatures Features => VmxBackEnd.GuestFeatures;

        /// <summary>What the CPU allows in VMX operation (IA32_VMX_CR4_FIXED1, SDM Vol 3C A.8), minus VMXE and SMXE: the guest has neither VMX nor SMX.</summary>
        public ulong Cr4Supported => _exit->Cpu->Cr4Fixed1 & ~VmxBackEnd.Cr4Vmxe & ~Cr4Smxe;

        private const ulong Cr4Smxe = 1UL << 14;

        public void LoadCr0(ulong value)
        {
            VmxCpu* c = _exit->Cpu;
            ulong oldReal = Read(VmcsField.GuestCr0);
            // Unrestricted guest: PE and PG are the guest's (SDM Vol 3C 26.3.1.1); the other fixed bits are forced underneath.
            ulong real = ((value | (c->Cr0Fixed0 & ~(Cr0Pe | Cr0Pg))) & c->Cr0Fixed1) | (value & (Cr0Pe | Cr0Pg));
            Write(VmcsField.GuestCr0, real);
            Write(VmcsField.Cr0ReadShadow, value);
            if (((oldReal ^ real) & Cr0Pg) != 0)
            {
                // Paging on/off with EFER.LME set moves the guest in or out of IA-32e mode: EFER.LMA and the
                // "IA-32e mode guest" entry control follow (SDM Vol 3A 10.8.5, Vol 3C 25.8.1).
                ulong efer = Read(VmcsField.GuestIa32Efer);
                ulong entry = Read(VmcsField.VmEntryControls);
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
                Write(VmcsField.GuestIa32Efer, efer);
                Write(VmcsField.VmEntryControls, entry);
                FlushGuestTlb();
            }
        }

        public void LoadCr3(ulong value)
        {
            Write(VmcsField.GuestCr3, value);
            FlushGuestTlb();
        }

        /// <summary>The validated value (ControlRegisterExit): nothing of it is dropped underneath; VMXE stays set there and reads as 0.</summary>
        public void LoadCr4(ulong value)
        {
            VmxCpu* c = _exit->Cpu;
            Write(VmcsField.GuestCr4, value | c->Cr4Fixed0);
            Write(VmcsField.Cr4ReadShadow, value);
            FlushGuestTlb();   // MOV to CR4 may flush the TLB (PGE, PCIDE changes, SDM Vol 3A 4.10.4.1)
        }

        /// <summary>XCR0 is not switched by VM entry/exit: the host's XSETBV sets the guest's (the host runs with CR4.OSXSAVE where the CPU has XSAVE).</summary>
        public void LoadXcr0(ulong value)
        {
            if (VmxBackEnd.HasXsave) HvStubs.Xsetbv(0, value);
        }

        /// <summary>XGETBV needs CR4.OSXSAVE, which the host has where the CPU has XSAVE (VmxLaunch).</summary>
        public ulong Xcr0 => VmxBackEnd.HasXsave ? Vigil.Platform.Cpu.ReadXcr(0) : StartupState.ResetXcr0;

        public MsrOutcome ReadVendorMsr(uint msr, out ulong value)
        {
            value = 0;
            if (msr != Core.Msr.MsrPolicy.FeatureControl) return MsrOutcome.GeneralProtection;
            value = VmxMsrPolicy.FeatureControlView(Vigil.Platform.Cpu.ReadMsr(msr));
            return MsrOutcome.Done;
        }

        /// <summary>IA32_FEATURE_CONTROL is locked (a write faults on hardware too), the VMX capability MSRs are read-only, unknown MSRs fault.</summary>
        public MsrOutcome WriteVendorMsr(uint msr, ulong value) => MsrOutcome.GeneralProtection;

        public ulong FsBase => Read(VmcsField.GuestFsBase);

        public ulong GsBase => Read(VmcsField.GuestGsBase);

        /// <summary>CR2 is not part of the VMCS: the guest's is the register itself, which VM entry leaves alone (SDM Vol 3C 27.3.1.1 note).</summary>
        public void LoadCr2(ulong value) => Vigil.Platform.Cpu.WriteCr2(value);

        public void ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out ulong idtBase, out uint idtLimit)
        {
            gdtBase = Read(VmcsField.GuestGdtrBase);
            gdtLimit = (uint)Read(VmcsField.GuestGdtrLimit);
            idtBase = Read(VmcsField.GuestIdtrBase);
            idtLimit = (uint)Read(VmcsField.GuestIdtrLimit);
        }

        public ushort Selector(SegmentRegister register) => (ushort)Read((VmcsField)((uint)VmcsField.GuestEsSelector + ((uint)register * 2)));

        /// <summary>
        /// STAR, LSTAR, CSTAR, SFMASK are not switched by VM entry/exit: the register is the guest's (written with #GP caught);
        /// SYSENTER_CS/ESP/EIP and EFER are VMCS guest fields, loaded on every entry (SDM Vol 3C 25.4.1, 27.3.1.1).
        /// </summary>
        public ulong ReadGuardedMsr(uint msr)
        {
            switch (msr)
            {
                case GuardMsrs.SysenterCs: return Read(VmcsField.GuestIa32SysenterCs);
                case GuardMsrs.SysenterEsp: return Read(VmcsField.GuestIa32SysenterEsp);
                case GuardMsrs.SysenterEip: return Read(VmcsField.GuestIa32SysenterEip);
                case GuardMsrs.Efer: return Efer;
                default: return TryRead(msr, out ulong value) ? value : 0;
            }
        }

        public MsrOutcome WriteGuardedMsr(uint msr, ulong value)
        {
            switch (msr)
            {
                case GuardMsrs.SysenterCs:
                    Write(VmcsField.GuestIa32SysenterCs, value & 0xFFFF_FFFF);
                    return MsrOutcome.Done;
                case GuardMsrs.SysenterEsp:
                case GuardMsrs.SysenterEip:
                    if (!GuestMemory.IsCanonical(value, (Cr4 & (1UL << 12)) != 0)) return MsrOutcome.GeneralProtection;
                    Write(msr == GuardMsrs.SysenterEsp ? VmcsField.GuestIa32SysenterEsp : VmcsField.GuestIa32SysenterEip, value);
                    return MsrOutcome.Done;
                case GuardMsrs.Efer:
                {
                    ulong old = Efer;
                    if (!GuardMsrs.ValidEfer(old, value, (Read(VmcsField.GuestCr0) & Cr0Pg) != 0)) return MsrOutcome.GeneralProtection;
                    Write(VmcsField.GuestIa32Efer, (value & ~EferLma) | (old & EferLma));   // LMA is the CPU's (SDM Vol 3A 10.8.5)
                    return MsrOutcome.Done;
                }
                default:
                    return TryWrite(msr, value) ? MsrOutcome.Done : MsrOutcome.GeneralProtection;
            }
        }

        public bool TryRead(uint msr, out ulong value) => default(Host.HostSafeMsr).TryRead(msr, out value);

        public bool TryWrite(uint msr, ulong value) => default(Host.HostSafeMsr).TryWrite(msr, value);

        public ulong ApicBaseMsr => Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr);

        public VcpuEvent InterruptedEvent
        {
            get
            {
                if (_startedOver) return VcpuEvent.None;
                uint info = (uint)Read(VmcsField.IdtVectoringInformation);
                if ((info & VcpuEvent.ValidBit) == 0) return VcpuEvent.None;
                uint error = (info & VcpuEvent.ErrorCodeValidBit) != 0 ? (uint)Read(VmcsField.IdtVectoringErrorCode) : 0;
                uint type = (info >> 8) & 7;
                int length = type >= 4 ? (int)Read(VmcsField.VmExitInstructionLength) : 0;   // software events: re-injected with their length
                return VcpuEvent.FromInfo(info, error, length);
            }
        }

        public VcpuEvent Injected
        {
            get
            {
                uint info = (uint)Read(VmcsField.VmEntryInterruptionInformation);
                if ((info & VcpuEvent.ValidBit) == 0) return VcpuEvent.None;
                uint error = (info & VcpuEvent.ErrorCodeValidBit) != 0 ? (uint)Read(VmcsField.VmEntryExceptionErrorCode) : 0;
                return VcpuEvent.FromInfo(info, error, (int)Read(VmcsField.VmEntryInstructionLength));
            }
            set
            {
                if (value.Valid)
                {
                    if (value.HasErrorCode) Write(VmcsField.VmEntryExceptionErrorCode, value.ErrorCode);
                    if (value.IsSoftware) Write(VmcsField.VmEntryInstructionLength, (ulong)value.InstructionLength);
                }
                Write(VmcsField.VmEntryInterruptionInformation, value.Valid ? value.Info : 0);
            }
        }

        public bool InterruptShadow
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (Read(VmcsField.GuestInterruptibilityState) & BlockingStiMovSs) != 0;
            set
            {
                ulong state = Read(VmcsField.GuestInterruptibilityState);
                Write(VmcsField.GuestInterruptibilityState, value ? state | 1 : state & ~BlockingStiMovSs);
            }
        }

        public bool NmiBlocked
        {
            get => (Read(VmcsField.GuestInterruptibilityState) & BlockingNmi) != 0;
            set
            {
                ulong state = Read(VmcsField.GuestInterruptibilityState);
                Write(VmcsField.GuestInterruptibilityState, value ? state | BlockingNmi : state & ~BlockingNmi);
            }
        }

        public ref VcpuEvent Deferred => ref _exit->Cpu->Deferred;

        /// <summary>Interrupt-window exiting (SDM Vol 3C 25.6.2, 26.7.5): an exit when RFLAGS.IF = 1 and nothing blocks interrupts.</summary>
        public void RequestInterruptWindow(bool on) => SetPrimary(PrimaryControls.InterruptWindowExiting, on);

        /// <summary>
        /// The BS bit of the pending debug exceptions: the CPU delivers the single-step #DB (DR6.BS set) right after VM
        /// entry, before the guest's next instruction (SDM Vol 3C 27.7.3); VMX keeps DR6 in the hardware register.
        /// </summary>
        public void RaiseSingleStep() => Write(VmcsField.GuestPendingDebugExceptions, Read(VmcsField.GuestPendingDebugExceptions) | PendingSingleStep);

        public void TripleFault() => Handlers.TripleFaultHandler.Handle(ref *_exit);

        public void LoadSegment(SegmentRegister register, ushort selector, ulong baseAddress, uint limit, uint accessRights)
        {
            // Selector, limit, access rights and base of one register sit at fixed distances from ES's (SDM Vol 3C Appendix B).
            uint n = (uint)register * 2;
            Write((VmcsField)((uint)VmcsField.GuestEsSelector + n), selector);
            Write((VmcsField)((uint)VmcsField.GuestEsBase + n), baseAddress);
            Write((VmcsField)((uint)VmcsField.GuestEsLimit + n), limit);
            Write((VmcsField)((uint)VmcsField.GuestEsAccessRights + n), accessRights);
        }

        public void LoadDescriptorTables(ulong gdtBase, uint gdtLimit, ulong idtBase, uint idtLimit)
        {
            Write(VmcsField.GuestGdtrBase, gdtBase);
            Write(VmcsField.GuestGdtrLimit, gdtLimit);
            Write(VmcsField.GuestIdtrBase, idtBase);
            Write(VmcsField.GuestIdtrLimit, idtLimit);
        }

        public void LoadResetControlState(ulong cr0, ulong dr7)
        {
            VmxCpu* c = _exit->Cpu;
            // Unrestricted guest: PE and PG may be 0 (SDM Vol 3C 26.3.1.1); the other fixed bits stay, shadowed.
            Write(VmcsField.GuestCr0, (cr0 | (c->Cr0Fixed0 & ~Cr0Pe & ~Cr0Pg)) & c->Cr0Fixed1);
            Write(VmcsField.Cr0ReadShadow, cr0);
            Write(VmcsField.GuestCr3, 0);
            Write(VmcsField.GuestCr4, c->Cr4Fixed0);
            Write(VmcsField.Cr4ReadShadow, 0);
            Write(VmcsField.GuestIa32Efer, 0);
            Write(VmcsField.VmEntryControls, Read(VmcsField.VmEntryControls) & ~(ulong)VmEntryControls.Ia32eModeGuest);
            Write(VmcsField.GuestDr7, dr7);
            Write(VmcsField.GuestIa32SysenterCs, 0);
            Write(VmcsField.GuestIa32SysenterEsp, 0);
            Write(VmcsField.GuestIa32SysenterEip, 0);
            // IA32_XSS is not switched by VM entry/exit (the register is the guest's): its reset value 0, like XCR0's 1 (StartupState).
            if (VmxBackEnd.HasXsaves) Vigil.Platform.Cpu.WriteMsr(VmxBackEnd.XssMsr, 0);
        }

        public void ClearEventState()
        {
            _startedOver = true;
            // Nothing blocked, nothing to inject (Bochs reports SMI/NMI blocking after a wait state; SMI blocking
            // outside SMM fails VM entry, SDM Vol 3C 26.3.1.5), active.
            Write(VmcsField.GuestInterruptibilityState, 0);
            Write(VmcsField.GuestPendingDebugExceptions, 0);
            Write(VmcsField.VmEntryInterruptionInformation, 0);
            Write(VmcsField.GuestActivityState, 0);
            SetPrimary(PrimaryControls.InterruptWindowExiting | PrimaryControls.NmiWindowExiting, false);
            _exit->Cpu->Deferred = VcpuEvent.None;
            // NMIs queued for the old guest state are not the new one's. The sender's kick NMI (VmxApKick) arrived
            // while this CPU waited for its start-up IPI (INIT and start-up IPI are milliseconds apart): forget it too.
            HostEnvironment.Cpu(Index)->PendingNmis = 0;
            ApStartup.ConsumeKick(Index);
        }

        public void FlushGuestTlb()
        {
            if (!VmxBackEnd.UseVpid) return;   // without VPID every VM entry and exit flushes (SDM Vol 3C 29.1)
            ulong* descriptor = stackalloc ulong[2];
            descriptor[0] = 0;
            descriptor[1] = 0;
            HvStubs.Invvpid(2, descriptor);   // all contexts (SDM Vol 2C INVVPID)
        }

        private static void SetPrimary(PrimaryControls bits, bool on)
        {
            ulong primary = Read(VmcsField.PrimaryProcessorBasedVmExecutionControls);
            ulong wanted = on ? primary | (ulong)bits : primary & ~(ulong)bits;
            if (wanted != primary) Write(VmcsField.PrimaryProcessorBasedVmExecutionControls, wanted);
        }
    }
}
