using System;
using System.Collections.Generic;
using System.Linq;
using Iced.Intel;
using Vigil.Hypervisor.Core.Decoding;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>
/// The store decoder against Iced's decoder (64-bit mode): for random prefixes, opcodes, ModRM/SIB, displacements and
/// immediates around every store form the decoder knows, and random register values, the two must agree on whether
/// the bytes are such a store with a memory destination and, where they are, on the length, element size, linear
/// destination (Iced's virtual address, FS/GS bases included), source address, count, and the value written.
/// </summary>
public sealed class MemoryWriteDecoderTests(ITestOutputHelper output)
{
    private const ulong FsBase = 0x7f00_1234_5000;
    private const ulong GsBase = 0xffff_8880_7fc0_0000;

    private static readonly Dictionary<Code, WriteForm> Forms = new()
    {
        [Code.Mov_rm8_r8] = WriteForm.Move, [Code.Mov_rm16_r16] = WriteForm.Move, [Code.Mov_rm32_r32] = WriteForm.Move, [Code.Mov_rm64_r64] = WriteForm.Move,
        [Code.Mov_rm8_imm8] = WriteForm.Move, [Code.Mov_rm16_imm16] = WriteForm.Move, [Code.Mov_rm32_imm32] = WriteForm.Move, [Code.Mov_rm64_imm32] = WriteForm.Move,
        [Code.Mov_moffs8_AL] = WriteForm.Move, [Code.Mov_moffs16_AX] = WriteForm.Move, [Code.Mov_moffs32_EAX] = WriteForm.Move, [Code.Mov_moffs64_RAX] = WriteForm.Move,
        [Code.Movnti_m32_r32] = WriteForm.Move, [Code.Movnti_m64_r64] = WriteForm.Move,
        [Code.Xchg_rm8_r8] = WriteForm.Exchange, [Code.Xchg_rm16_r16] = WriteForm.Exchange, [Code.Xchg_rm32_r32] = WriteForm.Exchange, [Code.Xchg_rm64_r64] = WriteForm.Exchange,
        [Code.Cmpxchg_rm8_r8] = WriteForm.CompareExchange, [Code.Cmpxchg_rm16_r16] = WriteForm.CompareExchange, [Code.Cmpxchg_rm32_r32] = WriteForm.CompareExchange, [Code.Cmpxchg_rm64_r64] = WriteForm.CompareExchange,
        [Code.Stosb_m8_AL] = WriteForm.StoreString, [Code.Stosw_m16_AX] = WriteForm.StoreString, [Code.Stosd_m32_EAX] = WriteForm.StoreString, [Code.Stosq_m64_RAX] = WriteForm.StoreString,
        [Code.Movsb_m8_m8] = WriteForm.MoveString, [Code.Movsw_m16_m16] = WriteForm.MoveString, [Code.Movsd_m32_m32] = WriteForm.MoveString, [Code.Movsq_m64_m64] = WriteForm.MoveString,
    };

    private static readonly byte[] Prefixes = [0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x64, 0x65, 0x2E, 0x3E, 0x26, 0x36];

    private static readonly byte[][] Opcodes =
    [
        [0x88], [0x89], [0x86], [0x87], [0xC6], [0xC7], [0xA2], [0xA3], [0xA4], [0xA5], [0xAA], [0xAB],
        [0x0F, 0xB0], [0x0F, 0xB1], [0x0F, 0xC3],
        // Neighbours that are not stores the decoder knows: loads, arithmetic, MOV to segment registers, SSE stores.
        [0x8A], [0x8B], [0x8C], [0x8E], [0x01], [0x80], [0x81], [0xFF], [0xA0], [0xA1], [0xAC], [0xAE], [0x0F, 0xB8], [0x0F, 0xC7], [0x0F, 0x11], [0x0F, 0x29], [0x0F, 0xAB],
    ];

    private static Register FullRegister(Register r) => r.GetFullRegister();

    private static int Number(Register full) => full switch
    {
        Register.RAX => 0, Register.RCX => 1, Register.RDX => 2, Register.RBX => 3, Register.RSP => 4, Register.RBP => 5, Register.RSI => 6, Register.RDI => 7,
        _ => full - Register.R8 + 8,
    };

