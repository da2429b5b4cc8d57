// The exit path's shortcut (InstructionLength.Fixed, used by hv/Core/Vcpu/InstructionSkip): the fixed encodings
// it sizes from 3 bytes must get the full decoder's length in every mode; anything else (a prefix, another
// opcode, too few bytes) must be left to the decoder.
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

public sealed class InstructionLengthFixedTests
{
    [Theory]
    [InlineData(new byte[] { 0x0F, 0xA2, 0x90 }, 2)]   // CPUID
    [InlineData(new byte[] { 0x0F, 0x32, 0x90 }, 2)]   // RDMSR
    [InlineData(new byte[] { 0x0F, 0x30, 0x90 }, 2)]   // WRMSR
    [InlineData(new byte[] { 0x0F, 0x08, 0x90 }, 2)]   // INVD
    [InlineData(new byte[] { 0x0F, 0x09, 0x90 }, 2)]   // WBINVD
    [InlineData(new byte[] { 0x0F, 0x01, 0xC1 }, 3)]   // VMCALL
    [InlineData(new byte[] { 0x0F, 0x01, 0xD1 }, 3)]   // XSETBV
    [InlineData(new byte[] { 0x0F, 0x01, 0xD9 }, 3)]   // VMMCALL
    [InlineData(new byte[] { 0x0F, 0x01, 0xF9 }, 3)]   // RDTSCP
    public void A_fixed_encoding_gets_the_decoders_length_in_every_mode(byte[] code, int length)
    {
        Assert.Equal(length, InstructionLength.Fixed(code));
        foreach (CpuMode mode in new[] { CpuMode.Bits64, CpuMode.Bits32, CpuMode.Bits16 })
        {
            var full = new byte[InstructionLength.MaxLength];
            code.CopyTo(full, 0);
            Assert.Equal(length, InstructionLength.Decode(full, mode, Vigil.Abi.Vendor.AmdSvm));
        }
    }

    [Theory]
    [InlineData(new byte[] { 0x66, 0x0F, 0xA2 })]      // CPUID behind a prefix: the decoder's
    [InlineData(new byte[] { 0x48, 0x0F, 0x32 })]      // REX.W RDMSR
    [InlineData(new byte[] { 0x0F, 0x01, 0x10 })]      // LGDT [rax]: ModRM, not a fixed form
    [InlineData(new byte[] { 0x0F, 0x01 })]            // too few bytes (the page ended)
    [InlineData(new byte[] { 0x0F })]
    [InlineData(new byte[] { 0x89, 0x08, 0x90 })]      // MOV
    public void Anything_else_is_left_to_the_decoder(byte[] code) => Assert.Equal(0, InstructionLength.Fixed(code));
}
