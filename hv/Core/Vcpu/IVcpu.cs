// The one vendor-neutral view of a guest CPU stopped in an exit, which the handlers of hv/Core/Vcpu are
// written against once for both back ends. The VMX back end implements it over the current VMCS
// (hv/Vmx/VmxVcpu.cs), the SVM back end over the VMCB (hv/Svm/SvmVcpu.cs), the unit tests with a fake.
// Always used as a struct-constrained generic parameter (`where T : struct, IVcpu`): every call resolves at
// compile time, there is no interface dispatch in root mode (DESIGN.md, STYLE.md 2).
// Values are the guest's architectural ones: CR0/CR4 as the guest reads them (VMX: its read shadows), EFER
// without what the host forces (SVM: EFER.SVME), the CPL from SS.DPL / the VMCB.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    /// <summary>A guest CPU stopped in an exit; its <see cref="Msr.IMsrInstructions"/> are the hardware's RDMSR/WRMSR with #GP caught (the guest's own access to an MSR that is not emulated).</summary>
    public interface IVcpu : Msr.IMsrInstructions
    {
        /// <summary>Index of this CPU (0 = the BSP as the loader numbered them).</summary>
        uint Index { get; }

        /// <summary>Which back end: the instruction decoder needs it (a few encodings differ, see InstructionLength).</summary>
        Vigil.Abi.Vendor Vendor { get; }

        /// <summary>General registers saved by the exit stub (RSP and RIP are not among them).</summary>
        ref GuestRegisters Registers { get; }

        ulong Rip { get; set; }

        ulong Rsp { get; set; }

        ulong Rflags { get; set; }

        /// <summary>CR0 as the guest sees it.</summary>
        ulong Cr0 { get; }

        ulong Cr3 { get; }

        /// <summary>CR4 as the guest sees it.</summary>
        ulong Cr4 { get; }

        /// <summary>IA32_EFER as the guest sees it.</summary>
        ulong Efer { get; }

        /// <summary>Current privilege level.</summary>
        int Cpl { get; }

        /// <summary>CS base (0 in 64-bit mode) and the code mode from EFER.LMA, CS.L, CS.D (real and virtual-8086 mode: 16-bit).</summary>
        ulong CsBase { get; }

        CpuMode Mode { get; }

        /// <summary>The guest's IA32_PAT.</summary>
        ulong Pat { get; set; }

        /// <summary>The guest-physical address of a nested-paging exit (EPT violation, #NPF).</summary>
        ulong ExitGuestPhysical { get; }

        /// <summary>
        /// The guest-linear address of a nested-paging exit where the CPU reports one (VMX: "guest linear address valid",
        /// SDM Vol 3C 28.2.1 Table 28-7 bit 7); <see cref="VcpuConstants.NoLinearAddress"/> otherwise (SVM's #NPF reports none).
        /// </summary>
        ulong ExitGuestLinear { get; }

        /// <summary>
        /// Length of the instruction that exited, as the CPU measured it (VMX: VM-exit instruction length; SVM: next RIP
        /// minus RIP with NRIP save); 0 when the CPU gives none (no NRIP save, EPT violations): the decoder sizes it.
        /// </summary>
        int ExitInstructionLength { get; }

        /// <summary>The hypervisor's reservation: guest code is never fetched from there.</summary>
        ulong ReservedBase { get; }

        ulong ReservedSize { get; }

        /// <summary>CPUID executed by the host (the hardware's answer before the policy edits it).</summary>
        void HostCpuid(uint leaf, uint subleaf, out CpuidResult result);

        /// <summary>What the back end can make work for the guest (hidden in CPUID otherwise).</summary>
        GuestFeatures Features { get; }

        // ---- control registers (only back ends that intercept the writes call these: see ControlRegisterAccess) ----

        /// <summary>CR4 bits the guest may set on this CPU (anything else is reserved or unsupported: #GP).</summary>
        ulong Cr4Supported { get; }

        /// <summary>Loads CR0 with a value already validated; the back end applies what it forces underneath and keeps EFER.LMA right.</summary>
        void LoadCr0(ulong value);

        void LoadCr3(ulong value);

        void LoadCr4(ulong value);

        /// <summary>XCR0 for the guest (XSETBV already validated). Shared with the host on both vendors.</summary>
        void LoadXcr0(ulong value);

        /// <summary>The guest's XCR0 (XGETBV in root mode: the register is shared with the host on both vendors); 1 without XSAVE.</summary>
        ulong Xcr0 { get; }

        // ---- the kernel guard (hv/Core/Guard): what its handlers read and load ----

        /// <summary>FS and GS bases (a decoded store with an FS/GS override addresses relative to them).</summary>
        ulong FsBase { get; }

        ulong GsBase { get; }

        /// <summary>The guest's CR2 after the next entry (a #PF the guard injects carries the faulting linear address there, SDM Vol 3A 6.15 #PF).</summary>
        void LoadCr2(ulong value);

        /// <summary>GDTR and IDTR as the guest has them (VMX: guest-state fields; SVM: the VMCB).</summary>
        void ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out ulong idtBase, out uint idtLimit);

        /// <summary>The selector of one segment register (SLDT, STR).</summary>
        ushort Selector(SegmentRegister register);

        /// <summary>
        /// WRMSR of EFER or a syscall MSR (STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP) the guard allowed, into
        /// wherever the back end keeps the guest's copy (VMCS guest fields, the VMCB, or the register itself);
        /// a value the CPU would refuse gets #GP.
        /// </summary>
        MsrOutcome WriteGuardedMsr(uint msr, ulong value);

        /// <summary>
        /// The guest's value of EFER or a syscall MSR (<see cref="Guard.GuardMsrs"/>), from wherever the back end keeps it
        /// (the guard's pins at Protect and its events); 0 for any other.
        /// </summary>
        ulong ReadGuardedMsr(uint msr);

        // ---- MSRs: the seam to the vendor's own MSRs (VmxMsrPolicy, SvmMsrPolicy) ----

        /// <summary>RDMSR of an MSR the vendor-neutral handler does not own.</summary>
        MsrOutcome ReadVendorMsr(uint msr, out ulong value);

        /// <summary>WRMSR of an MSR the vendor-neutral handler does not own.</summary>
        MsrOutcome WriteVendorMsr(uint msr, ulong value);

        /// <summary>IA32_APIC_BASE of this CPU.</summary>
        ulong ApicBaseMsr { get; }

        // ---- events (VcpuEvents: the one pre-entry path) ----

        /// <summary>The event whose delivery the exit interrupted (VMX IDT-vectoring information, SVM EXITINTINFO).</summary>
        VcpuEvent InterruptedEvent { get; }

        /// <summary>The event the next entry injects (Valid false: none).</summary>
        VcpuEvent Injected { get; set; }

        /// <summary>Blocking by STI or MOV SS (VMX interruptibility bits 0-1, SVM interrupt shadow).</summary>
        bool InterruptShadow { get; set; }

        /// <summary>
        /// NMIs blocked in the guest (VMX: virtual-NMI blocking, interruptibility bit 3). SVM tracks it in the hardware
        /// alone: false and writes are ignored there.
        /// </summary>
        bool NmiBlocked { get; set; }

        /// <summary>An event held back for later (an interrupt or NMI displaced by an exception a handler raised).</summary>
        ref VcpuEvent Deferred { get; }

        /// <summary>Asks for an exit as soon as the guest can take an interrupt (false: no longer).</summary>
        void RequestInterruptWindow(bool on);

        /// <summary>A single-step trap (#DB with DR6.BS) to be taken before the next guest instruction.</summary>
        void RaiseSingleStep();

        /// <summary>The guest would shut down (a fault while delivering #DF): the back end's triple-fault outcome.</summary>
        void TripleFault();

        // ---- start-up (INIT, start-up IPI) ----

        /// <summary>Writes one segment register: selector, base, limit and access rights in the VMX layout (SDM Vol 3C 25.4.1).</summary>
        void LoadSegment(SegmentRegister register, ushort selector, ulong baseAddress, uint limit, uint accessRights);

        void LoadDescriptorTables(ulong gdtBase, uint gdtLimit, ulong idtBase, uint idtLimit);

        /// <summary>CR0, CR3, CR4, EFER, DR7 and the state the back end keeps beside them, as they are after INIT.</summary>
        void LoadResetControlState(ulong cr0, ulong dr7);

        /// <summary>Forgets every event of the old guest state: injection, interrupted event, blocking, pending NMIs, windows, pending debug exceptions.</summary>
        void ClearEventState();

        /// <summary>Invalidates the guest's TLB entries on this CPU (VPID / ASID).</summary>
        void FlushGuestTlb();
    }

    public static class VcpuConstants
    {
        /// <summary><see cref="IVcpu.ExitGuestLinear"/> when the exit carries no guest-linear address.</summary>
        public const ulong NoLinearAddress = ulong.MaxValue;
    }

    /// <summary>What the vendor's MSR policy did with an MSR.</summary>
    public enum MsrOutcome
    {
        /// <summary>Done (a read's value is set).</summary>
        Done,

        /// <summary>The guest gets #GP, as the hardware would give it.</summary>
        GeneralProtection,
    }

    /// <summary>Segment registers in the VMCS field order (ES, CS, SS, DS, FS, GS, LDTR, TR).</summary>
    public enum SegmentRegister
    {
        Es,
        Cs,
        Ss,
        Ds,
        Fs,
        Gs,
        Ldtr,
        Tr,
    }

    /// <summary>Features the back end makes work in the guest; CPUID hides the ones it cannot.</summary>
    [System.Flags]
    public enum GuestFeatures
    {
        None = 0,

        /// <summary>TPAUSE/UMONITOR/UMWAIT (CPUID.(7,0):ECX.WAITPKG): VMX needs "enable user wait and pause" (SDM Vol 3C 25.6.2).</summary>
        WaitPkg = 1 << 0,

        /// <summary>XSAVES/XRSTORS (CPUID.(0DH,1):EAX bit 3): VMX needs "enable XSAVES/XRSTORS".</summary>
        Xsaves = 1 << 1,

        /// <summary>RDTSCP (CPUID.80000001H:EDX bit 27): VMX needs "enable RDTSCP".</summary>
        Rdtscp = 1 << 2,

        /// <summary>INVPCID (CPUID.(7,0):EBX bit 10): VMX needs "enable INVPCID".</summary>
        Invpcid = 1 << 3,
    }
}
