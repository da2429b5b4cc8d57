// SVM host, GIF=0. The vendor-neutral vCPU (hv/Core/Vcpu/IVcpu) over the guest VMCB: what the shared
// handlers read and write, as the VMCB's fields (APM Vol 2 Appendix B: control area Table B-1, state save
// area Table B-2; EVENTINJ/EXITINTINFO 15.20, 15.7.2). Created on the stack per exit by SvmExitHandler and
// passed by reference (struct-constrained generics: no interface dispatch at run time).
using System.Runtime.CompilerServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Vcpu;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Svm
{
    internal unsafe struct SvmVcpu : IVcpu
    {
        private const ulong EferLme = 1UL << 8, EferLma = 1UL << 10;
        private const ulong Cr0Pg = 1UL << 31;
        private const ulong Dr6SingleStep = 1UL << 14;           // DR6.BS (SDM Vol 3A 18.2.3, APM Vol 2 13.1.1.3)
        private const ulong VirtualIrq = 1UL << 8;               // V_IRQ (APM Vol 2 15.21.1, Table B-1 offset 0x60)
        private const ulong VirtualIgnoreTpr = 1UL << 20;        // V_IGN_TPR
        private const ulong VirtualPriority = 0xFUL << 16;       // V_INTR_PRIO

        // VMCB clean bits (APM Vol 2 15.15.3, Table 15-9): a cleared bit makes VMRUN reload that group.
        private const uint CleanIntercepts = 1u << 0, CleanTpr = 1u << 3, CleanNestedPaging = 1u << 4;
        private const uint CleanCr2 = 1u << 9;
        private const uint CleanControlRegisters = 1u << 5, CleanDebugRegisters = 1u << 6, CleanDescriptorTables = 1u << 7, CleanSegments = 1u << 8;

        private readonly SvmCpu* _cpu;
        private readonly Vmcb* _vmcb;   // _cpu->Vmcb, kept: read on nearly every access
        private readonly GuestRegisters* _regs;
        private readonly SvmExitCode _code;

        /// <summary>The guest state was replaced (start-up IPI): EXITINTINFO belongs to the old one.</summary>
        private bool _startedOver;

        public SvmVcpu(SvmCpu* cpu, GuestRegisters* regs, SvmExitCode code)
        {
            _cpu = cpu;
            _vmcb = cpu->Vmcb;
            _regs = regs;
            _code = code;
            _startedOver = false;
        }

        public SvmCpu* Cpu => _cpu;

        private Vmcb* V => _vmcb;

        public uint Index => _cpu->Index;

        public Vendor Vendor => Vendor.AmdSvm;

        public ref GuestRegisters Registers => ref *_regs;

        public ulong Rip { get => V->Rip; set => V->Rip = value; }

        public ulong Rsp { get => V->Rsp; set => V->Rsp = value; }

        public ulong Rflags { get => V->Rflags; set => V->Rflags = value; }

        public ulong Cr0 => V->Cr0;

        public ulong Cr3 => V->Cr3;

        public ulong Cr4 => V->Cr4;

        /// <summary>SVME stays set in the guest's EFER (VMRUN needs it) but is not the guest's.</summary>
        public ulong Efer
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => V->Efer & ~SvmBackEnd.EferSvme;
        }

        public int Cpl => V->Cpl;

        public ulong CsBase => V->Cs.Base;

        public CpuMode Mode => SvmInstructionLength.ModeOf(V);

        public ulong Pat
        {
            get => V->GuestPat;
            set
            {
                V->GuestPat = value;   // with nested paging the guest's PAT is G_PAT (APM Vol 2 15.25.8)
                V->CleanBits &= ~CleanNestedPaging;
            }
        }

        public ulong ExitGuestPhysical => V->ExitInfo2;

        /// <summary>#NPF reports the guest-physical address only (APM Vol 2 15.25.6).</summary>
        public ulong ExitGuestLinear => VcpuConstants.NoLinearAddress;

        /// <summary>
        /// With NRIP save (CPUID 8000_000A EDX[3], APM Vol 2 15.7.1) the CPU stores the next RIP for instruction
        /// intercepts: the length is its distance from RIP. Without it (QEMU TCG) or for other exits: 0, the decoder sizes it.
        /// </summary>
        public int ExitInstructionLength
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => SvmBackEnd.NextRipSave ? NextRipLength() : 0;
        }

        private int NextRipLength() => IsInstructionIntercept(_code) ? SvmInstructionLength.FromNextRip(V->Rip, V->NextRip, Mode) : 0;

        private static bool IsInstructionIntercept(SvmExitCode code) => code is SvmExitCode.Cpuid or SvmExitCode.Msr or SvmExitCode.Vmmcall
            or SvmExitCode.Xsetbv or SvmExitCode.Invd or SvmExitCode.Wbinvd or SvmExitCode.Hlt or SvmExitCode.Monitor or SvmExitCode.Mwait or SvmExitCode.Rdtscp;

        public ulong ReservedBase => SvmBackEnd.ReservedBase;

        public ulong ReservedSize => SvmBackEnd.ReservedSize;

        public void HostCpuid(uint leaf, uint subleaf, out CpuidResult result) => Host.HostCpuid.Read(leaf, subleaf, out result);

        /// <summary>Nothing is gated under SVM: WAITPKG, XSAVES, RDTSCP and INVPCID run natively where the CPU has them.</summary>
        public GuestFeatures Features => GuestFeatures.WaitPkg | GuestFeatures.Xsaves | GuestFeatures.Rdtscp | GuestFeatures.Invpcid;

        /// <summary>CR4 writes exit only while the guard is armed (SvmGuard): validated against what the CPU supports.</summary>
        public ulong Cr4Supported => SvmBackEnd.Cr4Supported;

        public void LoadCr0(ulong value)
        {
            Vmcb* v = V;
            ulong old = v->Cr0;
            v->Cr0 = value;
            if (((old ^ value) & Cr0Pg) != 0)
            {
                // EFER.LMA follows CR0.PG with EFER.LME (APM Vol 2 14.6.1).
                v->Efer = (value & Cr0Pg) != 0 && (v->Efer & EferLme) != 0 ? v->Efer | EferLma : v->Efer & ~EferLma;
                v->TlbControl = 1;
            }
            v->CleanBits &= ~CleanControlRegisters;
        }

        public void LoadCr3(ulong value)
        {
            V->Cr3 = value;
            V->TlbControl = 1;
            V->CleanBits &= ~CleanControlRegisters;
        }

        public void LoadCr4(ulong value)
        {
            V->Cr4 = value;
            V->TlbControl = 1;
            V->CleanBits &= ~CleanControlRegisters;
        }

        /// <summary>XCR0 is not switched by VMRUN/#VMEXIT: the host's XSETBV sets the guest's (the host runs with CR4.OSXSAVE, SvmBackEnd).</summary>
        public void LoadXcr0(ulong value)
        {
            if (SvmBackEnd.HasXsave) HvStubs.Xsetbv(0, value);
        }

        /// <summary>XGETBV needs CR4.OSXSAVE, which the host has where the CPU has XSAVE (SvmBackEnd).</summary>
        public ulong Xcr0 => SvmBackEnd.HasXsave ? Vigil.Platform.Cpu.ReadXcr(0) : StartupState.ResetXcr0;

        /// <summary>
        /// EFER: SVME reads as clear; VM_CR: SVM disabled and locked; VM_HSAVE_PA: 0 (the host save area is Vigil's).
        /// Any other MSR that exits lies outside the permission map: #GP, what the guest gets for an MSR the CPU lacks.
        /// </summary>
        public MsrOutcome ReadVendorMsr(uint msr, out ulong value)
        {
            value = 0;
            switch (msr)
            {
                case SvmBackEnd.EferMsr:
                    value = V->Efer & ~SvmBackEnd.EferSvme;
                    return MsrOutcome.Done;
                case SvmBackEnd.VmCrMsr:
                    value = SvmBackEnd.VmCrSvmDisable | SvmBackEnd.VmCrLock;
                    return MsrOutcome.Done;
                case SvmBackEnd.HsavePaMsr:
                    return MsrOutcome.Done;
                default:
                    return MsrOutcome.GeneralProtection;
            }
        }

        /// <summary>EFER keeps SVME set underneath (VMRUN needs it); VM_CR and VM_HSAVE_PA writes are dropped.</summary>
        public MsrOutcome WriteVendorMsr(uint msr, ulong value)
        {
            switch (msr)
            {
                case SvmBackEnd.EferMsr:
                    V->Efer = value | SvmBackEnd.EferSvme;
                    V->CleanBits &= ~CleanControlRegisters;
                    return MsrOutcome.Done;
                case SvmBackEnd.VmCrMsr:
                case SvmBackEnd.HsavePaMsr:
                    return MsrOutcome.Done;
                default:
                    return MsrOutcome.GeneralProtection;
            }
        }

        public ulong FsBase => V->Fs.Base;

        public ulong GsBase => V->Gs.Base;

        /// <summary>CR2 is in the VMCB, loaded by VMRUN (clean bit 9, APM Vol 2 Table 15-9).</summary>
        public void LoadCr2(ulong value)
        {
            V->Cr2 = value;
            V->CleanBits &= ~CleanCr2;
        }

        public void ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out ulong idtBase, out uint idtLimit)
        {
            gdtBase = V->Gdtr.Base;
            gdtLimit = V->Gdtr.Limit;
            idtBase = V->Idtr.Base;
            idtLimit = V->Idtr.Limit;
        }

        public ushort Selector(SegmentRegister register) => register switch
        {
            SegmentRegister.Es => V->Es.Selector,
            SegmentRegister.Cs => V->Cs.Selector,
            SegmentRegister.Ss => V->Ss.Selector,
            SegmentRegister.Ds => V->Ds.Selector,
            SegmentRegister.Fs => V->Fs.Selector,
            SegmentRegister.Gs => V->Gs.Selector,
            SegmentRegister.Ldtr => V->Ldtr.Selector,
            _ => V->Tr.Selector,
        };

        /// <summary>
        /// The syscall MSRs live in the VMCB (VMLOAD before every VMRUN loads them, VMSAVE after the exit stores them,
        /// APM Vol 2 15.5.2); EFER too (SVME kept set underneath).
        /// </summary>
        public ulong ReadGuardedMsr(uint msr) => msr switch
        {
            GuardMsrs.Efer => Efer,
            GuardMsrs.Star => V->Star,
            GuardMsrs.Lstar => V->Lstar,
            GuardMsrs.Cstar => V->Cstar,
            GuardMsrs.Sfmask => V->Sfmask,
            GuardMsrs.SysenterCs => V->SysenterCs,
            GuardMsrs.SysenterEsp => V->SysenterEsp,
            GuardMsrs.SysenterEip => V->SysenterEip,
            _ => 0,
        };

        public MsrOutcome WriteGuardedMsr(uint msr, ulong value)
        {
            Vmcb* v = V;
            bool fiveLevel = (v->Cr4 & (1UL << 12)) != 0;
            switch (msr)
            {
                case GuardMsrs.Efer:
                    if (!GuardMsrs.ValidEfer(Efer, value, (v->Cr0 & Cr0Pg) != 0)) return MsrOutcome.GeneralProtection;
                    return WriteVendorMsr(msr, (value & ~EferLma) | (v->Efer & EferLma));
                case GuardMsrs.Star: v->Star = value; return MsrOutcome.Done;
                case GuardMsrs.Sfmask: v->Sfmask = value; return MsrOutcome.Done;
                case GuardMsrs.SysenterCs: v->SysenterCs = value & 0xFFFF_FFFF; return MsrOutcome.Done;
                case GuardMsrs.Lstar:
                case GuardMsrs.Cstar:
                case GuardMsrs.SysenterEsp:
                case GuardMsrs.SysenterEip:
                    if (!GuestMemory.IsCanonical(value, fiveLevel)) return MsrOutcome.GeneralProtection;
                    if (msr == GuardMsrs.Lstar) v->Lstar = value;
                    else if (msr == GuardMsrs.Cstar) v->Cstar = value;
                    else if (msr == GuardMsrs.SysenterEsp) v->SysenterEsp = value;
                    else v->SysenterEip = value;
                    return MsrOutcome.Done;
                default:
                    return TryWrite(msr, value) ? MsrOutcome.Done : MsrOutcome.GeneralProtection;
            }
        }

        public bool TryRead(uint msr, out ulong value) => default(Host.HostSafeMsr).TryRead(msr, out value);

        public bool TryWrite(uint msr, ulong value) => default(Host.HostSafeMsr).TryWrite(msr, value);

        public ulong ApicBaseMsr => Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr);

        /// <summary>EXITINTINFO (APM Vol 2 15.7.2), read as VcpuEvent.FromSvmInterrupted says (INT3/INTO as software events; QEMU's types).</summary>
        public VcpuEvent InterruptedEvent => _startedOver ? VcpuEvent.None : VcpuEvent.FromSvmInterrupted(V->ExitIntInfo);

        /// <summary>
        /// EVENTINJ (APM Vol 2 15.20). SVM has no software-exception type and pushes RIP as the return address: a
        /// software event (BreakpointExit's INT3, INTO, INTn) goes in with RIP past the instruction, INT3/INTO as
        /// exceptions (type 3, no DPL check, as the CPU raises them) and INTn as type 4; NRIP gets the same RIP, which
        /// hardware with NRIP saving pushes for type 4.
        /// </summary>
        public VcpuEvent Injected
        {
            get => VcpuEvent.FromSvm(V->EventInjection);
            set
            {
                if (value.Valid && value.IsSoftware)
                {
                    EventType type = value.Type == EventType.SoftwareInterrupt ? EventType.SoftwareInterrupt : EventType.HardwareException;
                    V->Rip += (ulong)value.InstructionLength;
                    V->NextRip = V->Rip;
                    value = new VcpuEvent { Info = VcpuEvent.ValidBit | ((uint)type << 8) | value.Vector };
                }
                V->EventInjection = value.ToSvm();
            }
        }

        public bool InterruptShadow
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (V->InterruptShadow & 1) != 0;
            set => V->InterruptShadow = value ? V->InterruptShadow | 1 : V->InterruptShadow & ~1UL;
        }

        /// <summary>SVM keeps NMI blocking in the hardware; nothing of it is in the VMCB without vNMI (APM Vol 2 15.21.4).</summary>
        public bool NmiBlocked
        {
            get => false;
            set { }
        }

        public ref VcpuEvent Deferred => ref _cpu->Deferred;

        /// <summary>
        /// A virtual interrupt pending (V_IRQ, TPR ignored) with the VINTR intercept: #VMEXIT(VINTR) as soon as the guest
        /// could take an interrupt (APM Vol 2 15.21.1, 15.21.4); the handler then injects the held-back event.
        /// </summary>
        public void RequestInterruptWindow(bool on)
        {
            Vmcb* v = V;
            bool isOn = (v->InterceptMisc1 & (uint)SvmIntercept1.Vintr) != 0;
            if (on == isOn) return;
            if (on)
            {
                v->InterruptControl |= VirtualIrq | VirtualIgnoreTpr | VirtualPriority;
                v->InterceptMisc1 |= (uint)SvmIntercept1.Vintr;
            }
            else
            {
                v->InterruptControl &= ~(VirtualIrq | VirtualIgnoreTpr | VirtualPriority);
                v->InterceptMisc1 &= ~(uint)SvmIntercept1.Vintr;
            }
            v->CleanBits &= ~(CleanIntercepts | CleanTpr);
        }

        /// <summary>#DB with DR6.BS set (DR6 is in the VMCB and loaded by VMRUN), injected before the guest's next instruction.</summary>
        public void RaiseSingleStep()
        {
            Vmcb* v = V;
            v->Dr6 |= Dr6SingleStep;
            v->CleanBits &= ~CleanDebugRegisters;
            if (!Injected.Valid) Injected = VcpuEvent.Exception(VcpuEvent.DebugVector);
        }

        public void TripleFault() => Handlers.ShutdownHandler.Handle(_cpu, ref *_regs);

        public void LoadSegment(SegmentRegister register, ushort selector, ulong baseAddress, uint limit, uint accessRights)
        {
            VmcbSegment* s = register switch
            {
                SegmentRegister.Es => &V->Es,
                SegmentRegister.Cs => &V->Cs,
                SegmentRegister.Ss => &V->Ss,
                SegmentRegister.Ds => &V->Ds,
                SegmentRegister.Fs => &V->Fs,
                SegmentRegister.Gs => &V->Gs,
                SegmentRegister.Ldtr => &V->Ldtr,
                _ => &V->Tr,
            };
            s->Selector = selector;
            s->Base = baseAddress;
            s->Limit = limit;
            // VMX access rights keep descriptor bits 55:52 in 15:12; the VMCB packs them into 11:8 (APM Vol 2 Table B-2).
            s->Attributes = (ushort)((accessRights & 0xFF) | ((accessRights >> 4) & 0xF00));
            V->CleanBits &= ~CleanSegments;
        }

        public void LoadDescriptorTables(ulong gdtBase, uint gdtLimit, ulong idtBase, uint idtLimit)
        {
            V->Gdtr.Base = gdtBase;
            V->Gdtr.Limit = gdtLimit;
            V->Idtr.Base = idtBase;
            V->Idtr.Limit = idtLimit;
            V->CleanBits &= ~CleanDescriptorTables;
        }

        public void LoadResetControlState(ulong cr0, ulong dr7)
        {
            Vmcb* v = V;
            v->Cr0 = cr0;
            v->Cr2 = 0;
            v->Cr3 = 0;
            v->Cr4 = 0;
            v->Efer = SvmBackEnd.EferSvme;   // VMRUN needs SVME in the guest's EFER (APM Vol 2 15.5.1)
            v->Dr7 = dr7;
            v->Dr6 = 0xFFFF_0FF0;
            v->Cpl = 0;
            v->KernelGsBase = v->Star = v->Lstar = v->Cstar = v->Sfmask = 0;
            v->SysenterCs = v->SysenterEsp = v->SysenterEip = 0;
            v->CleanBits = 0;
            // IA32_XSS passes through the permission map and is not in the VMCB: the register is the guest's; its reset value 0.
            if (SvmBackEnd.HasXsaves) Vigil.Platform.Cpu.WriteMsr(SvmBackEnd.XssMsr, 0);
        }

        public void ClearEventState()
        {
            _startedOver = true;
            V->EventInjection = 0;
            V->InterruptShadow = 0;
            _cpu->Deferred = VcpuEvent.None;
            RequestInterruptWindow(false);
            SvmNmi.Reset(_cpu);   // no handler of an earlier injected NMI runs any more
            // NMIs queued for the old guest state are not the new one's, nor is the sender's kick (hv/Host/ApKick).
            Host.HostEnvironment.Cpu(Index)->PendingNmis = 0;
            ApStartup.ConsumeKick(Index);
        }

        public void FlushGuestTlb() => V->TlbControl = 1;
    }
}
