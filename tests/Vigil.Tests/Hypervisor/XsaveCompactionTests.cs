using System.Collections.Generic;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The compacted XSAVE format is offered only where CPUID.(0DH,1):EBX matches the component layout (hv/Core/Vcpu/
/// XsaveCompaction): a Skylake-X as the hardware answers (unchanged) against Bochs 2.7's corei7_skylake_x, whose
/// EBX is the standard-format size (XSAVEC and XSAVES hidden, whatever XCR0 the guest has when it asks).
/// </summary>
public class XsaveCompactionTests
{
    private const ulong X87 = 1, Sse = 2, Avx = 4, Avx512 = 0xE0;
    private const ulong SkylakeX = X87 | Sse | Avx | Avx512;   // 0xE7, CPUID.(0DH,0):EAX of both
    private const uint XsaveoptXsavecXgetbv1Xsaves = 0xF;

    // CPUID.(0DH,i) for i = 2, 5, 6, 7: size, standard offset, flags (SDM Vol 1 13.4.2 Table 13-1 for this CPU).
    private static readonly Dictionary<uint, (uint Size, uint Offset, uint Flags)> SkylakeComponents = new()
    {
        [2] = (256, 576, 0),
        [5] = (64, 1088, 0),
        [6] = (512, 1152, 0),
        [7] = (1024, 1664, 0),
    };

    /// <summary>The standard-format size of the enabled components: CPUID.(0DH,0):EBX on both, (0DH,1):EBX on Bochs 2.7.</summary>
    private static uint StandardSize(ulong mask, Dictionary<uint, (uint Size, uint Offset, uint Flags)> components)
    {
        uint size = 576;
        foreach (var (i, c) in components)
            if ((mask & (1UL << (int)i)) != 0 && c.Offset + c.Size > size) size = c.Offset + c.Size;
        return size;
    }

    /// <summary>The sizes the SDM gives for this CPU's compacted format, worked out by hand (13.4.3): no component is aligned.</summary>
    private static uint SkylakeCompactedSize(ulong mask) => mask switch
    {
        X87 or X87 | Sse => 576,
        X87 | Sse | Avx => 576 + 256,
        SkylakeX => 576 + 256 + 64 + 512 + 1024,   // 2432: Linux 6.1's "size" on Bochs
        _ => throw new System.ArgumentOutOfRangeException(nameof(mask)),
    };

    private static FakeVcpuState Cpu(bool bochs27, ulong xcr0)
    {
        var s = new FakeVcpuState { Xcr0 = xcr0 };
        s.StateCpuid = (st, leaf, subleaf) =>
        {
            if (leaf != 0xD) return null;
            if (subleaf == 0) return ((uint)SkylakeX, StandardSize(st.Xcr0, SkylakeComponents), 2688, 0);
            if (subleaf == 1)
            {
                // Bochs 2.7 (bochs/cpu/cpuid.cc): 0 below AVX, else the standard offset plus size of the topmost component.
                uint bochs = (st.Xcr0 & ~(X87 | Sse)) == 0 ? 0 : StandardSize(st.Xcr0, SkylakeComponents);
                return (XsaveoptXsavecXgetbv1Xsaves, bochs27 ? bochs : SkylakeCompactedSize(st.Xcr0), 0, 0);
            }
            return SkylakeComponents.TryGetValue(subleaf, out var c) ? (c.Size, c.Offset, c.Flags, 0u) : (0u, 0u, 0u, 0u);
        };
        return s;
    }

    private static (uint A, uint B, uint C, uint D) Leaf0D1(FakeVcpuState s)
    {
        var v = new FakeVcpu(s);
        s.Regs.Rax = 0xD;
        s.Regs.Rcx = 1;
        Assert.Equal(VcpuAction.Skip, CpuidExit.Handle(ref v));
        return ((uint)s.Regs.Rax, (uint)s.Regs.Rbx, (uint)s.Regs.Rcx, (uint)s.Regs.Rdx);
    }

    [Theory]
    [InlineData(X87)]                 // the reset value: Linux reads the feature bits before it sets XCR0
    [InlineData(X87 | Sse)]
    [InlineData(X87 | Sse | Avx)]     // both formats have the same size here: only the full-set check tells
    [InlineData(SkylakeX)]            // what Linux 6.1 has set when it compares sizes (2432 against 2688)
    public void Bochs_2_7_gets_xsavec_and_xsaves_hidden_whatever_xcr0_the_guest_has(ulong xcr0)
    {
        var s = Cpu(bochs27: true, xcr0);
        var r = Leaf0D1(s);
        Assert.Equal(XsaveoptXsavecXgetbv1Xsaves & ~(XsaveCompaction.XsavecBit | XsaveCompaction.XsavesBit), r.A);   // XSAVEOPT, XGETBV1 stay
        Assert.Equal((0u, 0u), (r.C, r.D));
        Assert.Equal(xcr0, s.Xcr0);   // the guest's XCR0 is put back
    }

    [Theory]
    [InlineData(X87)]
    [InlineData(X87 | Sse)]
    [InlineData(X87 | Sse | Avx)]
    [InlineData(SkylakeX)]
    public void Hardware_whose_size_matches_its_layout_keeps_the_compacted_format(ulong xcr0)
    {
        var s = Cpu(bochs27: false, xcr0);
        var r = Leaf0D1(s);
        Assert.Equal(XsaveoptXsavecXgetbv1Xsaves, r.A);
        Assert.Equal(SkylakeCompactedSize(xcr0), r.B);
        Assert.Equal(xcr0, s.Xcr0);
        // XCR0 is raised to the full set for one CPUID and put back; not touched when it already holds every component.
        Assert.Equal(xcr0 == SkylakeX ? [] : new List<ulong> { SkylakeX, xcr0 }, s.Xcr0Loads);
    }

    [Fact]
    public void The_compacted_size_rounds_aligned_components_up_to_64_bytes()
    {
        // x87 | SSE | AVX | PKRU (8 bytes) | TILECFG (64, aligned) | TILEDATA (8192, aligned), as on Sapphire Rapids.
        var s = new FakeVcpuState();
        s.Cpuid[(0xD, 2)] = (256, 576, 0, 0);
        s.Cpuid[(0xD, 9)] = (8, 2688, 0, 0);
        s.Cpuid[(0xD, 17)] = (64, 2752, 2, 0);
        s.Cpuid[(0xD, 18)] = (8192, 2816, 2, 0);
        var v = new FakeVcpu(s);
        const ulong mask = X87 | Sse | Avx | (1UL << 9) | (1UL << 17) | (1UL << 18);
        Assert.Equal(832u + 8 + 56 + 64 + 8192, XsaveCompaction.CompactedSize(ref v, mask));   // 840 → 896, 960 is aligned
        Assert.Equal(0u, XsaveCompaction.CompactedSize(ref v, mask | (1UL << 3)));            // MPX: the CPU describes no such component
    }

    [Fact]
    public void Supervisor_components_enabled_in_ia32_xss_count()
    {
        // CET_U (bit 11, 16 bytes) and CET_S (bit 12, 24 bytes) enabled in IA32_XSS beside x87 | SSE | AVX.
        var s = new FakeVcpuState { Xcr0 = X87 | Sse | Avx };
        s.HardwareMsrs[XsaveCompaction.XssMsr] = (1UL << 11) | (1UL << 12);
        s.Cpuid[(0xD, 0)] = ((uint)(X87 | Sse | Avx), 832, 832, 0);
        s.Cpuid[(0xD, 2)] = (256, 576, 0, 0);
        s.Cpuid[(0xD, 11)] = (16, 0, 1, 0);
        s.Cpuid[(0xD, 12)] = (24, 0, 1, 0);
        s.Cpuid[(0xD, 1)] = (XsaveoptXsavecXgetbv1Xsaves, 832 + 16 + 24, 0x1800, 0);
        Assert.Equal(XsaveoptXsavecXgetbv1Xsaves, Leaf0D1(s).A);
        Assert.Equal(0x1800u, Leaf0D1(s).C);

        s.Cpuid[(0xD, 1)] = (XsaveoptXsavecXgetbv1Xsaves, 832, 0x1800, 0);   // a size that leaves out IA32_XSS's components
        Assert.Equal(XsaveoptXsavecXgetbv1Xsaves & ~(XsaveCompaction.XsavecBit | XsaveCompaction.XsavesBit), Leaf0D1(s).A);
        Assert.Equal(0u, Leaf0D1(s).C);
    }

    [Fact]
    public void Nothing_is_checked_without_xsavec_or_xsaves()
    {
        var s = Cpu(bochs27: true, X87 | Sse | Avx);
        s.StateCpuid = (st, leaf, subleaf) => leaf == 0xD && subleaf == 1 ? (1u, 0u, 0u, 0u) : null;   // XSAVEOPT only
        Assert.Equal(1u, Leaf0D1(s).A);
        Assert.Empty(s.Xcr0Loads);
    }
}
