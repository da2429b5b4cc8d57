using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Host;
using Vigil.Hypervisor.Svm;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>The SVM back end's architecture tables: VMCB layout (APM Vol 2 Appendix B), MSR permission map (15.11), segment attributes, exit codes.</summary>
public sealed unsafe class SvmTests
{
    [Theory]
    [InlineData(0x1000UL, 0x1002UL, CpuMode.Bits64, 2)]                   // CPUID
    [InlineData(0x1000UL, 0x100FUL, CpuMode.Bits64, 15)]
    [InlineData(0xFFFF_FFFEUL, 0x1UL, CpuMode.Bits32, 3)]                // wraps at 4 GiB outside 64-bit mode
    [InlineData(0x1000UL, 0x1000UL, CpuMode.Bits64, 0)]                   // no next RIP saved: the decoder sizes it
    [InlineData(0x1000UL, 0x1010UL, CpuMode.Bits64, 0)]                   // 16 bytes is no instruction
    [InlineData(0x1000UL, 0x0FFFUL, CpuMode.Bits64, 0)]
    public void Nrip_save_gives_the_length_only_when_it_is_one(ulong rip, ulong nextRip, CpuMode mode, int expected)
        => Assert.Equal(expected, SvmInstructionLength.FromNextRip(rip, nextRip, mode));

    [Theory]
    [InlineData("InterceptCr", 0x000)]
    [InlineData("InterceptExceptions", 0x008)]
    [InlineData("InterceptMisc1", 0x00C)]
    [InlineData("InterceptMisc2", 0x010)]
    [InlineData("IopmBasePa", 0x040)]
    [InlineData("MsrpmBasePa", 0x048)]
    [InlineData("GuestAsid", 0x058)]
    [InlineData("TlbControl", 0x05C)]
    [InlineData("InterruptShadow", 0x068)]
    [InlineData("ExitCode", 0x070)]
    [InlineData("ExitInfo1", 0x078)]
    [InlineData("ExitInfo2", 0x080)]
    [InlineData("ExitIntInfo", 0x088)]
    [InlineData("NestedControl", 0x090)]
    [InlineData("EventInjection", 0x0A8)]
    [InlineData("NestedCr3", 0x0B0)]
    [InlineData("NextRip", 0x0C8)]
    [InlineData("Es", 0x400)]
    [InlineData("Cs", 0x410)]
    [InlineData("Ss", 0x420)]
    [InlineData("Ds", 0x430)]
    [InlineData("Fs", 0x440)]
    [InlineData("Gs", 0x450)]
    [InlineData("Gdtr", 0x460)]
    [InlineData("Ldtr", 0x470)]
    [InlineData("Idtr", 0x480)]
    [InlineData("Tr", 0x490)]
    [InlineData("Cpl", 0x4CB)]
    [InlineData("Efer", 0x4D0)]
    [InlineData("Cr4", 0x548)]
    [InlineData("Cr3", 0x550)]
    [InlineData("Cr0", 0x558)]
    [InlineData("Dr7", 0x560)]
    [InlineData("Dr6", 0x568)]
    [InlineData("Rflags", 0x570)]
    [InlineData("Rip", 0x578)]
    [InlineData("Rsp", 0x5D8)]
    [InlineData("Rax", 0x5F8)]
    [InlineData("Star", 0x600)]
    [InlineData("Lstar", 0x608)]
    [InlineData("KernelGsBase", 0x620)]
    [InlineData("SysenterEip", 0x638)]
    [InlineData("Cr2", 0x640)]
    [InlineData("GuestPat", 0x668)]
    public void Vmcb_fields_sit_at_the_offsets_of_APM_appendix_B(string field, int offset)
        => Assert.Equal(offset, (int)Marshal.OffsetOf<Vmcb>(field));

    [Fact]
    public void Vmcb_is_one_page_and_segments_are_16_bytes()
    {
        Assert.Equal(4096, sizeof(Vmcb));
        Assert.Equal(16, sizeof(VmcbSegment));
        Assert.Equal(2, (int)Marshal.OffsetOf<VmcbSegment>("Attributes"));
        Assert.Equal(4, (int)Marshal.OffsetOf<VmcbSegment>("Limit"));
        Assert.Equal(8, (int)Marshal.OffsetOf<VmcbSegment>("Base"));
    }

    [Fact]
    public void Host_frame_keeps_the_stack_aligned_and_the_xmm_area_aligned()
    {
        Assert.Equal(0, sizeof(SvmHostFrame) % 16);
        Assert.Equal(0, (int)Marshal.OffsetOf<Vigil.Hypervisor.Core.GuestRegisters>("Xmm") % 16);
    }

    [Fact]
    public void Host_tss_is_104_bytes_with_ist1_at_0x24()
    {
        Assert.Equal(104, sizeof(HostTss));
        Assert.Equal(0x24, (int)Marshal.OffsetOf<HostTss>("Ist"));
        Assert.Equal(0x66, (int)Marshal.OffsetOf<HostTss>("IoMapBase"));
        Assert.Equal(HostTrapFrame.RegisterBytes, (int)Marshal.OffsetOf<HostTrapFrame>("Vector"));
    }

