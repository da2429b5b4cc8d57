// Intel VMX back end (SDM Vol 3C ch. 24-29). Prepare runs once on the BSP with boot services up:
// checks VMX support (CPUID.1:ECX.VMX, IA32_FEATURE_CONTROL), reads the capability MSRs, builds what
// all CPUs share (host environment, EPT, MSR bitmap) and every CPU's block (VMXON region, VMCS, host
// stack). vigil.efi then calls the launch-in-place stub (vigil_vmx_launch_cpu) on each CPU, which
// calls PrepareCpu below and executes VMLAUNCH; the guest resumes in vigil.efi as if the call had
// returned LaunchStatus.Virtualized. Any failure returns a status and a message: the OS boots
// unprotected, loudly.
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Vigil.Hypervisor.Host;
using Vigil.Hypervisor.Native;
using Vigil.Platform;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxBackEnd
    {
        public static ulong Basic;
        public static PinBasedControls Pin;
        public static PrimaryControls Primary;
        public static SecondaryControls Secondary;
        public static VmExitControls Exit;
        public static VmEntryControls Entry;
        public static ulong EptVpidCap;
        public static ulong VmxMisc;
        public static ulong MsrBitmap;
        public static VmxCpu* Cpus;
        public static uint CpuCount;
        public static bool UseVpid;

        /// <summary>The CPU allows "descriptor-table exiting" (IA32_VMX_PROCBASED_CTLS2 bit 34, SDM Vol 3C A.3.3).</summary>
        public static bool HasDescriptorTableExiting;

        /// <summary>What the guest can use of the features the secondary controls gate (CPUID hides the rest: hv/Core/Vcpu/CpuidPolicy.ForGuest).</summary>
        public static GuestFeatures GuestFeatures;

        /// <summary>IA32_XSS (SDM Vol 3A 13.11 / Vol 4), present with CPUID.(0DH,1):EAX.XSAVES.</summary>
        public const uint XssMsr = 0xDA0;

        /// <summary>The CPU has XSAVES and IA32_XSS (CPUID.(0DH,1):EAX bit 3).</summary>
        public static bool HasXsaves;

        /// <summary>CR3 bits above MAXPHYADDR: a MOV to CR3 setting one raises #GP (SDM Vol 3A 4.5.2).</summary>
        public static ulong Cr3ReservedMask;

        /// <summary>CPUID.1:ECX.XSAVE: the host runs with CR4.OSXSAVE and may execute XSETBV for the guest.</summary>
        public static bool HasXsave;

        /// <summary>The hypervisor's reservation: never read as guest code (GuestCode.Fetch).</summary>
        public static ulong ReservedBase, ReservedSize;

        /// <summary>The CPU vigil.efi launches last (after every AP).</summary>
        public static uint BspIndex;

        public static LaunchStatus Prepare(LaunchParameters* p)
        {
            uint* r = stackalloc uint[4];
            Cpu.Cpuid(1, 0, r);
            if ((r[2] & (1u << 5)) == 0) return HvMain.Fail(p, LaunchStatus.NotSupported, "this CPU has no VMX (CPUID.1:ECX.VMX = 0)");
            if ((Cpu.ReadCr4() & Cr4Vmxe) != 0) return HvMain.Fail(p, LaunchStatus.AlreadyInUse, "VMX is already in use (CR4.VMXE = 1): another hypervisor runs");
            ulong fc = Cpu.ReadMsr((uint)VmxMsr.Ia32FeatureControl);
            if ((fc & (ulong)FeatureControl.Lock) != 0 && (fc & (ulong)FeatureControl.VmxOutsideSmx) == 0)
                return HvMain.Fail(p, LaunchStatus.DisabledByFirmware, "VMX is disabled and locked by the firmware (IA32_FEATURE_CONTROL = 0x" + HvMain.Hex(fc) + ")");

            Basic = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxBasic);
            VmxMisc = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxMisc);
            if (VmxCapabilities.VmcsMemoryType(Basic) != 6 || VmxCapabilities.RegionSize(Basic) > 4096)
                return HvMain.Fail(p, LaunchStatus.NotSupported, "unsupported VMCS memory type or size (IA32_VMX_BASIC = 0x" + HvMain.Hex(Basic) + ")");

            // Controls, adjusted to what this CPU allows (true controls where IA32_VMX_BASIC bit 55 is set, SDM Vol 3C A.2).
            ulong pinCap = Cpu.ReadMsr((uint)VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxPinbasedCtls, Basic));
            ulong procCap = Cpu.ReadMsr((uint)VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxProcbasedCtls, Basic));
            ulong exitCap = Cpu.ReadMsr((uint)VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxExitCtls, Basic));
            ulong entryCap = Cpu.ReadMsr((uint)VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxEntryCtls, Basic));
            // NMIs exit and are handed back to the guest (VmxNmi), with NMI-window exits when the guest blocks them; an NMI
            // is also how a caught INIT gets an AP out of the guest (hv/Host/ApKick). Every VT-x CPU since 2006 has them.
            uint wantPin = (uint)(PinBasedControls.NmiExiting | PinBasedControls.VirtualNmis);
            if (VmxCapabilities.Missing(wantPin, pinCap) != 0 || VmxCapabilities.Missing((uint)PrimaryControls.NmiWindowExiting, procCap) != 0)
                return HvMain.Fail(p, LaunchStatus.NotSupported, "this CPU lacks NMI exiting, virtual NMIs or NMI-window exiting (IA32_VMX_PINBASED_CTLS = 0x" + HvMain.Hex(pinCap) + ")");
            Pin = (PinBasedControls)VmxCapabilities.Adjust(wantPin, pinCap);
            uint wantPrimary = (uint)(PrimaryControls.UseMsrBitmaps | PrimaryControls.ActivateSecondaryControls);
            if (VmxCapabilities.Missing(wantPrimary, procCap) != 0)
                return HvMain.Fail(p, LaunchStatus.NotSupported, "this CPU lacks MSR bitmaps or secondary controls");
            Primary = (PrimaryControls)VmxCapabilities.Adjust(wantPrimary, procCap);

            ulong secCap = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxProcbasedCtls2);
            uint required = (uint)(SecondaryControls.EnableEpt | SecondaryControls.UnrestrictedGuest);
            if (VmxCapabilities.Missing(required, secCap) != 0)
                return HvMain.Fail(p, LaunchStatus.NotSupported, "this CPU lacks EPT or unrestricted guest (IA32_VMX_PROCBASED_CTLS2 = 0x" + HvMain.Hex(secCap) + ")");
            // INVPCID, RDTSCP and XSAVES must be enabled or the guest gets #UD for them (DESIGN.md pitfalls);
            // Adjust drops the ones this CPU lacks (the guest then does not see them in CPUID either).
            // "Enable user wait and pause" makes TPAUSE/UMONITOR/UMWAIT usable (else #UD, SDM Vol 3C 25.6.2); with
            // "RDTSC exiting" clear they run natively. Where the CPU lacks the control, CPUID hides WAITPKG.
            uint wantSecondary = required | (uint)(SecondaryControls.EnableVpid | SecondaryControls.EnableRdtscp
                | SecondaryControls.EnableInvpcid | SecondaryControls.EnableXsavesXrstors | SecondaryControls.EnableUserWaitAndPause);
            Secondary = (SecondaryControls)VmxCapabilities.Adjust(wantSecondary, secCap);
            // The kernel guard turns descriptor-table exiting on per CPU while armed (VmxGuard); where the CPU lacks it,
            // LIDT/LGDT are not guarded on this machine (said in the log).
            HasDescriptorTableExiting = VmxCapabilities.Missing((uint)SecondaryControls.DescriptorTableExiting, secCap) == 0;
            // WBINVD exiting lets the xAPIC trap be lifted while no CPU may be started (hv/Core/Apic/ApicTrap); without
            // it the trap stays on (every EOI and timer write exits, as before).
            if (ApicTrap.Lifting && VmxCapabilities.Missing((uint)SecondaryControls.WbinvdExiting, secCap) == 0) Secondary |= SecondaryControls.WbinvdExiting;
            GuestFeatures = ((Secondary & SecondaryControls.EnableUserWaitAndPause) != 0 ? GuestFeatures.WaitPkg : 0)
                | ((Secondary & SecondaryControls.EnableXsavesXrstors) != 0 ? GuestFeatures.Xsaves : 0)
                | ((Secondary & SecondaryControls.EnableRdtscp) != 0 ? GuestFeatures.Rdtscp : 0)
                | ((Secondary & SecondaryControls.EnableInvpcid) != 0 ? GuestFeatures.Invpcid : 0);
            HasXsave = (r[2] & (1u << 26)) != 0;
            Cpu.Cpuid(0, 0, r);
            if (r[0] >= 0xD)
            {
                Cpu.Cpuid(0xD, 1, r);
                HasXsaves = (r[0] & (1u << 3)) != 0;
            }
            Cpu.Cpuid(0x8000_0000, 0, r);
            uint maxPhysical = 36;   // without leaf 8000_0008 (SDM Vol 3A 4.1.4)
            if (r[0] >= 0x8000_0008)
            {
                Cpu.Cpuid(0x8000_0008, 0, r);
                maxPhysical = r[0] & 0xFF;
            }
            Cr3ReservedMask = ~((1UL << (int)maxPhysical) - 1);
            Exit = (VmExitControls)VmxCapabilities.Adjust((uint)(VmExitControls.HostAddressSpaceSize | VmExitControls.SaveIa32Efer
                | VmExitControls.LoadIa32Efer | VmExitControls.SaveIa32Pat | VmExitControls.LoadIa32Pat | VmExitControls.SaveDebugControls), exitCap);
            Entry = (VmEntryControls)VmxCapabilities.Adjust((uint)(VmEntryControls.LoadIa32Efer | VmEntryControls.LoadIa32Pat
                | VmEntryControls.LoadDebugControls), entryCap);
            const uint needExit = (uint)(VmExitControls.HostAddressSpaceSize | VmExitControls.SaveIa32Efer | VmExitControls.LoadIa32Efer);
            if (((uint)Exit & needExit) != needExit || (Entry & VmEntryControls.LoadIa32Efer) == 0)
                return HvMain.Fail(p, LaunchStatus.NotSupported, "this CPU cannot save/load IA32_EFER on VM exit/entry");

            EptVpidCap = Cpu.ReadMsr((uint)VmxMsr.Ia32VmxEptVpidCap);
            const ulong needEpt = (ulong)(EptVpidCapabilities.PageWalkLength4 | EptVpidCapabilities.WriteBackPagingStructures
                | EptVpidCapabilities.Pages2MiB | EptVpidCapabilities.Invept | EptVpidCapabilities.InveptAllContexts);
            if ((EptVpidCap & needEpt) != needEpt)
                return HvMain.Fail(p, LaunchStatus.NotSupported, "this CPU's EPT lacks 4-level walks, WB tables, 2 MiB pages or INVEPT (IA32_VMX_EPT_VPID_CAP = 0x" + HvMain.Hex(EptVpidCap) + ")");
            const ulong needVpid = (ulong)(EptVpidCapabilities.Invvpid | EptVpidCapabilities.InvvpidAllContexts);
            UseVpid = (Secondary & SecondaryControls.EnableVpid) != 0 && (EptVpidCap & needVpid) == needVpid;
            if (!UseVpid) Secondary &= ~SecondaryControls.EnableVpid;

            // Shared structures. The host (hv/Host: GDT, TSS with IST stacks, IDT, stacks, CR3) maps up to the top of
            // the memory map; the EPT all the CPU can address (PoolSize.NestedTop: MAXPHYADDR, at most 48 bits for a
            // 4-level EPT; with 2 MiB pages only, 512 GiB), so device BARs above the memory map are mapped.
            ReservedBase = p->ReservedBase;
            ReservedSize = p->ReservedSize;
            BspIndex = p->BspIndex;
            ulong hostLimit = PlatformMemory.MappingLimit(new System.ReadOnlySpan<PhysicalRange>(p->MemoryMap, (int)p->MemoryMapCount));
            bool oneGiB = (EptVpidCap & (ulong)EptVpidCapabilities.Pages1GiB) != 0;
            if (!HostMemoryTypes.Initialize()) return HvMain.Fail(p, LaunchStatus.NotSupported, "the MTRRs cannot be read completely (too many variable ranges)");
            ulong limit = PoolSize.NestedTop(hostLimit, HostMemoryTypes.PhysicalAddressBits, oneGiB);
            if (!HostEnvironment.Initialize(p->CpuCount, hostLimit, HostMemoryTypes.GigabytePages))
                return HvMain.Fail(p, LaunchStatus.OutOfMemory, "the page pool is too small for the host environment");

            // Allocate every CPU's block before building the EPT, so the hidden range below covers them.
            CpuCount = p->CpuCount;
            ulong blocks = Hv.AllocatePages((ulong)VmxCpu.Pages * CpuCount);
            MsrBitmap = Hv.AllocatePages(1);
            if (blocks == 0 || MsrBitmap == 0) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "the page pool is too small for the per-CPU VMX blocks");
            Cpus = (VmxCpu*)blocks;   // blocks are VmxCpu.Pages apart: use Cpu(index)
            uint revision = VmxCapabilities.RevisionId(Basic);
            for (uint i = 0; i < CpuCount; i++)
            {
                VmxCpu* c = CpuBlock(i);
                c->Index = i;
                c->ApicId = p->ApicIds[(int)i];
                c->VmxonPhysical = (ulong)c + 4096;
                c->VmcsPhysical = (ulong)c + 8192;
                c->HostStackTop = HostEnvironment.Cpu(i)->StackTop;
                *(uint*)c->VmxonPhysical = revision;   // SDM Vol 3C 25.11.5: revision identifier first
                *(uint*)c->VmcsPhysical = revision;
                *(ulong*)(c->HostStackTop - 16) = (ulong)c;   // HOST_RSP = top - 16 points at the block
            }
            Core.Msr.MsrPolicy.BuildVmxBitmap((byte*)MsrBitmap);   // with the x2APIC ICR: INIT/SIPI to virtualized APs (hv/Core/Apic/ApStartup)

            // Hide the whole reservation (image, heap, pool): the loader's hand-over block lies outside it, in
            // loader memory, and stays guest-visible (vigil.efi writes each CPU's result there after its launch).
            // The memory types come from the one MTRR snapshot (CPUID.1:EDX.MTRR checked first).
            if (!VmxEpt.Build(limit, oneGiB, p->ReservedBase, p->ReservedSize))
                return HvMain.Fail(p, LaunchStatus.OutOfMemory, "the page pool is too small for the EPT");
            // The xAPIC page read-only: its writes exit (Handlers/EptViolationHandler), so the ICR is seen (hv/Core/Apic/ApStartup).
            ulong apic = ApicPage.Initialize(Cpu.ReadMsr(ApicPage.BaseMsr));
            var pages = Hv.Pages;
            if (apic != 0 && !VmxEpt.Map.SetAccess(ref pages, apic, 0x1000, PageAccess.Read))
                return HvMain.Fail(p, LaunchStatus.OutOfMemory, "the page pool is too small for the EPT (xAPIC page)");

            void** callbacks = HvStubs.VmxCallbacks();
            callbacks[0] = (delegate* unmanaged<uint, ulong, ulong, ulong, LaunchStatus>)&PrepareCpu;
            callbacks[1] = (delegate* unmanaged<uint, LaunchStatus>)&LaunchFailed;
            callbacks[2] = (delegate* unmanaged<GuestRegisters*, VmxCpu*, void>)&VmxExitDispatcher.Exit;
            callbacks[3] = (delegate* unmanaged<GuestRegisters*, VmxCpu*, void>)&VmxExitDispatcher.ResumeFailed;

            Hv.Log.Info("VMX: host environment of hv/Host (IDT with NMI, #DF, #MC on IST stacks), xAPIC page 0x" + HvMain.Hex(apic) + " write-trapped");
            Hv.Log.Info("VMX: pin 0x" + HvMain.Hex((uint)Pin) + " primary 0x" + HvMain.Hex((uint)Primary) + " secondary 0x" + HvMain.Hex((uint)Secondary)
                + " exit 0x" + HvMain.Hex((uint)Exit) + " entry 0x" + HvMain.Hex((uint)Entry) + (UseVpid ? ", VPID" : ", no VPID"));
            Hv.Log.Info("EPT: identity map of " + ((long)(limit >> 30)).ToString() + " GiB" + (oneGiB ? " (1 GiB pages)" : "") + ", "
                + ((long)VmxEpt.TablesUsed).ToString() + " tables, " + ((long)VmxEpt.ProtectedPages).ToString() + " hypervisor pages hidden, pool used " + ((long)(Hv.PoolUsed >> 10)).ToString() + " KiB");
            // Changes to the EPT once guests run go through one service (hv/Core/Paging/NestedMapService).
            if (!VmxNestedMapChanges.Initialize(CpuCount)) return HvMain.Fail(p, LaunchStatus.OutOfMemory, "out of hypervisor memory (nested map changes)");
            ApStartup.SetAfterCaught(&Host.ApKick.AfterCaught);   // INIT to a virtualized AP: an NMI gets it out of the guest
            ApicTrap.Enable((Secondary & SecondaryControls.WbinvdExiting) != 0);
            Hv.Log.Info(ApicTrap.Enabled ? "xAPIC trap: lifted while no CPU may be started (WBINVD exiting)"
                : ApicTrap.Lifting ? "xAPIC trap: always on (this CPU lacks WBINVD exiting)" : "xAPIC trap: always on");
            p->LaunchCpu = LaunchEntry;
            return LaunchStatus.Virtualized;
        }

        /// <summary>The launch-in-place entry (vigil_vmx_launch_cpu) that vigil.efi calls on every CPU.</summary>
        public static delegate* unmanaged<uint, LaunchStatus> LaunchEntry => (delegate* unmanaged<uint, LaunchStatus>)HvStubs.VmxLaunchEntryAddress();

        public static VmxCpu* CpuBlock(uint index) => (VmxCpu*)((byte*)Cpus + ((ulong)index * VmxCpu.Pages * 4096));

        public const ulong Cr4Vmxe = 1UL << 13;

        /// <summary>
        /// Called by the launch stub with the caller's RSP/RIP/RFLAGS: enters VMX operation and writes the VMCS.
        /// Returns Virtualized to have the stub execute VMLAUNCH, anything else to return that status.
        /// </summary>
        [UnmanagedCallersOnly]
        private static LaunchStatus PrepareCpu(uint index, ulong guestRsp, ulong guestRip, ulong guestRflags)
        {
            if (index >= CpuCount) return LaunchStatus.BadParameters;
            VmxCpu* c = CpuBlock(index);
            LaunchStatus status = VmxLaunch.EnterVmxOperation(c);
            if (status != LaunchStatus.Virtualized) return status;
            status = VmxLaunch.WriteVmcs(c, guestRsp, guestRip, guestRflags);
            if (status != LaunchStatus.Virtualized)
            {
                HvStubs.VmxOff();
                Cpu.WriteCr4(Cpu.ReadCr4() & ~Cr4Vmxe);
                return status;
            }
            Hv.Log.Info("CPU " + index.ToString() + " (APIC ID " + c->ApicId.ToString() + "): VMLAUNCH");
            // Marked before VMLAUNCH: after it, this CPU runs vigil.efi as a guest and only exits come back here.
            ExitStatistics.MarkVirtualized(index, c->ApicId);
            ApStartup.Of(index)->Virtualized = 1;   // INIT/SIPI to it are caught from now on (hv/Core/Apic/ApStartup)
            VmxNestedMapChanges.Activate(index);    // EPT changes wait for this CPU from now on (INVEPT needs VMX operation: it has it)
            return LaunchStatus.Virtualized;
        }

        [UnmanagedCallersOnly]
        private static LaunchStatus LaunchFailed(uint index)
        {
            ulong error = 0;
            HvStubs.VmRead((uint)VmcsField.VmInstructionError, &error);
            CpuStatus* s = ExitStatistics.Cpu(index);
            if (s != null) s->Virtualized = 0;
            ApStartup.Of(index)->Virtualized = 0;
            VmxNestedMapChanges.Deactivate(index);
            Hv.Log.Error("CPU " + index.ToString() + ": VMLAUNCH failed, VM-instruction error " + ((long)error).ToString()
                + " (" + VmxLaunch.InstructionErrorName(error) + "); this CPU stays unprotected");
            HvStubs.VmClear(&CpuBlock(index)->VmcsPhysical);
            HvStubs.VmxOff();
            Cpu.WriteCr4(Cpu.ReadCr4() & ~Cr4Vmxe);
            return LaunchStatus.LaunchFailed;
        }
    }
}
