using Vigil.Abi;
using Vigil.Hypervisor.Vmx;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>Segment access-rights conversion (SDM Vol 3A 3.4.5, Vol 3C 25.4.1), MSR policy, exit categories.</summary>
public unsafe class VmxSegmentTests
{
    [Fact]
    public void Code64_data_and_tss_descriptors_convert_to_vmcs_access_rights()
    {
        Assert.Equal(0xA09Bu, SegmentAccessRights.FromDescriptor(0x00AF_9B00_0000_FFFF));   // L, G, present code
        Assert.Equal(0xC093u, SegmentAccessRights.FromDescriptor(0x00CF_9300_0000_FFFF));   // D/B, G, data
        Assert.Equal(0xFFFF_FFFFu, SegmentAccessRights.Limit(0x00CF_9300_0000_FFFF));
        Assert.Equal(0x67u, SegmentAccessRights.Limit(0x0000_8B00_0000_0067));
        Assert.Equal(0x1234_5678_9ABC_DEF0UL, SegmentAccessRights.Base(0x9A00_8BBC_DEF0_0067, 0x1234_5678, system16Bytes: true));
    }

    [Fact]
    public void Segments_from_a_gdt_null_ldt_and_beyond_limit_selectors_are_unusable()
    {
        ulong* gdt = stackalloc ulong[6];
        gdt[0] = 0;
        gdt[1] = 0x00AF_9B00_0000_FFFF;
        gdt[2] = 0x00CF_9300_0000_FFFF;
        gdt[3] = 0x9A00_8BBC_DEF0_0067;   // busy 64-bit TSS, 16 bytes
        gdt[4] = 0x1234_5678;
        gdt[5] = 0x00CF_1300_0000_FFFF;   // not present
        uint limit = (6 * 8) - 1;

        SegmentState cs = SegmentAccessRights.FromGdt((byte*)gdt, limit, 0x08);
        Assert.Equal(0xA09Bu, cs.AccessRights);
        SegmentState tr = SegmentAccessRights.FromGdt((byte*)gdt, limit, 0x18);
        Assert.Equal(0x8Bu, tr.AccessRights);
        Assert.Equal(0x1234_5678_9ABC_DEF0UL, tr.Base);
        Assert.Equal(SegmentAccessRights.Unusable, SegmentAccessRights.FromGdt((byte*)gdt, limit, 0).AccessRights);
        Assert.Equal(SegmentAccessRights.Unusable, SegmentAccessRights.FromGdt((byte*)gdt, limit, 0x0C).AccessRights);   // TI = 1
        Assert.Equal(SegmentAccessRights.Unusable, SegmentAccessRights.FromGdt((byte*)gdt, limit, 0x30).AccessRights);
        Assert.NotEqual(0u, SegmentAccessRights.FromGdt((byte*)gdt, limit, 0x28).AccessRights & SegmentAccessRights.Unusable);
    }

    [Fact]
    public void Msr_bitmap_intercepts_feature_control_vmx_capabilities_and_x2apic_icr_writes_only()
    {
        byte* bitmap = stackalloc byte[4096];
        new System.Span<byte>(bitmap, 4096).Clear();
        Vigil.Hypervisor.Core.Msr.MsrPolicy.BuildVmxBitmap(bitmap);
        Assert.Equal(1 << 2, bitmap[0x3A >> 3] & (1 << 2));            // read-low, MSR 0x3A
        Assert.Equal(1 << 2, bitmap[2048 + (0x3A >> 3)] & (1 << 2));   // write-low
        Assert.Equal(0xFF, bitmap[0x480 >> 3]);
        Assert.Equal(0, bitmap[1024 + ((0xC000_0080 & 0x1FFF) >> 3)]);   // EFER (read-high area) passes through
        Assert.Equal(1, bitmap[2048 + (0x830 >> 3)]);                  // x2APIC ICR: writes exit (INIT/SIPI to APs)
        Assert.Equal(0, bitmap[0x830 >> 3]);                           // reads do not
        int set = 0;
        for (int i = 0; i < 4096; i++) set += System.Numerics.BitOperations.PopCount(bitmap[i]);
        Assert.Equal(2 + 2 * 20 + 1, set);
        Assert.Equal(0x1UL, VmxMsrPolicy.FeatureControlView(0x5));
    }

    [Fact]
    public void Exit_reasons_map_onto_the_status_categories()
    {
        Assert.Equal(ExitReason.Cpuid, VmxExitReasons.Category(VmxExitReason.Cpuid));
        Assert.Equal(ExitReason.Hypercall, VmxExitReasons.Category(VmxExitReason.Vmcall));
        Assert.Equal(ExitReason.VirtualizationInstruction, VmxExitReasons.Category(VmxExitReason.Vmxon));
        Assert.Equal(ExitReason.NestedPageFault, VmxExitReasons.Category(VmxExitReason.EptViolation));
        Assert.Equal(ExitReason.StartupIpi, VmxExitReasons.Category(VmxExitReason.StartupIpi));
        Assert.Equal(ExitReason.Other, VmxExitReasons.Category(VmxExitReason.Rdrand));
        Assert.Equal(VmxExitReason.EptViolation, VmxExitReasons.Basic(0x8000_0030));
        Assert.Equal(ExitReason.Halt, VmxExitReasons.Category(VmxExitReason.Hlt));
        Assert.Equal(ExitReason.Nmi, VmxExitReasons.Category(VmxExitReason.NmiWindow));
    }
}