    [Theory]
    [InlineData(0x0000_0000u, 0)]
    [InlineData(0x0000_0830u, 0x830 * 2)]
    [InlineData(0x0000_1FFFu, 0x1FFF * 2)]
    [InlineData(0xC000_0080u, (0x800 * 8) + (0x80 * 2))]
    [InlineData(0xC001_0114u, (0x1000 * 8) + (0x114 * 2))]
    [InlineData(0xC001_0117u, (0x1000 * 8) + (0x117 * 2))]
    public void Msr_permission_map_bits_follow_APM_15_11(uint msr, int bit)
        => Assert.Equal(bit, MsrPermissionMap.ReadBit(msr));

    [Theory]
    [InlineData(0x0000_2000u)]
    [InlineData(0x4000_0000u)]
    [InlineData(0xC000_2000u)]
    [InlineData(0xC002_0000u)]
    public void Msrs_outside_the_three_vectors_are_not_in_the_map(uint msr) => Assert.Equal(-1, MsrPermissionMap.ReadBit(msr));

    [Fact]
    public void Intercepting_a_write_sets_only_the_odd_bit()
    {
        byte* map = stackalloc byte[MsrPermissionMap.Bytes];
        new System.Span<byte>(map, MsrPermissionMap.Bytes).Clear();
        Assert.True(MsrPermissionMap.Intercept(map, 0x830, read: false, write: true));
        Assert.True(MsrPermissionMap.IsIntercepted(map, 0x830, write: true));
        Assert.False(MsrPermissionMap.IsIntercepted(map, 0x830, write: false));
        Assert.Equal(0x02, map[0x830 * 2 / 8] & 0x03);
        Assert.True(MsrPermissionMap.Intercept(map, 0xC000_0080, read: true, write: true));
        Assert.Equal(0x03, (map[0x800 + (0x80 * 2 / 8)] >> 0) & 0x03);
        Assert.True(MsrPermissionMap.IsIntercepted(map, 0x4000_0000, write: false));   // outside: always exits
        Assert.False(MsrPermissionMap.Intercept(map, 0x4000_0000, read: true, write: true));
    }

    [Theory]
    [InlineData(0x00AF_9A00_0000_FFFFUL, 0xA9A, 0xFFFFFu, 0u)]     // 64-bit code, G: limit 4 GiB - 1
    [InlineData(0x00CF_9200_0000_FFFFUL, 0xC92, 0xFFFFFFFFu, 0u)]  // flat data
    [InlineData(0x0000_8B12_3456_0067UL, 0x08B, 0x67u, 0x123456u)] // busy TSS, byte granular
    public void Segment_attributes_pack_descriptor_bits_47_40_and_55_52(ulong descriptor, int attributes, uint limit, uint baseAddress)
    {
        Assert.Equal((ushort)attributes, SegmentAttributes.FromDescriptor(descriptor));
        if (attributes != 0xA9A) Assert.Equal(limit, SegmentAttributes.Limit(descriptor));
        Assert.Equal(baseAddress, SegmentAttributes.Base(descriptor));
        Assert.Equal(descriptor & 0x00F0_FF00_0000_0000UL, SegmentAttributes.ToDescriptorBits((ushort)attributes));
    }

    [Theory]
    [InlineData(0x72UL, 0UL, ExitReason.Cpuid)]
    [InlineData(0x81UL, 0UL, ExitReason.Hypercall)]
    [InlineData(0x7CUL, 0UL, ExitReason.MsrRead)]
    [InlineData(0x7CUL, 1UL, ExitReason.MsrWrite)]
    [InlineData(0x63UL, 0UL, ExitReason.Init)]
    [InlineData(0x7FUL, 0UL, ExitReason.Shutdown)]
    [InlineData(0x80UL, 0UL, ExitReason.VirtualizationInstruction)]
    [InlineData(0x85UL, 0UL, ExitReason.VirtualizationInstruction)]
    [InlineData(0x400UL, 0UL, ExitReason.NestedPageFault)]
    [InlineData(0x78UL, 0UL, ExitReason.Halt)]
    [InlineData(0x4EUL, 0UL, ExitReason.Exception)]
    [InlineData(0x13UL, 0UL, ExitReason.ControlRegister)]
    [InlineData(0x99UL, 0UL, ExitReason.Other)]
    public void Exit_codes_map_onto_the_vendor_neutral_reasons(ulong code, ulong info1, ExitReason reason)
        => Assert.Equal(reason, SvmExitCodes.Reason((SvmExitCode)code, info1));

    [Fact]
    public void Intercept_vector_bits_match_APM_table_B_1()
    {
        Assert.Equal(1u << 18, (uint)SvmIntercept1.Cpuid);
        Assert.Equal(1u << 28, (uint)SvmIntercept1.MsrProt);
        Assert.Equal(1u << 3, (uint)SvmIntercept1.Init);
        Assert.Equal(1u << 24, (uint)SvmIntercept1.Hlt);
        Assert.Equal(1u << 31, (uint)SvmIntercept1.Shutdown);
        Assert.Equal(1u << 0, (uint)SvmIntercept2.Vmrun);
        Assert.Equal(1u << 1, (uint)SvmIntercept2.Vmmcall);
        Assert.Equal(1u << 11, (uint)SvmIntercept2.Mwait);
    }
}
