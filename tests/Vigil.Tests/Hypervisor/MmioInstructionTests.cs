// The MMIO MOV decoder (hv/Core/Decoding/MmioInstruction) against Iced's decoder, as InstructionLengthTests does
// for the length decoder: every opcode byte after random prefix runs (legacy, REX, in any order), every
// ModRM, random SIB/displacement/immediate bytes, and Iced-encoded instructions. Where the decoder
// accepts, Iced must see the same MOV (length, direction, register, immediate, operand size); where Iced
// sees one of the accepted forms without LOCK/REP, the decoder must accept.
using System;
using System.Collections.Generic;
using System.Linq;
using Iced.Intel;
using Vigil.Hypervisor.Core;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Hypervisor;

public class MmioInstructionTests(ITestOutputHelper output)
{
    private static readonly HashSet<Code> Accepted =
    [
        Code.Mov_rm16_r16, Code.Mov_rm32_r32, Code.Mov_rm64_r64,
        Code.Mov_r16_rm16, Code.Mov_r32_rm32, Code.Mov_r64_rm64,
        Code.Mov_rm16_imm16, Code.Mov_rm32_imm32, Code.Mov_rm64_imm32,
    ];

    private static readonly byte[] Legacy = [0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0xF0, 0xF2, 0xF3];

