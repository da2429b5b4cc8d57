using System.Collections.Generic;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Tests.Hypervisor;

/// <summary>The state behind a <see cref="FakeVcpu"/>: a guest CPU stopped in an exit, and what the handlers did to it.</summary>
internal sealed class FakeVcpuState
{
    public uint Index = 0;
    public Vendor Vendor = Vendor.IntelVmx;
    public GuestRegisters Regs;
    public ulong Rip = 0x1000, Rsp = 0x8000, Rflags = 2;
    public ulong Cr0 = 0x8005_0033, Cr3 = 0x10_0000, Cr4 = 0x20 | CpuidPolicy.Cr4Osxsave, Efer = 0xD00;   // long mode, paging, PAE, NXE
    public int Cpl;
    public ulong CsBase = 0;
    public CpuMode Mode = CpuMode.Bits64;
    public ulong Pat = X86PageEntry.DefaultPat;
    public ulong ExitGuestPhysical = 0;
    public int ExitInstructionLength = 2;
    public ulong ReservedBase = 0x7000_0000, ReservedSize = 0x10_0000;
    public GuestFeatures Features = GuestFeatures.WaitPkg | GuestFeatures.Xsaves | GuestFeatures.Rdtscp | GuestFeatures.Invpcid;
    public ulong Cr4Supported = 0x3F_FFFF & ~(1UL << 13);   // everything up to PKS but VMXE
    public ulong ApicBaseMsr = 0xFEE0_0900;

    /// <summary>CPUID answers of the "hardware", by (leaf, subleaf); missing leaves read as zeros.</summary>
    public Dictionary<(uint, uint), (uint, uint, uint, uint)> Cpuid = [];

    /// <summary>Answers that depend on the CPU's state (leaf 0DH on XCR0): consulted before <see cref="Cpuid"/>; null: not this one.</summary>
    public System.Func<FakeVcpuState, uint, uint, (uint, uint, uint, uint)?>? StateCpuid;

    /// <summary>The "hardware" XCR0 (XGETBV) and every value XSETBV loaded into it, in order.</summary>
    public ulong Xcr0 = 1;
    public readonly List<ulong> Xcr0Loads = [];
    public Dictionary<uint, ulong> VendorMsrs = [];

    /// <summary>The MSRs the "hardware" has (RDMSR/WRMSR of any other raises #GP), for pass-through accesses.</summary>
    public Dictionary<uint, ulong> HardwareMsrs = new() { [ApicPage.X2ApicIcrMsr] = 0 };

    public VcpuEvent Interrupted, Injected, Deferred;
    public bool Shadow, NmiBlocked, Window, SingleStep, TripleFault, Cleared, Flushed;
    public ulong? Cr0Loaded, Cr3Loaded, Cr4Loaded, Xcr0Loaded, IcrSent;
    public readonly Dictionary<SegmentRegister, (ushort Selector, ulong Base, uint Limit, uint Rights)> Segments = [];
    public (ulong GdtBase, uint GdtLimit, ulong IdtBase, uint IdtLimit)? Tables;
    public (ulong Cr0, ulong Dr7)? ResetControl;

    public ulong FsBase = 0, GsBase = 0;
    public ulong? Cr2Loaded;
    public ulong GdtBase = 0xffff_fe00_0000_1000, IdtBase = 0xffff_fe00_0000_0000;
    public uint GdtLimit = 127, IdtLimit = 4095;
    public Dictionary<SegmentRegister, ushort> Selectors = [];

    /// <summary>EFER and the syscall MSRs as the back end keeps them for the guest (WriteGuardedMsr).</summary>
    public Dictionary<uint, ulong> GuardedMsrs = [];
}

