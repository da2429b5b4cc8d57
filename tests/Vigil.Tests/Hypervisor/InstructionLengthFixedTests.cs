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

    /// <summary>
    /// The packed form the exit path uses (8 bytes from GuestCode.FetchHead, the first in bits 7:0) must size as the span
    /// form does over the same bytes, for every second byte, the third bytes that matter, and 0 to 3 (or 8) bytes read;
    /// both must match the table of fixed encodings (independently of each other: the span form calls the packed one).
    /// </summary>
    [Fact]
    public void The_packed_head_sizes_as_the_bytes_do()
    {
        byte[] thirds = [0x00, 0xC1, 0xD1, 0xD9, 0xF9, 0xC0, 0xC8, 0xD0, 0xD8, 0xF8, 0xFA, 0x10, 0x90, 0xFF];
        byte[] firsts = [0x0F, 0x00, 0x0E, 0x66, 0x8F, 0xF0, 0xFF];
        foreach (byte first in firsts)
        {
            for (int second = 0; second < 0x100; second++)
            {
                foreach (byte third in thirds)
                {
                    byte[] bytes = [first, (byte)second, third, 0x90, 0xCC, 0x0F, 0x01, 0xD9];
                    ulong head = System.BitConverter.ToUInt64(bytes);
                    foreach (int count in new[] { 0, 1, 2, 3, 8 })
                    {
                        int expected = 0;
                        if (first == 0x0F && count >= 2)
                        {
                            if (second is 0xA2 or 0x32 or 0x30 or 0x08 or 0x09) expected = 2;
                            else if (second == 0x01 && count >= 3 && third is 0xC1 or 0xD1 or 0xD9 or 0xF9) expected = 3;
                        }
                        string where = $"{first:X2} {second:X2} {third:X2}, {count} bytes";
                        int packed = InstructionLength.Fixed(head, count);
                        Assert.True(packed == expected, $"{where}: packed {packed}, expected {expected}");
                        Assert.True(InstructionLength.Fixed(new System.ReadOnlySpan<byte>(bytes, 0, count)) == expected, where);
                        // Bytes past the count (what the page holds beyond what was read) do not matter.
                        ulong masked = count == 8 ? head : head & ((1UL << (count * 8)) - 1);
                        Assert.True(InstructionLength.Fixed(masked, count) == expected, where);
                    }
                }
            }
        }
    }
}
