using System;
using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The built hypervisor image keeps root mode off the guest's FPU/SSE/AVX state (rules in
/// <see cref="VectorStateScan"/>), and the scan finds what breaks them: planted instructions and the
/// host IDT entry as it was before it saved XMM0-5. VIGIL_SCAN_IMAGE=path scans another image (its
/// .map beside it).
/// </summary>
public class VectorStateTests(ITestOutputHelper output)
{
    [Fact]
    public void The_hypervisor_image_keeps_off_the_guest_vector_state()
    {
        HypervisorImage image = HypervisorImage.Load();
        var problems = VectorStateScan.Check(image, out int vector);
        output.WriteLine($"{image.Path}: {image.Functions.Count} functions, {vector} vector instructions, all of them moves and bitwise logic");
        foreach (string p in problems) output.WriteLine(p);
        Assert.Empty(problems);
        Assert.True(image.Functions.Count > 100 && vector > 0, "the scan saw too little code to mean anything");
    }

    [Theory]
    [InlineData("C5 F8 57 E4", "VEX")]                 // vxorps xmm4, xmm4, xmm4: what a VEX build zeroes structs with
    [InlineData("C5 F8 77 90", "VEX")]                 // vzeroupper
    [InlineData("F2 0F 58 C1", "beyond moves")]        // addsd xmm0, xmm1: reads MXCSR, may raise #XM
    [InlineData("0F AE 11 90", "beyond moves")]        // ldmxcsr [rcx]
    [InlineData("DB E3 90 90", "beyond moves")]        // fninit: x87 state
    [InlineData("0F 77 90 90", "beyond moves")]        // emms: MMX
    [InlineData("0F 28 F0 90", "callee-saved XMM6")]   // movaps xmm6, xmm0 without saving xmm6
    public void A_planted_instruction_is_found(string bytes, string expected)
    {
        HypervisorImage image = HypervisorImage.Load();
        ImageFunction victim = image.Function("vigil_host_exception");
        byte[] plant = bytes.Split(' ').Select(b => Convert.ToByte(b, 16)).ToArray();
        byte[] code = [.. plant, .. victim.Code[plant.Length..]];
        // The bytes after the plant may now decode differently: only the plant's own report counts.
        var planted = new HypervisorImage
        {
            Path = image.Path,
            Functions = [.. image.Functions.Select(f => f == victim ? f with { Code = code[..plant.Length] } : f)],
        };
        var problems = VectorStateScan.Check(planted, out _);
        foreach (string p in problems) output.WriteLine(p);
        Assert.Contains(problems, p => p.StartsWith("vigil_host_exception+0:", StringComparison.Ordinal) && p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void The_host_idt_entry_without_its_xmm_saves_is_found()
    {
        // The entry as it was: general registers only. The saves become NOPs of the same length.
        HypervisorImage image = HypervisorImage.Load();
        ImageFunction stub = image.Function("vigil_host_vectors");
        byte[] code = (byte[])stub.Code.Clone();
        foreach (var i in VectorStateScan.Decode(stub).Where(i => VectorStateScan.TouchesVectorState(i)))
        {
            for (int k = 0; k < i.Length; k++) code[(int)(i.IP - stub.Address) + k] = 0x90;
        }
        var before = new HypervisorImage { Path = image.Path, Functions = [.. image.Functions.Select(f => f == stub ? f with { Code = code } : f)] };
        var problems = VectorStateScan.Check(before, out _);
        foreach (string p in problems) output.WriteLine(p);
        Assert.Contains("vigil_host_vectors: XMM4 is not saved before the call to C#", string.Join("\n", problems), StringComparison.Ordinal);
        Assert.Contains("vigil_host_vectors: XMM4 is not restored before Iretq", string.Join("\n", problems), StringComparison.Ordinal);
    }

    [Fact]
    public void A_vector_instruction_before_the_save_in_the_exit_stub_is_found()
    {
        // An instruction that clobbers XMM0 in front of the saves of the VM-exit entry.
        HypervisorImage image = HypervisorImage.Load();
        ImageFunction stub = image.Function("vigil_vmx_exit");
        byte[] code = [0x0F, 0x57, 0xC0, .. stub.Code];   // xorps xmm0, xmm0
        var planted = new HypervisorImage { Path = image.Path, Functions = [.. image.Functions.Select(f => f == stub ? f with { Code = code } : f)] };
        var problems = VectorStateScan.Check(planted, out _);
        foreach (string p in problems) output.WriteLine(p);
        Assert.Contains(problems, p => p.StartsWith("vigil_vmx_exit+0:", StringComparison.Ordinal) && p.Contains("before the context's XMM0-5 are saved", StringComparison.Ordinal));
    }
}
