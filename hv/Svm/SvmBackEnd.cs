// AMD SVM back end (APM Vol 2 ch. 15): checks, shared structures (MSR permission map, nested page
// tables, host environment), and the launch of one CPU. Prepare runs on the BSP with boot services
// alive; vigil_svm_prepare_cpu runs on each CPU, one at a time, called from the generated launch
// entry (StubCatalog.Svm.cs) that LaunchParameters.LaunchCpu points to.
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Vigil.Hypervisor.Host;
using Vigil.Hypervisor.Native;
using Vigil.Platform;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmBackEnd
    {
        public const uint EferMsr = SvmMsrPolicy.Efer;
        public const uint VmCrMsr = SvmMsrPolicy.VmCr;
        public const uint HsavePaMsr = SvmMsrPolicy.HsavePa;
        public const uint PatMsr = SvmMsrPolicy.Pat;
        public const ulong EferSvme = 1UL << 12;       // APM Vol 2 3.1.7
        public const ulong EferNxe = 1UL << 11;        // APM Vol 2 3.1.7: NX is a page-table bit (else reserved)
        public const ulong VmCrSvmDisable = 1UL << 4;   // VM_CR.SVMDIS (APM Vol 2 15.30.1)
        public const ulong VmCrLock = 1UL << 3;

        /// <summary>All guests share ASID 1: one guest per CPU, and the TLB is per CPU (APM Vol 2 15.16).</summary>
        public const uint GuestAsid = 1;

        private static SvmCpu** s_cpus;
        private static uint s_count;
        private static byte* s_msrpm;
        private static ulong s_iopm;
        private static NestedMap<NptFormat> s_npt;
        private static PageAccess s_blankAccess;
        private static ulong s_blankPage;
        private static ulong s_reservedBase;
        private static ulong s_reservedSize;
        private static uint s_bspIndex;

        public static ulong ReservedBase => s_reservedBase;

        /// <summary>NRIP save (CPUID 8000_000A EDX[3], APM Vol 2 15.7.1): the CPU stores the next RIP on instruction intercepts.</summary>
        public static bool NextRipSave;

        /// <summary>CPUID.1:ECX.XSAVE: the host runs with CR4.OSXSAVE and may execute XSETBV for the guest (start-up state).</summary>
        public static bool HasXsave;

        private const ulong Cr4Osxsave = 1UL << 18;

        /// <summary>IA32_XSS, present with CPUID.(0DH,1):EAX.XSAVES (APM Vol 2 11.5.2).</summary>
        public const uint XssMsr = 0xDA0;

        public static bool HasXsaves;

        /// <summary>CR4 bits this CPU supports (a guest MOV to CR4 the guard intercepts is validated against them).</summary>
        public static ulong Cr4Supported;

        /// <summary>The MSR permission map (shared by every CPU; the guard's arming sets and clears write bits in it).</summary>
        public static byte* MsrPermissionMapPointer => s_msrpm;

        public static ulong ReservedSize => s_reservedSize;

        public static uint CpuCount => s_count;

        /// <summary>The CPU vigil.efi launches last (after every AP).</summary>
        public static uint BspIndex => s_bspIndex;

        public static SvmCpu* Cpu(uint index) => index < s_count ? s_cpus[index] : null;

        public static ref NestedMap<NptFormat> NestedTables => ref s_npt;

        public static ulong BlankPage => s_blankPage;

        /// <summary>
        /// What the guest gets on the blank page: read, and execute too when the CPU has no NX (a no-execute
        /// leaf would then set a reserved bit; see <see cref="PrepareCpu"/> for EFER.NXE).
        /// </summary>
        public static PageAccess BlankAccess => s_blankAccess;

        /// <summary>The CPU is able to run Vigil (SVM present, nested paging, not disabled, not in use); else the reason.</summary>
        private static LaunchStatus Check(out string reason)
        {
            uint* r = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(0x8000_0000, 0, r);
            uint maxExtended = r[0];
            Vigil.Platform.Cpu.Cpuid(0x8000_0001, 0, r);
            if ((r[2] & (1u << 2)) == 0)   // CPUID 8000_0001 ECX.SVM (APM Vol 2 15.4)
            {
                reason = "this AMD CPU has no SVM (AMD-V)";
                return LaunchStatus.NotSupported;
            }
            if (maxExtended < 0x8000_000A)
            {
                reason = "this AMD CPU has no SVM feature leaf (CPUID 8000_000A)";
                return LaunchStatus.NotSupported;
            }
            if ((Vigil.Platform.Cpu.ReadMsr(VmCrMsr) & VmCrSvmDisable) != 0)
            {
                reason = "SVM (AMD-V) is disabled by the firmware (VM_CR.SVMDIS); enable it in the firmware setup";
                return LaunchStatus.DisabledByFirmware;
            }
            Vigil.Platform.Cpu.Cpuid(0x8000_000A, 0, r);
            if ((r[3] & 1u) == 0)   // CPUID 8000_000A EDX.NP (APM Vol 2 15.25.1)
            {
                reason = "this AMD CPU has SVM but no nested paging";
                return LaunchStatus.NotSupported;
            }
            if ((Vigil.Platform.Cpu.ReadMsr(EferMsr) & EferSvme) != 0)
            {
                reason = "SVM is already in use (EFER.SVME is set): another hypervisor runs";
                return LaunchStatus.AlreadyInUse;
            }
            reason = "";
            return LaunchStatus.Virtualized;
        }

        public static LaunchStatus Prepare(LaunchParameters* p)
        {
            LaunchStatus check = Check(out string reason);
            if (check != LaunchStatus.Virtualized) return HvMain.Fail(p, check, reason);

            s_count = p->CpuCount;
            uint* id = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(0x8000_000A, 0, id);
            NextRipSave = (id[3] & (1u << 3)) != 0;   // QEMU TCG has none: the instruction-length decoder sizes every skip
            Vigil.Platform.Cpu.Cpuid(1, 0, id);
            HasXsave = (id[2] & (1u << 26)) != 0;
            uint leaf1Ecx = id[2];
            Vigil.Platform.Cpu.Cpuid(7, 0, id);
            Cr4Supported = ControlRegisterExit.Cr4FromCpuid(leaf1Ecx, id[1], id[2]);
            Vigil.Platform.Cpu.Cpuid(0, 0, id);
            if (id[0] >= 0xD)
            {
                Vigil.Platform.Cpu.Cpuid(0xD, 1, id);
                HasXsaves = (id[0] & (1u << 3)) != 0;
            }
            s_reservedBase = p->ReservedBase;
            s_bspIndex = p->BspIndex;
            s_reservedSize = p->ReservedSize;

            // The host map ends at the top of the UEFI memory map (at least 4 GiB, rounded up to 1 GiB), the nested
            // map at MAXPHYADDR (below); the memory types come from one MTRR snapshot (HostMemoryTypes: CPUID.1:EDX.MTRR, SYSCFG/TOP_MEM2 only
            // where they exist). The hand-over block is read here, during Prepare, and never again.
            ulong limit = PlatformMemory.MappingLimit(new System.ReadOnlySpan<PhysicalRange>(p->MemoryMap, (int)p->MemoryMapCount));
            if (!HostMemoryTypes.Initialize()) return HvMain.Fail(p, LaunchStatus.NotSupported, "the MTRRs cannot be read completely (too many variable ranges)");
            bool gigabytePages = HostMemoryTypes.GigabytePages;
            s_blankAccess = HostMemoryTypes.NoExecute ? PageAccess.Read : PageAccess.Read | PageAccess.Execute;

            if (!HostEnvironment.Initialize(s_count, limit, gigabytePages)) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (host environment)");

            // Shared by all CPUs: the MSR permission map (APM Vol 2 15.11), an empty I/O permission map,
            // the nested page tables, the page hidden memory reads as.
            s_msrpm = (byte*)Hv.AllocatePages(2);
            s_iopm = Hv.AllocatePages(3);
            s_blankPage = Hv.AllocatePages(1);
            s_cpus = (SvmCpu**)Hv.AllocatePages(1);
            if (s_msrpm == null || s_iopm == 0 || s_blankPage == 0 || s_cpus == null) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (SVM maps)");
            Core.Msr.MsrPolicy.BuildSvmPermissionMap(s_msrpm);

            // Nested page tables: identity map of guest-physical memory with the MTRRs' types in the largest
            // uniform pages (NptFormat: U/S set, nested accesses are user accesses, APM Vol 2 15.25.5), up to
            // MAXPHYADDR (PoolSize.NestedTop: device BARs above the memory map, in 1 GiB pages where the MTRRs
            // are uniform; the pool was sized for it); the hypervisor's reservation not present from the first
            // VMRUN, all of it (NestedPageFaultHandler decides what an access gets). The loader's hand-over
            // block lies outside it, in loader memory.
            var pages = Hv.Pages;
            ulong nestedLimit = PoolSize.NestedTop(limit, HostMemoryTypes.PhysicalAddressBits, gigabytePages);
            if (!s_npt.Build(ref pages, nestedLimit, HostMemoryTypes.Mtrrs, gigabytePages)
                || !s_npt.Protect(ref pages, s_reservedBase, s_reservedSize))
            {
                return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (nested page tables)");
            }
            // Split the reservation to 4 KiB pages now, so the blank-page redirection of a read
            // (NestedPageFaultHandler, any CPU, concurrently) never takes a table from the pool.
            for (ulong a = s_reservedBase & ~0x1F_FFFFUL; a < s_reservedBase + s_reservedSize; a += 0x20_0000)
            {
                if (!s_npt.SplitTo4K(ref pages, a)) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (nested page tables)");
            }
            // The xAPIC page read-only: its writes exit (NestedPageFaultHandler), so the ICR is seen (hv/Core/Apic/ApStartup).
            ulong apic = ApicPage.Initialize(Vigil.Platform.Cpu.ReadMsr(ApicPage.BaseMsr));
            if (apic != 0 && !s_npt.SetAccess(ref pages, apic, 0x1000, s_blankAccess)) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (APIC trap)");

            // Changes to the nested tables once guests run go through one service (hv/Core/Paging/NestedMapService).
            if (!SvmNestedMapChanges.Initialize(s_npt.Root, s_npt.Limit, s_count)) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (nested map changes)");
            // An INIT caught at the sender for a virtualized CPU: an NMI gets the target out of the guest (hv/Host/ApKick).
            ApStartup.SetAfterCaught(&ApKick.AfterCaught);
            // The xAPIC trap is lifted while no CPU may be started by the OS, where ApicTrap.Lifting allows (WBINVD intercepted).
            ApicTrap.Enable(ApicTrap.Lifting);

            // Exit statistics and the hypercall scratch areas are set up by HvMain for both back ends.

            for (uint i = 0; i < s_count; i++)
            {
                ulong block = Hv.AllocatePages(4);
                if (block == 0) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (VMCBs)");
                var cpu = (SvmCpu*)block;
                cpu->Index = i;
                cpu->ApicId = p->ApicIds[(int)i];
                cpu->Vmcb = (Vmcb*)(block + 4096);
                cpu->HostVmcb = block + (2 * 4096);
                cpu->HostSave = block + (3 * 4096);
                s_cpus[i] = cpu;
            }
            p->LaunchCpu = (delegate* unmanaged<uint, LaunchStatus>)HvStubs.LaunchCpuEntry();
            Hv.Log.Info("AMD SVM with nested paging: " + s_count.ToString() + (s_count == 1 ? " CPU" : " CPUs") + " to launch, nested tables for 0x"
                + HvMain.Hex(nestedLimit) + " bytes (MAXPHYADDR " + HostMemoryTypes.PhysicalAddressBits.ToString() + ", host map 0x" + HvMain.Hex(limit) + ", " + ((long)s_npt.TablesUsed).ToString() + " tables), pool used " + ((long)(Hv.PoolUsed >> 10)).ToString() + " KiB");
            return LaunchStatus.Virtualized;
        }

        /// <summary>
        /// Called by the generated launch entry on the CPU being launched (firmware context, boot services).
        /// Returns the host frame to run the loop on, or a <see cref="LaunchStatus"/> (below 0x1000) on failure.
        /// </summary>
        [UnmanagedCallersOnly(EntryPoint = "vigil_svm_prepare_cpu")]
        private static ulong PrepareCpu(uint index)
        {
            SvmCpu* cpu = Cpu(index);
            if (cpu == null) return (ulong)LaunchStatus.BadParameters;
            LaunchStatus check = Check(out string reason);
            if (check != LaunchStatus.Virtualized)
            {
                Hv.Log.Error("CPU " + index.ToString() + ": " + reason);
                LogRings.Write(index, LogEvent.CpuNotVirtualized, (ulong)check);
                return (ulong)check;
            }
            uint* r = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(1, 0, r);
            uint apicId = r[1] >> 24;

            ulong flags = Vigil.Platform.Cpu.ReadRflags();
            Vigil.Platform.Cpu.DisableInterrupts();
            cpu->LaunchFlags = flags;

            // EFER.SVME before any SVM instruction; the host save area (APM Vol 2 15.4, 15.30.4).
            Vigil.Platform.Cpu.WriteMsr(EferMsr, Vigil.Platform.Cpu.ReadMsr(EferMsr) | EferSvme);
            Vigil.Platform.Cpu.WriteMsr(HsavePaMsr, cpu->HostSave);

            Vmcb* vmcb = cpu->Vmcb;
            SetControls(vmcb, cpu);
            CaptureFirmwareState(vmcb, cpu, flags);
            HvStubs.Vmsave((ulong)vmcb);   // the firmware's FS, GS, TR, LDTR and syscall MSRs become the guest's

            // After the capture (the guest keeps the firmware's EFER and PAT): the host's EFER.NXE, so the no-execute
            // leaves of the nested tables are valid (the nested walk uses the host's EFER.NXE at VMRUN, APM Vol 2
            // 15.25.5; NX with NXE clear is a reserved bit: a #NPF on every access), and the reset PAT, which
            // NptFormat's PWT/PCD encoding assumes (the guest's PAT lives in G_PAT: hv/Core/Vcpu/MsrExit).
            if (HostMemoryTypes.NoExecute) Vigil.Platform.Cpu.WriteMsr(EferMsr, Vigil.Platform.Cpu.ReadMsr(EferMsr) | EferNxe);
            Vigil.Platform.Cpu.WriteMsr(PatMsr, X86PageEntry.DefaultPat);
            // CR4.OSXSAVE in the host (the guest's CR4 is the VMCB's): XSETBV on the guest's behalf (XCR0 at an AP's
            // start-up, hv/Core/Vcpu/StartupState) would raise #UD in the host without it.
            if (HasXsave) Vigil.Platform.Cpu.WriteCr4(Vigil.Platform.Cpu.ReadCr4() | Cr4Osxsave);

            HostEnvironment.Enter(index);
            HvStubs.Vmsave(cpu->HostVmcb);  // the host's TR (its TSS) and friends, reloaded after every exit

            HostCpu* host = HostEnvironment.Cpu(index);
            var frame = (SvmHostFrame*)(host->StackTop - (ulong)sizeof(SvmHostFrame));
            byte* raw = (byte*)frame;
            for (int i = 0; i < sizeof(SvmHostFrame); i++) raw[i] = 0;
            frame->Cpu = (ulong)cpu;
            frame->GuestVmcbPa = (ulong)vmcb;
            frame->HostVmcbPa = cpu->HostVmcb;
            cpu->Frame = frame;
            cpu->ApicId = apicId;
            cpu->Launched = 0;
            cpu->NmiInService = 0;
            SvmNestedMapChanges.Activate(index);   // before the first VMRUN: changes to the map wait for this CPU from now on
            ExitStatistics.MarkVirtualized(index, apicId);
            return (ulong)frame;
        }

        private static void SetControls(Vmcb* vmcb, SvmCpu* cpu)
        {
            byte* raw = (byte*)vmcb;
            for (int i = 0; i < 4096; i++) raw[i] = 0;
            // VMRUN must be intercepted (APM Vol 2 15.5.1, or VMRUN fails); the other SVM instructions are
            // hidden (#UD); CPUID hides SVM; INIT parks an AP; SHUTDOWN is a triple fault; NMI is how another
            // CPU gets this one out of the guest (hv/Host/NmiKick, SvmNmi re-injects the guest's own). Halts
            // and MWAITs run natively: a halted CPU is kicked out when something needs it.
            vmcb->InterceptMisc1 = (uint)(SvmIntercept1.Cpuid | SvmIntercept1.MsrProt | SvmIntercept1.Init | SvmIntercept1.Shutdown
                | SvmIntercept1.Nmi);
            vmcb->InterceptMisc2 = (uint)(SvmIntercept2.Vmrun | SvmIntercept2.Vmmcall | SvmIntercept2.Vmload | SvmIntercept2.Vmsave
                | SvmIntercept2.Stgi | SvmIntercept2.Clgi | SvmIntercept2.Skinit | (ApicTrap.Lifting ? SvmIntercept2.Wbinvd : 0));   // WBINVD: hv/Core/Apic/ApicTrap
            vmcb->MsrpmBasePa = (ulong)s_msrpm;
            vmcb->IopmBasePa = s_iopm;
            vmcb->GuestAsid = GuestAsid;
            vmcb->TlbControl = 1;   // flush everything on the first VMRUN
            vmcb->NestedControl = 1;
            vmcb->NestedCr3 = s_npt.Root;
        }

        /// <summary>The running firmware context becomes the guest's (APM Vol 2 15.5.1: state VMRUN loads).</summary>
        private static void CaptureFirmwareState(Vmcb* vmcb, SvmCpu* cpu, ulong flags)
        {
            byte* gdtr = stackalloc byte[10];
            byte* idtr = stackalloc byte[10];
            Vigil.Platform.Cpu.StoreGdtr(gdtr);
            Vigil.Platform.Cpu.StoreIdtr(idtr);
            ulong gdtBase = *(ulong*)(gdtr + 2);
            cpu->FirmwareGdtLimit = *(ushort*)gdtr;
            cpu->FirmwareGdtBase = gdtBase;
            cpu->FirmwareIdtLimit = *(ushort*)idtr;
            cpu->FirmwareIdtBase = *(ulong*)(idtr + 2);
            vmcb->Gdtr.Limit = cpu->FirmwareGdtLimit;
            vmcb->Gdtr.Base = gdtBase;
            vmcb->Idtr.Limit = cpu->FirmwareIdtLimit;
            vmcb->Idtr.Base = cpu->FirmwareIdtBase;

            cpu->FirmwareCs = Vigil.Platform.Cpu.ReadCs();
            cpu->FirmwareDs = Vigil.Platform.Cpu.ReadDs();
            cpu->FirmwareSs = Vigil.Platform.Cpu.ReadSs();
            Segment(&vmcb->Cs, cpu->FirmwareCs, gdtBase);
            Segment(&vmcb->Ds, cpu->FirmwareDs, gdtBase);
            Segment(&vmcb->Es, Vigil.Platform.Cpu.ReadEs(), gdtBase);
            Segment(&vmcb->Ss, cpu->FirmwareSs, gdtBase);

            vmcb->Cr0 = Vigil.Platform.Cpu.ReadCr0();
            vmcb->Cr2 = Vigil.Platform.Cpu.ReadCr2();
            cpu->FirmwareCr3 = Vigil.Platform.Cpu.ReadCr3();
            vmcb->Cr3 = cpu->FirmwareCr3;
            vmcb->Cr4 = Vigil.Platform.Cpu.ReadCr4();
            vmcb->Efer = Vigil.Platform.Cpu.ReadMsr(EferMsr);   // SVME set: VMRUN requires it in the guest too
            vmcb->GuestPat = Vigil.Platform.Cpu.ReadMsr(PatMsr);
            vmcb->Dr7 = 0x400;
            vmcb->Dr6 = 0xFFFF_0FF0;
            vmcb->Rflags = flags;
            vmcb->Cpl = 0;
        }

        private static void Segment(VmcbSegment* segment, ushort selector, ulong gdtBase)
        {
            segment->Selector = selector;
            if ((selector & ~7) == 0 || (selector & 4) != 0)
            {
                segment->Attributes = 0;
                segment->Limit = 0;
                segment->Base = 0;
                return;
            }
            ulong descriptor = *(ulong*)(gdtBase + (ulong)(selector & ~7));
            segment->Attributes = SegmentAttributes.FromDescriptor(descriptor);
            segment->Limit = SegmentAttributes.Limit(descriptor);
            segment->Base = SegmentAttributes.Base(descriptor);
        }

        /// <summary>
        /// The first VMRUN failed (invalid guest state): put the firmware's context back and return
        /// LaunchFailed to vigil.efi from the launch call; this CPU stays unprotected.
        /// </summary>
        public static void Abandon(SvmCpu* cpu)
        {
            Vmcb* vmcb = cpu->Vmcb;
            ExitStatistics.Cpu(cpu->Index)->Virtualized = 0;
            SvmNestedMapChanges.Deactivate(cpu->Index);
            LogRings.Write(cpu->Index, LogEvent.CpuNotVirtualized, (ulong)LaunchStatus.LaunchFailed, vmcb->ExitCode);
            Hv.Log.Error("CPU " + cpu->Index.ToString() + ": VMRUN refused the guest state (EXITCODE -1); this CPU stays unprotected");
            byte* descriptor = stackalloc byte[10];
            *(ushort*)descriptor = cpu->FirmwareGdtLimit;
            *(ulong*)(descriptor + 2) = cpu->FirmwareGdtBase;
            Vigil.Platform.Cpu.LoadGdtr(descriptor);
            *(ushort*)descriptor = cpu->FirmwareIdtLimit;
            *(ulong*)(descriptor + 2) = cpu->FirmwareIdtBase;
            Vigil.Platform.Cpu.LoadIdtr(descriptor);
            Vigil.Platform.Cpu.WriteCr3(cpu->FirmwareCr3);
            Vigil.Platform.Cpu.WriteCr4(vmcb->Cr4);   // the firmware's (OSXSAVE as it was)
            HvStubs.HostLoadSegments(cpu->FirmwareCs, cpu->FirmwareDs);
            HvStubs.Vmload((ulong)vmcb);   // the firmware's TR, FS, GS, LDTR
            Vigil.Platform.Cpu.WriteMsr(PatMsr, vmcb->GuestPat);
            Vigil.Platform.Cpu.WriteMsr(EferMsr, vmcb->Efer & ~EferSvme);   // the firmware's EFER (NXE as it was)
            if ((cpu->LaunchFlags & (1UL << 9)) != 0) Vigil.Platform.Cpu.EnableInterrupts();
            HvStubs.Abandon(cpu->Frame, (uint)LaunchStatus.LaunchFailed);
        }
    }
}
