using Vigil.Abi;
using Vigil.Hypervisor.Core;
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
}