    [Fact]
    public void Every_store_form_with_random_operands_agrees_with_iced()
    {
        var random = new Random(0x57012E);
        int compared = 0, stores = 0;
        var disagreements = new List<string>();
        var perForm = new Dictionary<WriteForm, int>();
        for (int sample = 0; sample < 200_000; sample++)
        {
            var bytes = new List<byte>();
            int prefixes = random.Next(0, 4);
            for (int p = 0; p < prefixes; p++) bytes.Add(Prefixes[random.Next(Prefixes.Length)]);
            if (random.Next(2) == 0) bytes.Add((byte)(0x40 | random.Next(16)));
            bytes.AddRange(Opcodes[random.Next(Opcodes.Length)]);
            var tail = new byte[14];
            random.NextBytes(tail);
            if (random.Next(4) != 0) tail[0] = (byte)(tail[0] & 0xBF);   // mostly memory forms (mod != 3)
            bytes.AddRange(tail);
            byte[] code = [.. bytes.Take(15)];

            var registers = new ulong[16];
            for (int r = 0; r < 16; r++) registers[r] = random.Next(3) == 0 ? (ulong)random.Next(0, 4096) : (ulong)random.NextInt64();
            ulong rip = 0xffff_ffff_8100_0000UL + (ulong)random.Next(0, 1 << 20);
            ulong rflags = random.Next(2) == 0 ? 0x2UL : 0x402UL;

            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code), rip);
            decoder.Decode(out Instruction iced);
            bool icedStore = iced.Code != Code.INVALID && Forms.ContainsKey(iced.Code)
                && (iced.Op0Kind is OpKind.Memory or OpKind.MemoryESRDI or OpKind.MemoryESEDI);

            var context = new WriteContext { Registers = registers, Rip = rip, Rflags = rflags, FsBase = FsBase, GsBase = GsBase };
            bool ours = MemoryWriteDecoder.Decode(code, context, out MemoryWrite write);
            compared++;
            string where = string.Join(' ', code.Take(Math.Max(iced.Length, 1)).Select(b => b.ToString("X2"))) + $" ({iced.Code})";
            if (ours != icedStore)
            {
                disagreements.Add($"{where}: iced store {icedStore}, ours {ours} ({write.Form})");
                continue;
            }
            if (!ours) continue;
            stores++;
            perForm[write.Form] = perForm.GetValueOrDefault(write.Form) + 1;

            ulong Value(Register register, int element, int size) => register switch
            {
                Register.FS => FsBase,
                Register.GS => GsBase,
                Register.ES or Register.CS or Register.SS or Register.DS => 0,
                Register.RIP => rip + (ulong)iced.Length,
                Register.EIP => (rip + (ulong)iced.Length) & 0xFFFF_FFFF,
                Register.AH or Register.CH or Register.DH or Register.BH => (registers[register - Register.AH] >> 8) & 0xFF,
                _ => Truncate(registers[Number(FullRegister(register))], register.GetSize()),
            };

