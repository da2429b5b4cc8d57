using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>The shared ABI's layouts: these stand in for static_assert, since the hypervisor, vigild and the tool all read them.</summary>
public unsafe class AbiLayoutTests
{
    [Fact]
    public void Status_report_layout()
    {
        Assert.Equal(272, sizeof(CpuStatus));
        Assert.Equal(0, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Signature)));
        Assert.Equal(8, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Version)));
        Assert.Equal(12, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Vendor)));
        Assert.Equal(16, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.CpuCount)));
        Assert.Equal(24, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.ReservedBytes)));
        Assert.Equal(32, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.ReservedBase)));
        Assert.Equal(40, (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Cpus)));
        Assert.Equal(40 + (64 * 272), (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Guard)));
        Assert.Equal(40 + (64 * 272) + sizeof(GuardStatus) + sizeof(PolicyStatus), sizeof(StatusReport));
    }

    [Fact]
    public void Signatures_spell_their_names()
    {
        Assert.Equal("VIGILSTS", System.Text.Encoding.ASCII.GetString(System.BitConverter.GetBytes(StatusReport.ExpectedSignature)));
        Assert.Equal("VIGILLNC", System.Text.Encoding.ASCII.GetString(System.BitConverter.GetBytes(LaunchParameters.ExpectedSignature)));
        byte[] signature = System.BitConverter.GetBytes(Hypercall.Signature);
        System.Array.Reverse(signature);   // most significant byte first: how RAX reads
        Assert.Equal("VIGIL", System.Text.Encoding.ASCII.GetString(signature, 0, 5));
        string vendor = System.Text.Encoding.ASCII.GetString([.. System.BitConverter.GetBytes(Hypercall.CpuidVendorEbx), .. System.BitConverter.GetBytes(Hypercall.CpuidVendorEcx), .. System.BitConverter.GetBytes(Hypercall.CpuidVendorEdx)]);
        Assert.Equal("VigilVigilVi", vendor);
    }

    [Fact]
    public void Guest_registers_layout_keeps_the_xmm_area_aligned()
    {
        Assert.Equal(0, (int)Marshal.OffsetOf<GuestRegisters>(nameof(GuestRegisters.Rax)));
        Assert.Equal(14 * 8, (int)Marshal.OffsetOf<GuestRegisters>(nameof(GuestRegisters.R15)));
        Assert.Equal(0, (int)Marshal.OffsetOf<GuestRegisters>(nameof(GuestRegisters.Xmm)) % 16);
        Assert.Equal(128 + 96, sizeof(GuestRegisters));
    }

    [Fact]
    public void Launch_parameters_fit_the_first_pool_page()
    {
        Assert.True(sizeof(LaunchParameters) <= 4096);
        Assert.Equal(LaunchParameters.MaxCpus, StatusReport.MaxCpus);
        Assert.Equal(0, Unsafe.SizeOf<PhysicalRange>() % 8);
    }
}
