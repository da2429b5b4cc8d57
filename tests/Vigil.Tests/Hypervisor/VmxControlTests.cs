using Vigil.Hypervisor.Vmx;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>Control adjustment against capability MSR values (SDM Vol 3C Appendix A.3-A.5).</summary>
public class VmxControlTests
{
    // Sample values as a Skylake server reports them (low dword: must-be-1, high dword: may-be-1).
    private const ulong TruePinbased = 0x0000_007F_0000_0016;
    private const ulong TrueProcbased = 0xFFF9_FFFE_0400_6172;
    private const ulong LegacyProcbased = 0xFFF9_FFFE_0401_E172;
    private const ulong Procbased2 = 0x0053_FFFF_0000_0000;
    private const ulong BasicWithTrue = 0x00DA_0400_0000_0004;
    private const ulong BasicWithoutTrue = 0x005A_0400_0000_0004;

    [Fact]
    public void Adjust_sets_required_bits_and_clears_unsupported_ones()
    {
        uint wanted = (uint)(PrimaryControls.UseMsrBitmaps | PrimaryControls.ActivateSecondaryControls);
        uint adjusted = VmxCapabilities.Adjust(wanted, TrueProcbased);
        Assert.Equal(0x9400_6172u, adjusted);
        // The legacy MSR forces CR3-load/store exiting (bits 15, 16); the true MSR does not.
        Assert.Equal(0x9401_E172u, VmxCapabilities.Adjust(wanted, LegacyProcbased));
        Assert.Equal(0x16u, VmxCapabilities.Adjust(0, TruePinbased));
    }

    [Fact]
    public void Adjust_drops_secondary_controls_the_cpu_lacks_and_Missing_names_them()
    {
        uint wanted = (uint)(SecondaryControls.EnableEpt | SecondaryControls.UnrestrictedGuest | SecondaryControls.EnableXsavesXrstors
            | SecondaryControls.UseTscScaling);
        const ulong noXsaves = 0x0000_00FF_0000_0000;   // bits 0-7 only
        uint adjusted = VmxCapabilities.Adjust(wanted, noXsaves);
        Assert.Equal((uint)(SecondaryControls.EnableEpt | SecondaryControls.UnrestrictedGuest), adjusted);
        Assert.Equal((uint)(SecondaryControls.EnableXsavesXrstors | SecondaryControls.UseTscScaling), VmxCapabilities.Missing(wanted, noXsaves));
        Assert.Equal(0u, VmxCapabilities.Missing(wanted & ~(uint)SecondaryControls.UseTscScaling, Procbased2));
    }

    [Fact]
    public void True_capability_msrs_are_used_only_when_basic_bit_55_is_set()
    {
        Assert.Equal(VmxMsr.Ia32VmxTrueProcbasedCtls, VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxProcbasedCtls, BasicWithTrue));
        Assert.Equal(VmxMsr.Ia32VmxTruePinbasedCtls, VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxPinbasedCtls, BasicWithTrue));
        Assert.Equal(VmxMsr.Ia32VmxTrueExitCtls, VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxExitCtls, BasicWithTrue));
        Assert.Equal(VmxMsr.Ia32VmxTrueEntryCtls, VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxEntryCtls, BasicWithTrue));
        Assert.Equal(VmxMsr.Ia32VmxProcbasedCtls, VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxProcbasedCtls, BasicWithoutTrue));
        // Secondary controls have no TRUE_ MSR.
        Assert.Equal(VmxMsr.Ia32VmxProcbasedCtls2, VmxCapabilities.CapabilityMsr(VmxMsr.Ia32VmxProcbasedCtls2, BasicWithTrue));
    }

    [Fact]
    public void Basic_msr_fields_decode()
    {
        Assert.Equal(4u, VmxCapabilities.RevisionId(BasicWithTrue));
        Assert.Equal(0x400u, VmxCapabilities.RegionSize(BasicWithTrue));
        Assert.Equal(6u, VmxCapabilities.VmcsMemoryType(BasicWithTrue));
    }

    [Fact]
    public void Fixed_bits_force_cr0_and_cr4_into_vmx_operation()
    {
        const ulong cr0Fixed0 = 0x8000_0021, cr0Fixed1 = 0xFFFF_FFFF;   // PG, NE, PE must be 1
        const ulong cr4Fixed0 = 0x2000, cr4Fixed1 = 0x003F_FFFF;         // VMXE must be 1; bits above 21 must be 0
        Assert.Equal(0x8000_0031UL, VmxCapabilities.ApplyFixedBits(0x8000_0011, cr0Fixed0, cr0Fixed1));
        Assert.Equal(0x2020UL, VmxCapabilities.ApplyFixedBits(0x0040_0020, cr4Fixed0, cr4Fixed1));
    }
}
