using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor;

public class CpuidPolicyTests
{
    [Fact]
    public void Hides_vmx_and_svm_and_sets_the_hypervisor_bit()
    {
        uint eax = 0, ebx = 0, ecx = 0xFFFF_FFFF, edx = 0;
        CpuidPolicy.Filter(1, ref eax, ref ebx, ref ecx, ref edx);
        Assert.Equal(0u, ecx & (1u << 5));
        Assert.NotEqual(0u, ecx & (1u << 31));
        Assert.Equal(0xFFFF_FFFFu & ~(1u << 5) & ~(1u << 6), ecx);   // VMX and SMX (GETSEC gets #UD) hidden

        ecx = 0xFFFF_FFFF;
        CpuidPolicy.Filter(0x80000001, ref eax, ref ebx, ref ecx, ref edx);
        Assert.Equal(0xFFFF_FFFFu & ~(1u << 2), ecx);

        eax = ebx = ecx = edx = 0x1234;
        CpuidPolicy.Filter(0x8000000A, ref eax, ref ebx, ref ecx, ref edx);
        Assert.Equal([0u, 0u, 0u, 0u], new[] { eax, ebx, ecx, edx });

        eax = ebx = ecx = edx = 0x1234;
        CpuidPolicy.Filter(7, ref eax, ref ebx, ref ecx, ref edx);
        Assert.Equal([0x1234u, 0x1234u, 0x1234u, 0x1234u], new[] { eax, ebx, ecx, edx });
    }

    [Fact]
    public void Vigil_leaves_carry_the_vendor_and_version_and_no_hyper_v_interface()
    {
        Assert.True(CpuidPolicy.IsVigilLeaf(0x40000000));
        Assert.True(CpuidPolicy.IsVigilLeaf(0x400000FF));
        Assert.False(CpuidPolicy.IsVigilLeaf(0x40000100));
        CpuidPolicy.VigilLeaf(0x40000000, out uint eax, out uint ebx, out uint ecx, out uint edx);
        Assert.Equal(0x40000001u, eax);
        Assert.Equal("VigilVigilVi", System.Text.Encoding.ASCII.GetString([.. System.BitConverter.GetBytes(ebx), .. System.BitConverter.GetBytes(ecx), .. System.BitConverter.GetBytes(edx)]));
        CpuidPolicy.VigilLeaf(0x40000001, out eax, out ebx, out _, out _);
        Assert.Equal("Vig0", System.Text.Encoding.ASCII.GetString(System.BitConverter.GetBytes(eax)));   // not "Hv#1"
        Assert.Equal(Hypercall.Version, ebx);
        CpuidPolicy.VigilLeaf(0x40000003, out eax, out ebx, out ecx, out edx);
        Assert.Equal(0u, eax | ebx | ecx | edx);
    }

    /// <summary>
    /// CpuidExit skips Filter and ForGuest for the leaves Edits says they leave alone: for those leaves they must change
    /// nothing, whatever the registers, subleaf, CR4 and features; and every leaf they do change must be one Edits names.
    /// </summary>
    [Fact]
    public void Edits_names_exactly_the_leaves_filter_and_for_guest_change()
    {
        var leaves = new System.Collections.Generic.List<uint>();
        for (uint l = 0; l <= 0x20; l++) leaves.Add(l);
        for (uint l = 0x4000_0000; l <= 0x4000_0010; l++) leaves.Add(l);
        for (uint l = 0x8000_0000; l <= 0x8000_0020; l++) leaves.Add(l);
        leaves.AddRange([0x2000_0000, 0x4000_00FF, 0x4000_0100, 0x8FFF_FFFF, 0xC000_0000, 0xC000_0001, 0xFFFF_FFFF]);
        var random = new System.Random(0x5EED);
        var values = new System.Collections.Generic.List<(uint, uint, uint, uint)> { (0, 0, 0, 0), (~0u, ~0u, ~0u, ~0u) };
        for (int i = 0; i < 8; i++) values.Add(((uint)random.NextInt64(), (uint)random.NextInt64(), (uint)random.NextInt64(), (uint)random.NextInt64()));
        ulong[] cr4s = [0, CpuidPolicy.Cr4Osxsave, CpuidPolicy.Cr4Pke, CpuidPolicy.Cr4Osxsave | CpuidPolicy.Cr4Pke, ~0UL, ~(CpuidPolicy.Cr4Osxsave | CpuidPolicy.Cr4Pke)];
        GuestFeatures all = GuestFeatures.WaitPkg | GuestFeatures.Xsaves | GuestFeatures.Rdtscp | GuestFeatures.Invpcid;
        GuestFeatures[] featureSets = [GuestFeatures.None, all, GuestFeatures.WaitPkg, GuestFeatures.Xsaves];
        uint[] subleaves = [0, 1, 2, 3, 0x7F, ~0u];

        var changed = new System.Collections.Generic.SortedSet<uint>();
        foreach (uint leaf in leaves)
        {
            foreach ((uint a, uint b, uint c, uint d) in values)
            {
                uint eax = a, ebx = b, ecx = c, edx = d;
                CpuidPolicy.Filter(leaf, ref eax, ref ebx, ref ecx, ref edx);
                if ((eax, ebx, ecx, edx) != (a, b, c, d)) changed.Add(leaf);
                foreach (uint subleaf in subleaves)
                {
                    foreach (ulong cr4 in cr4s)
                    {
                        foreach (GuestFeatures features in featureSets)
                        {
                            eax = a; ebx = b; ecx = c; edx = d;
                            CpuidPolicy.ForGuest(leaf, subleaf, cr4, features, ref eax, ref ebx, ref ecx, ref edx);
                            if ((eax, ebx, ecx, edx) != (a, b, c, d)) changed.Add(leaf);
                        }
                    }
                }
            }
        }
        Assert.Equal([1u, 7u, 0xDu, 0x8000_0001u, 0x8000_000Au], changed);
        foreach (uint leaf in leaves) Assert.True(CpuidPolicy.Edits(leaf) == changed.Contains(leaf), $"leaf 0x{leaf:X}");
    }
}
