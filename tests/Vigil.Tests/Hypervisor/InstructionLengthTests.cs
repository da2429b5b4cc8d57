using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Iced.Intel;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The instruction length decoder against Iced's decoder: table-driven known answers, every opcode of
/// every map with random prefixes/ModRM/SIB/displacements, every Iced <see cref="Code"/> built from its
/// <see cref="OpCodeInfo"/> and re-encoded by Iced's <see cref="Iced.Intel.Encoder"/>, an assembler list, and random
/// bytes. Agreement is required wherever Iced decodes a valid instruction; where Iced says the bytes run
/// out, the decoder must answer 0.
/// </summary>
public class InstructionLengthTests(ITestOutputHelper output)
{
    private static readonly CpuMode[] Modes = [CpuMode.Bits16, CpuMode.Bits32, CpuMode.Bits64];
    private static readonly Vendor[] Vendors = [Vendor.IntelVmx, Vendor.AmdSvm];

    // ---------------------------------------------------------------- known answers

    [Theory]
    [InlineData(64, "90", 1)]
    [InlineData(64, "48 B8 88 77 66 55 44 33 22 11", 10)]        // mov rax, imm64
    [InlineData(64, "B8 44 33 22 11", 5)]                         // mov eax, imm32
    [InlineData(64, "66 B8 22 11", 4)]                            // mov ax, imm16
    [InlineData(64, "66 48 B8 88 77 66 55 44 33 22 11", 11)]     // REX.W wins over 66
    [InlineData(64, "48 66 B8 22 11", 5)]                         // REX before a legacy prefix is ignored
    [InlineData(64, "A1 88 77 66 55 44 33 22 11", 9)]            // mov eax, [moffs64]
    [InlineData(64, "67 A1 44 33 22 11", 6)]                      // mov eax, [moffs32]
    [InlineData(32, "A1 44 33 22 11", 5)]
    [InlineData(32, "67 A1 22 11", 4)]
    [InlineData(16, "A1 22 11", 3)]
    [InlineData(16, "67 A1 44 33 22 11", 6)]
    [InlineData(64, "E8 44 33 22 11", 5)]                         // call rel32
    [InlineData(64, "66 E8 44 33 22 11", 6)]                      // Intel ignores 66 on near branches
    [InlineData(16, "E8 22 11", 3)]
    [InlineData(16, "66 E8 44 33 22 11", 6)]
    [InlineData(32, "0F 84 44 33 22 11", 6)]
    [InlineData(32, "66 0F 84 22 11", 5)]
    [InlineData(32, "9A 44 33 22 11 08 00", 7)]                   // call far ptr16:32
    [InlineData(16, "EA 22 11 08 00", 5)]                         // jmp far ptr16:16
    [InlineData(64, "C8 10 00 01", 4)]                            // enter 16, 1
    [InlineData(64, "C2 08 00", 3)]                               // ret 8
    [InlineData(64, "CA 08 00", 3)]                               // retf 8
    [InlineData(64, "F6 C0 01", 3)]                               // test al, 1
    [InlineData(64, "F6 D0", 2)]                                  // not al
    [InlineData(64, "F7 C0 44 33 22 11", 6)]                      // test eax, imm32
    [InlineData(64, "48 F7 C0 44 33 22 11", 7)]                   // test rax, imm32 (sign-extended)
    [InlineData(64, "66 F7 C0 22 11", 5)]                         // test ax, imm16
    [InlineData(64, "F7 D8", 2)]                                  // neg eax
    [InlineData(64, "0F 20 00", 3)]                               // mov rax, cr0: mod is ignored
    [InlineData(64, "0F 22 58", 3)]                               // mov cr3, rax written with mod 01
    [InlineData(64, "8B 05 44 33 22 11", 6)]                      // mov eax, [rip+disp32]
    [InlineData(64, "8B 04 25 44 33 22 11", 7)]                   // mov eax, [disp32] through a SIB
    [InlineData(64, "8B 44 24 08", 4)]                            // mov eax, [rsp+8]
    [InlineData(64, "8B 84 24 44 33 22 11", 7)]
    [InlineData(64, "8B 04 2C", 3)]                               // SIB base rbp with mod 00 needs disp32 ...
    [InlineData(64, "8B 04 25 00 00 00 00", 7)]                   // ... so does base 101 with index
    [InlineData(16, "8B 06 22 11", 4)]                            // mov ax, [disp16]
    [InlineData(16, "8B 46 08", 3)]                               // mov ax, [bp+8]
    [InlineData(16, "8B 04", 2)]                                  // mov ax, [si]: no SIB in 16-bit forms
    [InlineData(16, "67 8B 04 24", 4)]                            // 67: 32-bit forms with SIB
    [InlineData(32, "67 8B 06 22 11", 5)]                         // 67: 16-bit forms
    [InlineData(64, "0F 3A 0F C1 08", 5)]                         // palignr mm0, mm1, 8
    [InlineData(64, "66 0F 38 00 C1", 5)]                         // pshufb xmm0, xmm1
    [InlineData(64, "0F 0F C1 9E", 4)]                            // pfadd mm0, mm1 (3DNow!: imm8 opcode)
    [InlineData(64, "66 0F 78 C0 04 08", 6)]                      // extrq xmm0, 4, 8
    [InlineData(64, "F2 0F 78 C1 04 08", 6)]                      // insertq xmm0, xmm1, 4, 8
    [InlineData(64, "0F 78 C8", 3)]                               // vmread rax, rcx
    [InlineData(64, "C5 F8 77", 3)]                               // vzeroupper
    [InlineData(64, "C5 F9 70 C1 1B", 5)]                         // vpshufd xmm0, xmm1, 0x1b
    [InlineData(64, "C4 E3 79 0F C1 08", 6)]                      // vpalignr xmm0, xmm0, xmm1, 8
    [InlineData(64, "C4 E2 79 00 05 44 33 22 11", 9)]             // vpshufb xmm0, xmm0, [rip+disp32]
    [InlineData(32, "C5 F8 77", 3)]                               // VEX in 32-bit mode (mod = 11)
    [InlineData(32, "C5 06", 2)]                                  // lds eax, [esi]
    [InlineData(64, "62 F1 7C 48 10 40 01", 7)]                   // vmovups zmm0, [rax+64] (disp8*N)
    [InlineData(64, "62 F3 7D 48 0F C1 08", 7)]                   // valignd-style map 3: imm8
    [InlineData(32, "62 06", 2)]                                  // bound eax, [esi]
    [InlineData(64, "8F E8 78 A2 C1 10", 6)]                      // vpcmov (XOP map 8: imm8)
    [InlineData(64, "8F EA 78 10 C0 44 33 22 11", 9)]             // bextr (XOP map 0A: imm32)
    [InlineData(64, "8F C0", 2)]                                  // pop rax
    [InlineData(64, "C7 F8 44 33 22 11", 6)]                      // xbegin rel32
    [InlineData(64, "C6 F8 01", 3)]                               // xabort 1
    [InlineData(64, "F3 0F 1E FA", 4)]                            // endbr64
    [InlineData(64, "0F 01 C1", 3)]                               // vmcall
    [InlineData(64, "0F 01 D9", 3)]                               // vmmcall
    [InlineData(64, "F0 48 0F B1 0A", 5)]                         // lock cmpxchg [rdx], rcx
    [InlineData(64, "26 2E 36 3E 64 65 66 67 F2 F3 F0 48 8B 00", 14)]
    [InlineData(64, "0F FF 00", 3)]                               // ud0 eax, [rax] (Intel)
    public void Known_lengths(int bits, string hex, int expected)
    {
        byte[] code = Hex(hex);
        Assert.Equal(expected, InstructionLength.Decode(code, (CpuMode)bits));
        Assert.Equal(expected, InstructionLength.Decode([.. code, 0xCC, 0xCC, 0xCC], (CpuMode)bits));
        Assert.Equal(0, InstructionLength.Decode(code.AsSpan(0, code.Length - 1), (CpuMode)bits));
    }