/// <summary>IVcpu for the handler tests: every read and write goes to a <see cref="FakeVcpuState"/>.</summary>
internal readonly struct FakeVcpu(FakeVcpuState s) : IVcpu
{
    public FakeVcpuState State => s;

    public uint Index => s.Index;

    public Vendor Vendor => s.Vendor;

    public ref GuestRegisters Registers => ref s.Regs;

    public ulong Rip { get => s.Rip; set => s.Rip = value; }

    public ulong Rsp { get => s.Rsp; set => s.Rsp = value; }

    public ulong Rflags { get => s.Rflags; set => s.Rflags = value; }

    public ulong Cr0 => s.Cr0;

    public ulong Cr3 => s.Cr3;

    public ulong Cr4 => s.Cr4;

    public ulong Efer => s.Efer;

    public int Cpl => s.Cpl;

    public ulong CsBase => s.CsBase;

    public CpuMode Mode => s.Mode;

    public ulong Pat { get => s.Pat; set => s.Pat = value; }

    public ulong ExitGuestPhysical => s.ExitGuestPhysical;

    public ulong ExitGuestLinear => VcpuConstants.NoLinearAddress;

    public int ExitInstructionLength => s.ExitInstructionLength;

    public ulong ReservedBase => s.ReservedBase;

    public ulong ReservedSize => s.ReservedSize;

    public void HostCpuid(uint leaf, uint subleaf, out CpuidResult result)
    {
        (uint eax, uint ebx, uint ecx, uint edx) = s.StateCpuid?.Invoke(s, leaf, subleaf) ?? (s.Cpuid.TryGetValue((leaf, subleaf), out var r) ? r : default);
        result = new CpuidResult { Eax = eax, Ebx = ebx, Ecx = ecx, Edx = edx };
    }

    public GuestFeatures Features => s.Features;

    public ulong Cr4Supported => s.Cr4Supported;

    public void LoadCr0(ulong value) => s.Cr0 = (s.Cr0Loaded = value).Value;

    public void LoadCr3(ulong value) => s.Cr3 = (s.Cr3Loaded = value).Value;

    public void LoadCr4(ulong value) => s.Cr4 = (s.Cr4Loaded = value).Value;

    public void LoadXcr0(ulong value)
    {
        s.Xcr0 = (s.Xcr0Loaded = value).Value;
        s.Xcr0Loads.Add(value);
    }

    public ulong Xcr0 => s.Xcr0;

    public MsrOutcome ReadVendorMsr(uint msr, out ulong value)
        => s.VendorMsrs.TryGetValue(msr, out value) ? MsrOutcome.Done : MsrOutcome.GeneralProtection;

    public MsrOutcome WriteVendorMsr(uint msr, ulong value)
    {
        if (!s.VendorMsrs.ContainsKey(msr)) return MsrOutcome.GeneralProtection;
        s.VendorMsrs[msr] = value;
        return MsrOutcome.Done;
    }

    public bool TryRead(uint msr, out ulong value) => s.HardwareMsrs.TryGetValue(msr, out value);

    public bool TryWrite(uint msr, ulong value)
    {
        if (!s.HardwareMsrs.ContainsKey(msr)) return false;   // the CPU has no such MSR: #GP
        s.HardwareMsrs[msr] = value;
        if (msr == ApicPage.X2ApicIcrMsr) s.IcrSent = value;
        return true;
    }

    public ulong ApicBaseMsr => s.ApicBaseMsr;

    public VcpuEvent InterruptedEvent => s.Cleared ? VcpuEvent.None : s.Interrupted;

    public VcpuEvent Injected { get => s.Injected; set => s.Injected = value; }

    public bool InterruptShadow { get => s.Shadow; set => s.Shadow = value; }

    public bool NmiBlocked { get => s.NmiBlocked; set => s.NmiBlocked = value; }

    public ref VcpuEvent Deferred => ref s.Deferred;

    public void RequestInterruptWindow(bool on) => s.Window = on;

    public void RaiseSingleStep() => s.SingleStep = true;

    public void TripleFault() => s.TripleFault = true;

    public void LoadSegment(SegmentRegister register, ushort selector, ulong baseAddress, uint limit, uint accessRights)
        => s.Segments[register] = (selector, baseAddress, limit, accessRights);

    public void LoadDescriptorTables(ulong gdtBase, uint gdtLimit, ulong idtBase, uint idtLimit) => s.Tables = (gdtBase, gdtLimit, idtBase, idtLimit);

    public void LoadResetControlState(ulong cr0, ulong dr7)
    {
        s.ResetControl = (cr0, dr7);
        s.Cr0 = cr0;
        s.Cr3 = s.Cr4 = s.Efer = 0;
    }

    public void ClearEventState()
    {
        s.Cleared = true;
        s.Injected = s.Deferred = VcpuEvent.None;
        s.Shadow = s.NmiBlocked = s.Window = false;
    }

    public void FlushGuestTlb() => s.Flushed = true;

    public ulong FsBase => s.FsBase;

    public ulong GsBase => s.GsBase;

    public void LoadCr2(ulong value) => s.Cr2Loaded = value;

    public void ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out ulong idtBase, out uint idtLimit)
        => (gdtBase, gdtLimit, idtBase, idtLimit) = s.Tables ?? (s.GdtBase, s.GdtLimit, s.IdtBase, s.IdtLimit);

    public ushort Selector(SegmentRegister register) => s.Segments.TryGetValue(register, out var seg) ? seg.Selector : s.Selectors.GetValueOrDefault(register);

    public ulong ReadGuardedMsr(uint msr) => msr == 0xC000_0080 ? s.Efer : s.GuardedMsrs.GetValueOrDefault(msr);

    public MsrOutcome WriteGuardedMsr(uint msr, ulong value)
    {
        if (msr == 0xC000_0080) s.Efer = value;
        s.GuardedMsrs[msr] = value;
        return MsrOutcome.Done;
    }
}