    /// <summary>Compares one byte sequence; returns a description of the disagreement, or null.</summary>
    private static string? Compare(byte[] bytes)
    {
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(bytes));
        Instruction iced = decoder.Decode();
        bool expected = !iced.IsInvalid && Accepted.Contains(iced.Code) && (iced.Op0Kind == OpKind.Memory || iced.Op1Kind == OpKind.Memory)
            && !iced.HasLockPrefix && !iced.HasRepPrefix && !iced.HasRepnePrefix && !iced.HasXacquirePrefix && !iced.HasXreleasePrefix
            && !bytes.TakeWhile(b => Legacy.Contains(b) || (b & 0xF0) == 0x40).Any(b => b is 0xF0 or 0xF2 or 0xF3);
        bool accepted = MmioInstruction.Decode(bytes, out MmioInstruction insn);
        string hex = string.Join(" ", bytes.Take(Math.Max(insn.Length, iced.Length)).Select(b => b.ToString("X2")));
        if (accepted != expected) return $"{hex}: decoder {(accepted ? "accepts" : "refuses")}, Iced says {(iced.IsInvalid ? "invalid" : iced.ToString())} ({iced.Code})";
        if (!accepted) return null;
        if (insn.Length != iced.Length) return $"{hex}: length {insn.Length}, Iced {iced.Length} ({iced})";
        bool store = iced.Op0Kind == OpKind.Memory;
        if (insn.IsStore != store) return $"{hex}: direction differs ({iced})";
        int size = iced.MemorySize switch { MemorySize.UInt16 => 2, MemorySize.UInt32 => 4, MemorySize.UInt64 => 8, _ => 0 };
        if (insn.Size != size) return $"{hex}: size {insn.Size}, Iced {iced.MemorySize} ({iced})";
        bool immediate = iced.Op1Kind is OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate32to64;
        if (insn.HasImmediate != immediate) return $"{hex}: immediate {insn.HasImmediate} ({iced})";
        if (immediate)
        {
            ulong value = iced.Op1Kind switch { OpKind.Immediate16 => iced.Immediate16, OpKind.Immediate32 => iced.Immediate32, _ => (ulong)iced.Immediate32to64 };
            if (insn.Immediate != value) return $"{hex}: immediate 0x{insn.Immediate:X}, Iced 0x{value:X} ({iced})";
        }
        else
        {
            Register register = store ? iced.Op1Register : iced.Op0Register;
            int number = register.GetFullRegister() - Register.RAX;
            if (insn.Register != number) return $"{hex}: register {insn.Register}, Iced {register} ({iced})";
        }
        return null;
    }

    [Theory]
    [InlineData("66 C7 00 34 12", 5, 2, 0x1234UL)]                  // mov word [rax], 0x1234: a 2-byte immediate (was read as 4)
    [InlineData("66 C7 05 01 02 03 04 34 12", 9, 2, 0x1234UL)]      // mov word [rip+x], 0x1234
    [InlineData("C7 00 78 56 34 12", 6, 4, 0x12345678UL)]
    [InlineData("48 C7 00 FF FF FF FF", 7, 8, ulong.MaxValue)]      // imm32 sign-extended to 64 bits
    [InlineData("66 48 C7 00 FF FF FF FF", 8, 8, ulong.MaxValue)]   // REX.W wins over 66
    [InlineData("48 66 C7 00 34 12", 6, 2, 0x1234UL)]               // a REX before a legacy prefix is ignored
    public void Immediate_stores_take_the_immediate_the_operand_size_gives(string hex, int length, int size, ulong immediate)
    {
        byte[] bytes = [.. hex.Split(' ').Select(b => Convert.ToByte(b, 16)), .. new byte[15]];
        Assert.True(MmioInstruction.Decode(bytes, out MmioInstruction insn));
        Assert.Equal(length, insn.Length);
        Assert.Equal(size, insn.Size);
        Assert.Equal(immediate, insn.Immediate);
        Assert.Null(Compare(bytes));
    }

    [Fact]
    public void Every_opcode_and_modrm_after_random_prefixes_agrees_with_iced()
    {
        var random = new Random(9);
        var failures = new List<string>();
        int accepted = 0, total = 0;
        for (int opcode = 0; opcode < 256; opcode++)
        {
            for (int modrm = 0; modrm < 256; modrm++)
            {
                for (int round = 0; round < 6; round++)
                {
                    var bytes = new List<byte>();
                    int prefixes = random.Next(0, 5);
                    for (int p = 0; p < prefixes; p++)
                    {
                        bytes.Add(random.Next(4) == 0 ? (byte)(0x40 | random.Next(16)) : Legacy[random.Next(Legacy.Length)]);
                    }
                    if (random.Next(2) == 0) bytes.Add((byte)(0x40 | random.Next(16)));
                    bytes.Add((byte)opcode);
                    bytes.Add((byte)modrm);
                    while (bytes.Count < 20) bytes.Add((byte)random.Next(256));
                    byte[] code = [.. bytes];
                    total++;
                    if (MmioInstruction.Decode(code, out _)) accepted++;
                    string? failure = Compare(code);
                    if (failure != null && failures.Count < 20) failures.Add(failure);
                }
            }
        }
        output.WriteLine($"{total} sequences, {accepted} accepted");
        foreach (string f in failures) output.WriteLine(f);
        Assert.Empty(failures);
        Assert.True(accepted > 1000, "too few accepted forms to mean anything");
    }

    [Fact]
    public void Every_accepted_form_encoded_by_iced_decodes_the_same()
    {
        // Every register, every kind of memory operand (base, index, scale, displacement size, RIP-relative,
        // absolute), every operand size, built as Iced instructions and encoded by Iced's encoder.
        var memories = new List<MemoryOperand>();
        Register[] indexes = [Register.None, Register.RAX, Register.RBX, Register.RBP, Register.R8, Register.R13, Register.R15];
        for (Register b = Register.RAX; b <= Register.R15; b++)
        {
            foreach (Register x in indexes)
            {
                foreach (var (displacement, displacementSize) in new[] { (0L, 0), (0x7FL, 1), (-0x80L, 1), (0x320L, 8) })
                {
                    memories.Add(new MemoryOperand(b, x, x == Register.None ? 1 : 4, displacement, displacementSize));
                }
            }
        }
        memories.Add(new MemoryOperand(Register.RIP, 0x1234));
        memories.Add(new MemoryOperand(Register.None, 0x7EE0_0300, 8));
        memories.Add(new MemoryOperand(Register.EAX, Register.None, 1, 0x300, 4));   // 67: 32-bit addressing

        var failures = new List<string>();
        int count = 0;
        void Check(Instruction instruction)
        {
            var writer = new ListWriter();
            var encoder = Iced.Intel.Encoder.Create(64, writer);
            if (!encoder.TryEncode(instruction, 0, out _, out string? error)) throw new InvalidOperationException($"{instruction}: {error}");
            byte[] code = [.. writer.Bytes, .. new byte[15]];
            count++;
            if (Compare(code) is { } failure && failures.Count < 20) failures.Add(failure);
        }

        foreach (MemoryOperand memory in memories)
        {
            for (int r = 0; r < 16; r++)
            {
                Check(Instruction.Create(Code.Mov_rm16_r16, memory, Register.AX + r));
                Check(Instruction.Create(Code.Mov_rm32_r32, memory, Register.EAX + r));
                Check(Instruction.Create(Code.Mov_rm64_r64, memory, Register.RAX + r));
                Check(Instruction.Create(Code.Mov_r16_rm16, Register.AX + r, memory));
                Check(Instruction.Create(Code.Mov_r32_rm32, Register.EAX + r, memory));
                Check(Instruction.Create(Code.Mov_r64_rm64, Register.RAX + r, memory));
            }
            Check(Instruction.Create(Code.Mov_rm16_imm16, memory, 0xBEEF));
            Check(Instruction.Create(Code.Mov_rm32_imm32, memory, 0x8000_00B0u));
            Check(Instruction.Create(Code.Mov_rm64_imm32, memory, -2));
        }
        output.WriteLine($"{count} encoded instructions");
        foreach (string f in failures) output.WriteLine(f);
        Assert.Empty(failures);
    }

    private sealed class ListWriter : CodeWriter
    {
        public List<byte> Bytes { get; } = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }

    [Fact]
    public void Bytes_that_run_out_are_refused_without_reading_past_them()
    {
        byte[] full = [0x66, 0xC7, 0x84, 0x24, 0x10, 0x00, 0x00, 0x00, 0x34, 0x12];   // mov word [rsp+0x10], 0x1234
        Assert.True(MmioInstruction.Decode(full, out MmioInstruction insn));
        Assert.Equal(full.Length, insn.Length);
        for (int n = 0; n < full.Length; n++) Assert.False(MmioInstruction.Decode(full.AsSpan(0, n), out _), $"{n} bytes");
    }
}