    [Theory]
    [InlineData(64, "66 E8 22 11", 4)]                            // AMD honours 66 on near branches
    [InlineData(64, "66 0F 84 22 11", 5)]
    [InlineData(64, "66 48 E8 44 33 22 11", 7)]                   // unless REX.W
    [InlineData(64, "0F FF", 2)]                                  // AMD's UD0 has no ModRM
    public void Amd_lengths(int bits, string hex, int expected)
    {
        Assert.Equal(expected, InstructionLength.Decode(Hex(hex), (CpuMode)bits, Vendor.AmdSvm));
    }

    [Theory]
    [InlineData(64, "")]
    [InlineData(64, "06")]                                        // push es: not in 64-bit mode
    [InlineData(64, "9A 44 33 22 11 08 00")]                      // call far: not in 64-bit mode
    [InlineData(64, "D4 0A")]                                     // aam
    [InlineData(32, "0F 04")]                                     // no such opcode
    [InlineData(32, "0F 0A")]
    [InlineData(32, "0F 3B")]
    [InlineData(64, "C4 E0 78 10 C1")]                            // VEX map 0
    [InlineData(64, "66 C5 F8 77")]                               // VEX after 66: #UD
    [InlineData(64, "48 C5 F8 77")]                               // VEX after REX: #UD
    [InlineData(64, "F3 62 F1 7C 48 10 40 01")]                   // EVEX after F3: #UD
    [InlineData(64, "62 F4 7C 48 10 C0")]                         // EVEX map 4 (APX) is not decoded
    [InlineData(64, "62 F1 78 48 10 C0")]                         // EVEX P1 bit 2 clear
    [InlineData(64, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90")] // 16 bytes
    [InlineData(64, "66 66 66 66 66 66 66 66 66 66 66 66 66 48 B8 88 77 66 55 44 33 22 11")] // 23 bytes: #GP
    [InlineData(64, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66")]
    public void Undecodable_bytes_give_zero(int bits, string hex)
    {
        Assert.Equal(0, InstructionLength.Decode(Hex(hex), (CpuMode)bits));
    }

    [Fact]
    public void Mode_follows_efer_lma_and_cs_l_and_d()
    {
        Assert.Equal(CpuMode.Bits64, InstructionLength.ModeOf(longModeActive: true, csLong: true, csDefaultBig: false));
        Assert.Equal(CpuMode.Bits32, InstructionLength.ModeOf(longModeActive: true, csLong: false, csDefaultBig: true));
        Assert.Equal(CpuMode.Bits16, InstructionLength.ModeOf(longModeActive: true, csLong: false, csDefaultBig: false));
        Assert.Equal(CpuMode.Bits32, InstructionLength.ModeOf(longModeActive: false, csLong: true, csDefaultBig: true));
        Assert.Equal(CpuMode.Bits16, InstructionLength.ModeOf(longModeActive: false, csLong: false, csDefaultBig: false));
    }

    // ---------------------------------------------------------------- differential against Iced

    /// <summary>
    /// Every opcode of every map (one-byte, 0F, 0F 38, 0F 3A, VEX 1-3 in both forms, EVEX 1/2/3/5/6, XOP 8/9/A),
    /// each with random prefixes, ModRM, SIB, displacement and immediate bytes, in 16/32/64-bit mode for Intel
    /// and AMD rules.
    /// </summary>
    [Fact]
    public void Every_opcode_with_random_operands_agrees_with_iced()
    {
        var random = new Random(0x5EED);
        var tally = new Tally();
        foreach (Vendor vendor in Vendors)
        {
            foreach (CpuMode mode in Modes)
            {
                foreach (OpcodeSpace space in Enum.GetValues<OpcodeSpace>())
                {
                    for (int op = 0; op < 256; op++)
                    {
                        for (int sample = 0; sample < 32; sample++)
                        {
                            byte[] code = RandomInstruction(random, mode, space, (byte)op);
                            tally.Compare(code, mode, vendor);
                        }
                    }
                }
            }
        }
        Report("every opcode x random operands", tally);
        Assert.True(tally.Compared > 100_000, $"only {tally.Compared} valid instructions compared");
        Assert.Empty(tally.Disagreements);
    }

    /// <summary>
    /// Every Iced <see cref="Code"/> the default decoder knows, built from its <see cref="OpCodeInfo"/> (prefixes,
    /// escape, map, opcode, group reg/rm, W/L, operand and address size) with random operand bytes until Iced
    /// decodes that very code; the decoded instruction is then re-encoded with Iced's <see cref="Iced.Intel.Encoder"/> and the
    /// encoder's bytes are compared too.
    /// </summary>
    [Fact]
    public void Every_iced_code_and_its_encoder_output_agree()
    {
        var random = new Random(0xC0DE);
        var tally = new Tally();
        var encoded = new Tally();
        int codes = 0, hit = 0;
        var missed = new List<string>();
        foreach (Code code in Enum.GetValues<Code>())
        {
            OpCodeInfo info = code.ToOpCode();
            if (!info.IsInstruction || info.DecoderOption != DecoderOptions.None || info.Encoding == EncodingKind.MVEX) continue;
            foreach (Vendor vendor in Vendors)
            {
                foreach (CpuMode mode in Modes)
                {
                    bool decodable = (int)mode switch
                    {
                        16 => vendor == Vendor.AmdSvm ? info.AmdDecoder16 : info.IntelDecoder16,
                        32 => vendor == Vendor.AmdSvm ? info.AmdDecoder32 : info.IntelDecoder32,
                        _ => vendor == Vendor.AmdSvm ? info.AmdDecoder64 : info.IntelDecoder64,
                    };
                    if (!decodable) continue;
                    codes++;
                    bool found = false;
                    for (int attempt = 0; attempt < 64 && !found; attempt++)
                    {
                        byte[]? bytes = FromOpCodeInfo(random, info, mode);
                        if (bytes == null) break;
                        Iced.Intel.Instruction instruction = IcedDecode(bytes, mode, vendor, out _);
                        if (instruction.Code != code) continue;
                        found = true;
                        tally.Compare(bytes, mode, vendor);
                        byte[]? reencoded = IcedEncode(instruction, mode);
                        if (reencoded != null) encoded.Compare([.. reencoded, .. RandomBytes(random, 4)], mode, vendor);
                    }
                    if (found) hit++;
                    else if (missed.Count < 400) missed.Add($"{code} ({(int)mode}-bit {vendor})");
                }
            }
        }
        output.WriteLine($"codes x modes x vendors: {codes}, hit exactly: {hit}; not built: {string.Join(", ", missed.Take(60))}");
        Report("every Iced code (built from OpCodeInfo)", tally);
        Report("every Iced code (re-encoded by Encoder)", encoded);
        Assert.True(hit > codes * 95 / 100, $"only {hit} of {codes} code/mode pairs were built");
        Assert.Empty(tally.Disagreements);
        Assert.Empty(encoded.Disagreements);
    }

    /// <summary>The special cases, written with Iced's <see cref="Assembler"/> in each bitness.</summary>
    [Fact]
    public void Assembler_list_agrees_with_iced()
    {
        var tally = new Tally();
        foreach (int bits in new[] { 16, 32, 64 })
        {
            var a = new Assembler(bits);
            Label target = a.CreateLabel();
            a.nop();
            a.mov(al, __byte_ptr[0x1234]);
            a.mov(__dword_ptr[0x5678], eax);
            a.enter(0x20, 1);
            a.ret(8);
            a.retf(8);
            a.test(al, 0x12);
            a.test(__dword_ptr[ebx + esi * 4 + 0x10], bits == 16 ? 0x1234 : 0x12345678);
            a.test(__word_ptr[ebx + 0x10], 0x1234);
            a.not(__byte_ptr[ebx]);
            a.imul(eax, ecx, 0x1234);
            a.imul(ax, cx, 0x12);
            a.push(bits == 16 ? 0x1234 : 0x12345678);
            a.push(0x12);
            a.jmp(target);
            a.call(target);
            a.je(target);
            a.loop(target);
            a.@int(0x80);
            a.@in(al, 0x60);
            if (bits == 64) a.mov(cr0, rax);
            else a.mov(cr0, eax);
            a.lea(eax, __[ebp + 0x100]);
            if (bits != 64) a.lea(ax, __[bx + si + 0x10]);
            a.movzx(eax, __byte_ptr[ebx + 1]);
            a.shld(__dword_ptr[ebx], ecx, 3);
            a.bt(__dword_ptr[ebx], 5);
            a.pshufd(xmm0, __[ebx + 0x40], 0x1B);
            a.palignr(xmm1, xmm2, 4);
            a.pinsrw(xmm0, eax, 3);
            a.vpshufd(ymm0, ymm1, 0x1B);
            a.vzeroupper();
            a.vaddps(zmm0.k1.z, zmm1, __zmmword_ptr[ebx + 0x80]);
            a.vpternlogd(zmm0, zmm1, __dword_bcst[ebx + 0x40], 0xCA);
            a.xbegin(target);
            a.xabort(1);
            a.crc32(eax, __byte_ptr[ebx]);
            a.sha1rnds4(xmm0, xmm1, 1);
            a.vmcall();
            a.vmmcall();
            a.endbr32();
            a.cmpxchg8b(__qword_ptr[ebx]);
            a.fld(__dword_ptr[ebx + 8]);
            a.fadd(st0, st1);
            a.@lock.add(__dword_ptr[ebx], 1);
            a.rep.movsb();
            a.Label(ref target);
            a.hlt();
            if (bits == 64)
            {
                a.mov(rax, 0x1122334455667788UL);
                a.mov(r10, 0x7FUL);
                a.mov(rax, __qword_ptr[0x1122334455667788UL]);
                a.mov(__qword_ptr[target], 0x12345678);
                a.test(rax, 0x12345678);
                a.movsxd(rax, __dword_ptr[r12 + r13 * 8 + 0x1000]);
                a.vmovdqu64(zmm30, __zmmword_ptr[r15 + 0x40]);
                a.vpcmov(xmm0, xmm1, xmm2, xmm3);
                a.bextr(eax, ecx, 0x1234);
                a.jmp(__qword_ptr[target]);
                a.syscall();
                a.wrmsr();
            }
            else
            {
                a.call(0x10, 0x1000);
                a.jmp(0x08, 0x2000);
                a.les(eax, __[ebx]);
                a.bound(eax, __qword_ptr[ebx]);
                a.aam(10);
                a.pushad();
            }
            using var stream = new MemoryStream();
            a.Assemble(new StreamCodeWriter(stream), 0x1000);
            byte[] all = stream.ToArray();
            CompareStream(all, (CpuMode)bits, tally);
        }
        Report("assembler list", tally);
        Assert.True(tally.Compared > 150);
        Assert.Empty(tally.Disagreements);
    }

    /// <summary>
    /// Random byte strings: the answer is never longer than the bytes or 15; where Iced decodes a valid
    /// instruction it is the same length; where Iced runs out of bytes it is 0. For bytes Iced calls invalid
    /// the decoder may give 0 or the length of the form (see the decoder's file comment) — counted, not asserted.
    /// </summary>
    [Fact]
    public void Random_bytes_never_exceed_the_input_and_agree_where_iced_decodes()
    {
        var random = new Random(0xF022);
        var tally = new Tally();
        int invalidZero = 0, invalidSized = 0, truncated = 0;
        for (int i = 0; i < 300_000; i++)
        {
            byte[] code = RandomBytes(random, random.Next(0, 18));
            CpuMode mode = Modes[random.Next(3)];
            Vendor vendor = Vendors[random.Next(2)];
            int ours = InstructionLength.Decode(code, mode, vendor);
            Assert.InRange(ours, 0, Math.Min(code.Length, InstructionLength.MaxLength));
            Iced.Intel.Instruction iced = IcedDecode(code, mode, vendor, out DecoderError error);
            if (error == DecoderError.NoMoreBytes)
            {
                // Iced reports some reserved x87 register forms (DE D8, D9 E2) as running out of bytes
                // when nothing follows them; they are invalid, not truncated, when more bytes follow.
                Iced.Intel.Instruction padded = IcedDecode([.. code, .. new byte[16]], mode, vendor, out _);
                if (padded.Code == Code.INVALID || padded.Length <= code.Length)
                {
                    if (ours == 0) invalidZero++;
                    else invalidSized++;
                    continue;
                }
                truncated++;
                if (ours != 0) tally.Disagreements.Add($"{(int)mode}-bit {vendor}: {Format(code)}: iced runs out of bytes, ours {ours}");
            }
            else if (iced.Code == Code.INVALID)
            {
                if (ours == 0) invalidZero++;
                else invalidSized++;
            }
            else
            {
                tally.Compare(code, mode, vendor);
            }
        }
        Report("random bytes", tally);
        output.WriteLine($"random bytes: iced invalid -> ours 0: {invalidZero}, ours sized: {invalidSized}; iced out of bytes: {truncated}");
        Assert.Empty(tally.Disagreements);
    }

    // ---------------------------------------------------------------- generators

    public enum OpcodeSpace
    {
        OneByte,
        TwoByte,
        Map0F38,
        Map0F3A,
        Vex2,
        Vex3Map1,
        Vex3Map2,
        Vex3Map3,
        EvexMap1,
        EvexMap2,
        EvexMap3,
        EvexMap5,
        EvexMap6,
        XopMap8,
        XopMap9,
        XopMapA,
    }

    private static readonly byte[] LegacyPrefixes = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65];

    private static byte[] RandomInstruction(Random random, CpuMode mode, OpcodeSpace space, byte op)
    {
        var bytes = new List<byte>();
        bool is64 = mode == CpuMode.Bits64;
        bool vexLike = space >= OpcodeSpace.Vex2;
        int prefixes = random.Next(4) == 0 ? 0 : random.Next(1, 4);
        for (int i = 0; i < prefixes; i++)
        {
            // VEX/EVEX/XOP accept only segment and 67 prefixes; mostly give them those.
            byte p = LegacyPrefixes[random.Next(LegacyPrefixes.Length)];
            if (vexLike && random.Next(8) != 0 && p is 0x66 or 0xF2 or 0xF3 or 0xF0) p = 0x67;
            bytes.Add(p);
        }
        if (is64 && random.Next(vexLike ? 16 : 2) == 0)
        {
            bytes.Add((byte)(0x40 | random.Next(16)));
            if (random.Next(8) == 0) bytes.Add(0x66);   // REX that is then ignored
        }
        byte high = (byte)(is64 || random.Next(8) == 0 ? random.Next(256) : 0xC0 | random.Next(64));
        switch (space)
        {
            case OpcodeSpace.OneByte: bytes.Add(op); break;
            case OpcodeSpace.TwoByte: bytes.AddRange([0x0F, op]); break;
            case OpcodeSpace.Map0F38: bytes.AddRange([0x0F, 0x38, op]); break;
            case OpcodeSpace.Map0F3A: bytes.AddRange([0x0F, 0x3A, op]); break;
            case OpcodeSpace.Vex2: bytes.AddRange([0xC5, high, op]); break;
            case OpcodeSpace.Vex3Map1: bytes.AddRange([0xC4, (byte)((high & 0xE0) | 1), (byte)random.Next(256), op]); break;
            case OpcodeSpace.Vex3Map2: bytes.AddRange([0xC4, (byte)((high & 0xE0) | 2), (byte)random.Next(256), op]); break;
            case OpcodeSpace.Vex3Map3: bytes.AddRange([0xC4, (byte)((high & 0xE0) | 3), (byte)random.Next(256), op]); break;
            case OpcodeSpace.XopMap8: bytes.AddRange([0x8F, (byte)((high & 0xE0) | 8), (byte)random.Next(256), op]); break;
            case OpcodeSpace.XopMap9: bytes.AddRange([0x8F, (byte)((high & 0xE0) | 9), (byte)random.Next(256), op]); break;
            case OpcodeSpace.XopMapA: bytes.AddRange([0x8F, (byte)((high & 0xE0) | 0xA), (byte)random.Next(256), op]); break;
            default:
                int map = space switch { OpcodeSpace.EvexMap1 => 1, OpcodeSpace.EvexMap2 => 2, OpcodeSpace.EvexMap3 => 3, OpcodeSpace.EvexMap5 => 5, _ => 6 };
                byte p0 = (byte)((high & 0xF0) | map);
                byte p1 = (byte)(random.Next(256) | (random.Next(16) == 0 ? 0 : 0x04));
                byte p2 = (byte)(random.Next(2) == 0 ? random.Next(256) : (random.Next(4) << 5) | 0x08);
                bytes.AddRange([0x62, p0, p1, p2, op]);
                break;
        }
        // ModRM biased towards the interesting rm values (SIB, disp32/RIP), then SIB, then random bytes.
        int mod = random.Next(4);
        int reg = random.Next(8);
        int rm = random.Next(3) == 0 ? (random.Next(2) == 0 ? 4 : 5) : random.Next(8);
        bytes.Add((byte)((mod << 6) | (reg << 3) | rm));
        int sibBase = random.Next(3) == 0 ? 5 : random.Next(8);
        bytes.Add((byte)((random.Next(256) & 0xF8) | sibBase));
        bytes.AddRange(RandomBytes(random, 16));
        return [.. bytes];
    }

    /// <summary>Bytes for one <see cref="OpCodeInfo"/> with random free fields, or null when it cannot be built.</summary>
    private static byte[]? FromOpCodeInfo(Random random, OpCodeInfo info, CpuMode mode)
    {
        bool is64 = mode == CpuMode.Bits64;
        var bytes = new List<byte>();
        uint opcode = info.OpCode;
        bool rexW = info.W != 0 && info.Encoding == EncodingKind.Legacy && is64 || (info.OperandSize == 64 && is64 && !info.DefaultOpSize64 && !info.ForceOpSize64);
        // Operand and address size prefixes as the code asks.
        bool want66 = info.OperandSize == 16 && mode != CpuMode.Bits16 || info.OperandSize == 32 && mode == CpuMode.Bits16;
        bool want67 = info.AddressSize == 16 && mode != CpuMode.Bits16 || info.AddressSize == 32 && mode != CpuMode.Bits32;
        if (random.Next(4) == 0) bytes.Add(random.Next(2) == 0 ? (byte)0x2E : (byte)0x64);
        if (want67 || (info.AddressSize == 0 && random.Next(4) == 0)) bytes.Add(0x67);
        if (info.Encoding == EncodingKind.Legacy || info.Encoding == EncodingKind.D3NOW)
        {
            if (info.CanUseLockPrefix && random.Next(3) == 0) bytes.Add(0xF0);
            if (want66) bytes.Add(0x66);
            switch (info.MandatoryPrefix)
            {
                case MandatoryPrefix.P66: bytes.Add(0x66); break;
                case MandatoryPrefix.PF3: bytes.Add(0xF3); break;
                case MandatoryPrefix.PF2: bytes.Add(0xF2); break;
                default: break;
            }
            if (is64)
            {
                int rex = random.Next(8) == 0 ? 0 : 0x40 | random.Next(8);   // R X B random, W as the code asks
                if (rexW) rex |= 0x48;
                if (rex != 0) bytes.Add((byte)rex);
            }
            switch (info.Table)
            {
                case OpCodeTableKind.Normal: break;
                case OpCodeTableKind.T0F: bytes.Add(0x0F); break;
                case OpCodeTableKind.T0F38: bytes.AddRange([0x0F, 0x38]); break;
                case OpCodeTableKind.T0F3A: bytes.AddRange([0x0F, 0x3A]); break;
                default: return null;
            }
            if (info.Encoding == EncodingKind.D3NOW)
            {
                bytes.Add(0x0F);
                int at = bytes.Count;
                bytes.Add(RandomModRm(random, info));
                AddOperandBytes(random, bytes);
                bool address16 = mode == CpuMode.Bits16 ? !bytes.Take(at).Contains((byte)0x67) : mode == CpuMode.Bits32 && bytes.Take(at).Contains((byte)0x67);
                return [.. Rebuild3DNow(bytes, at, address16, (byte)opcode, random)];
            }
            if (info.OpCodeLength == 2) bytes.Add((byte)(opcode >> 8));
            bytes.Add((byte)opcode);
        }
        else
        {
            int pp = info.MandatoryPrefix switch { MandatoryPrefix.P66 => 1, MandatoryPrefix.PF3 => 2, MandatoryPrefix.PF2 => 3, _ => 0 };
            int w = info.IsWIG || (info.IsWIG32 && !is64) ? random.Next(2) : (int)info.W;
            int l = info.IsLIG ? random.Next(4) : (int)info.L;
            int rxb = is64 ? random.Next(8) : 7;
            int vvvv = random.Next(2) == 0 ? 0xF : random.Next(16);
            if (!is64) vvvv |= 8;
            int map;
            switch (info.Encoding)
            {
                case EncodingKind.VEX:
                    map = info.Table switch { OpCodeTableKind.T0F => 1, OpCodeTableKind.T0F38 => 2, OpCodeTableKind.T0F3A => 3, _ => 0 };
                    if (map == 1 && w == 0 && (rxb & 3) == 3 && random.Next(2) == 0)
                    {
                        bytes.AddRange([0xC5, (byte)(((rxb & 4) << 5) | (vvvv << 3) | ((l & 1) << 2) | pp)]);
                    }
                    else
                    {
                        bytes.AddRange([0xC4, (byte)((rxb << 5) | map), (byte)((w << 7) | (vvvv << 3) | ((l & 1) << 2) | pp)]);
                    }
                    break;
                case EncodingKind.XOP:
                    map = info.Table switch { OpCodeTableKind.MAP8 => 8, OpCodeTableKind.MAP9 => 9, OpCodeTableKind.MAP10 => 10, _ => 0 };
                    bytes.AddRange([0x8F, (byte)((rxb << 5) | map), (byte)((w << 7) | (vvvv << 3) | ((l & 1) << 2) | pp)]);
                    break;
                case EncodingKind.EVEX:
                    map = info.Table switch { OpCodeTableKind.T0F => 1, OpCodeTableKind.T0F38 => 2, OpCodeTableKind.T0F3A => 3, OpCodeTableKind.MAP5 => 5, OpCodeTableKind.MAP6 => 6, _ => 0 };
                    int rPrime = is64 ? random.Next(2) : 1;
                    int aaa = info.RequireOpMaskRegister ? random.Next(1, 8) : info.CanUseOpMaskRegister ? random.Next(8) : 0;
                    int z = info.CanUseZeroingMasking && aaa != 0 ? random.Next(2) : 0;
                    int b = info.CanBroadcast || info.CanUseRoundingControl || info.CanSuppressAllExceptions ? random.Next(2) : 0;
                    int vPrime = is64 ? (random.Next(4) == 0 ? 0 : 1) : 1;
                    bytes.AddRange([0x62, (byte)((rxb << 5) | (rPrime << 4) | map), (byte)((w << 7) | (vvvv << 3) | 4 | pp), (byte)((z << 7) | ((l & 3) << 5) | (b << 4) | (vPrime << 3) | aaa)]);
                    break;
                default:
                    return null;
            }
            bytes.Add((byte)opcode);
        }
        bytes.Add(RandomModRm(random, info));
        AddOperandBytes(random, bytes);
        return [.. bytes];
    }

    private static byte RandomModRm(Random random, OpCodeInfo info)
    {
        int mod = random.Next(4);
        int reg = info.IsGroup ? info.GroupIndex : random.Next(8);
        int rm = random.Next(3) == 0 ? (random.Next(2) == 0 ? 4 : 5) : random.Next(8);
        if (info.IsRmGroup)
        {
            mod = 3;
            rm = info.RmGroupIndex;
        }
        return (byte)((mod << 6) | (reg << 3) | rm);
    }

    private static void AddOperandBytes(Random random, List<byte> bytes)
    {
        int sibBase = random.Next(3) == 0 ? 5 : random.Next(8);
        bytes.Add((byte)((random.Next(256) & 0xF8) | sibBase));
        bytes.AddRange(RandomBytes(random, 16));
    }

    /// <summary>3DNow!: 0F 0F ModRM [SIB] [disp] imm8-opcode — the opcode goes after the displacement.</summary>
    private static List<byte> Rebuild3DNow(List<byte> bytes, int at, bool address16, byte opcode, Random random)
    {
        byte modrm = bytes[at];
        int mod = modrm >> 6, rm = modrm & 7;
        int length = 1;
        if (mod != 3 && address16)
        {
            length += mod == 1 ? 1 : mod == 2 ? 2 : (rm == 6 ? 2 : 0);
        }
        else if (mod != 3)
        {
            if (rm == 4) length += 1 + (mod == 0 && (bytes[at + 1] & 7) == 5 ? 4 : 0);
            length += mod == 1 ? 1 : mod == 2 ? 4 : (mod == 0 && rm == 5 ? 4 : 0);
        }
        var result = bytes.Take(at + length).ToList();
        result.Add(opcode);
        result.AddRange(RandomBytes(random, 4));
        return result;
    }

    private static byte[] RandomBytes(Random random, int count)
    {
        byte[] bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    // ---------------------------------------------------------------- Iced

    private static Iced.Intel.Instruction IcedDecode(byte[] code, CpuMode mode, Vendor vendor, out DecoderError error)
    {
        var decoder = Iced.Intel.Decoder.Create((int)mode, new ByteArrayCodeReader(code), vendor == Vendor.AmdSvm ? DecoderOptions.AMD : DecoderOptions.None);
        decoder.IP = 0x1000;
        decoder.Decode(out Iced.Intel.Instruction instruction);
        error = decoder.LastError;
        return instruction;
    }

    private static byte[]? IcedEncode(Iced.Intel.Instruction instruction, CpuMode mode)
    {
        using var stream = new MemoryStream();
        var encoder = Iced.Intel.Encoder.Create((int)mode, new StreamCodeWriter(stream));
        return encoder.TryEncode(instruction, instruction.IP, out _, out _) ? stream.ToArray() : null;
    }

    private static void CompareStream(byte[] all, CpuMode mode, Tally tally)
    {
        int offset = 0;
        while (offset < all.Length)
        {
            byte[] rest = all[offset..];
            Iced.Intel.Instruction instruction = IcedDecode(rest, mode, Vendor.IntelVmx, out _);
            Assert.NotEqual(Code.INVALID, instruction.Code);
            tally.Compare(rest, mode, Vendor.IntelVmx);
            offset += instruction.Length;
        }
    }

    private sealed class Tally
    {
        public int Compared { get; private set; }

        public HashSet<Code> Codes { get; } = [];

        public List<string> Disagreements { get; } = [];

        /// <summary>Compares when Iced decodes a valid instruction; also checks the exact and one-short buffers.</summary>
        public void Compare(byte[] code, CpuMode mode, Vendor vendor)
        {
            Iced.Intel.Instruction iced = IcedDecode(code, mode, vendor, out _);
            if (iced.Code == Code.INVALID) return;
            Compared++;
            Codes.Add(iced.Code);
            int ours = InstructionLength.Decode(code, mode, vendor);
            int exact = InstructionLength.Decode(code.AsSpan(0, iced.Length), mode, vendor);
            int shorter = InstructionLength.Decode(code.AsSpan(0, iced.Length - 1), mode, vendor);
            if ((ours != iced.Length || exact != iced.Length || shorter != 0) && Disagreements.Count < 50)
            {
                Disagreements.Add($"{(int)mode}-bit {vendor}: {Format(code.AsSpan(0, Math.Min(code.Length, 15)))}: iced {iced.Length} ({iced.Code}: {iced}), ours {ours}/{exact}/{shorter}");
            }
        }
    }

    private void Report(string what, Tally tally)
    {
        output.WriteLine($"{what}: {tally.Compared} valid instructions compared, {tally.Codes.Count} distinct Iced codes, {tally.Disagreements.Count} disagreements");
        foreach (string line in tally.Disagreements) output.WriteLine("  " + line);
    }

    private static string Format(ReadOnlySpan<byte> code)
    {
        var sb = new StringBuilder();
        foreach (byte b in code) sb.Append(b.ToString("X2")).Append(' ');
        return sb.ToString().TrimEnd();
    }

    private static byte[] Hex(string text) => text.Length == 0 ? [] : text.Split(' ').Select(h => Convert.ToByte(h, 16)).ToArray();
}