            var problems = new List<string>();
            if (write.Length != iced.Length) problems.Add($"length {write.Length} vs {iced.Length}");
            if (write.Form != Forms[iced.Code]) problems.Add($"form {write.Form} vs {Forms[iced.Code]}");
            int size = iced.MemorySize.GetSize();
            if (write.Size != size) problems.Add($"size {write.Size} vs {size}");
            ulong destination = iced.GetVirtualAddress(0, 0, Value);
            if (write.Destination != destination) problems.Add($"destination {write.Destination:X} vs {destination:X}");
            if (write.Form == WriteForm.MoveString)
            {
                ulong source = iced.GetVirtualAddress(1, 0, Value);
                if (write.Source != source) problems.Add($"source {write.Source:X} vs {source:X}");
            }
            bool repeat = iced.HasRepPrefix || iced.HasRepnePrefix;
            if (write.Form is WriteForm.StoreString or WriteForm.MoveString)
            {
                if (write.Repeat != repeat) problems.Add($"rep {write.Repeat} vs {repeat}");
                ulong count = repeat ? Truncate(registers[1], iced.MemorySize.GetSize() > 0 && (code.Contains((byte)0x67) && Array.IndexOf(code, (byte)0x67) < iced.Length - 1) ? 4 : 8) : 1;
                if (write.Count != count) problems.Add($"count {write.Count} vs {count}");
                if (write.Down != ((rflags & 0x400) != 0)) problems.Add("direction");
            }
            if (write.Form != WriteForm.MoveString)
            {
                ulong value;
                if (iced.Op1Kind == OpKind.Register) value = Value(iced.Op1Register, 0, 0);
                else if (iced.Op1Kind is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate32to64) value = Truncate(iced.GetImmediate(1), size);
                else value = ~0UL;
                if (write.Value != value) problems.Add($"value {write.Value:X} vs {value:X} ({iced.Op1Kind} {iced.Op1Register})");
            }
            if (problems.Count > 0) disagreements.Add($"{where}: {string.Join(", ", problems)}");
        }
        output.WriteLine($"compared {compared}, stores {stores}: {string.Join(", ", perForm.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}");
        foreach (string d in disagreements.Take(40)) output.WriteLine(d);
        Assert.True(stores > 20_000, $"only {stores} stores compared");
        Assert.All(Enum.GetValues<WriteForm>().Where(f => f != WriteForm.None), f => Assert.True(perForm.GetValueOrDefault(f) > 500, $"{f}: {perForm.GetValueOrDefault(f)}"));
        Assert.Empty(disagreements);
    }

    private static ulong Truncate(ulong value, int size) => size >= 8 ? value : value & ((1UL << (8 * size)) - 1);

    [Fact]
    public void The_kernels_memcpy_and_text_poke_stores_decode()
    {
        var registers = new ulong[16];
        registers[0] = 0x1122_3344_5566_7788;    // rax
        registers[1] = 5;                        // rcx
        registers[6] = 0xffff_c900_0000_1000;    // rsi
        registers[7] = 0x0000_7f12_3456_7001;    // rdi: poking_addr + 1
        var context = new WriteContext { Registers = registers, Rip = 0xffff_ffff_8100_0000, Rflags = 2 };

        Assert.True(MemoryWriteDecoder.Decode([0xF3, 0xA4], context, out MemoryWrite movsb));   // rep movsb (ERMS memcpy)
        Assert.Equal((WriteForm.MoveString, 1, 5UL, registers[7], registers[6], 5UL), (movsb.Form, movsb.Size, movsb.Count, movsb.Destination, movsb.Source, movsb.TotalBytes));

        Assert.True(MemoryWriteDecoder.Decode([0x89, 0x07], context, out MemoryWrite dword));   // mov %eax,(%rdi) (memcpy_orig)
        Assert.Equal((WriteForm.Move, 4, 0x5566_7788UL, 2), (dword.Form, dword.Size, dword.Value, dword.Length));

        Assert.True(MemoryWriteDecoder.Decode([0x88, 0x27], context, out MemoryWrite ah));   // mov %ah,(%rdi)
        Assert.Equal((0x77UL, true, 0), (ah.Value, ah.HighByte, ah.Register));

        Assert.True(MemoryWriteDecoder.Decode([0x48, 0xC7, 0x47, 0x08, 0xFF, 0xFF, 0xFF, 0xFF], context, out MemoryWrite imm));   // movq $-1,8(%rdi)
        Assert.Equal((ulong.MaxValue, registers[7] + 8, -1), (imm.Value, imm.Destination, imm.Register));

        Assert.True(MemoryWriteDecoder.Decode([0x66, 0xC7, 0x07, 0x34, 0x12], context, out MemoryWrite word));   // movw $0x1234,(%rdi): a 2-byte immediate
        Assert.Equal((5, 0x1234UL, 2), (word.Length, word.Value, word.Size));

        Assert.False(MemoryWriteDecoder.Decode([0x48, 0x09, 0x07], context, out _));   // or %rax,(%rdi): read-modify-write, not decoded
        Assert.False(MemoryWriteDecoder.Decode([0x89, 0xC7], context, out _));         // mov %eax,%edi: no memory
        Assert.False(MemoryWriteDecoder.Decode([0x89], context, out _));               // truncated
    }
}
