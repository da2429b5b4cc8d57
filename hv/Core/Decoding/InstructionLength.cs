// x86-64 instruction length decoder: how many bytes the instruction at the guest's RIP occupies,
// so the hypervisor can step over an instruction it emulated or blocked when the CPU does not say
// (EPT violations do not report a valid VM-exit instruction length, SDM Vol 3C 28.2.5; QEMU's SVM
// has no NRIP save, APM Vol 2 15.7.1). Only the length is decoded, never the operands' meaning.
// Runs in VMX root / SVM host mode on the exit path: no allocation, no state, reads only the span.
// Compiled twice: into the hypervisor (no runtime) and into the tests, where it is compared with
// Iced's decoder (tests/Vigil.Tests/Hypervisor/InstructionLengthTests.cs).
//
// Rules (SDM Vol 2A chapter 2 and appendix A; APM Vol 3 chapter 1 and appendix A):
//   prefixes      66 67 F0 F2 F3 26 2E 36 3E 64 65 in any order and number; REX (40-4F, 64-bit
//                 mode) counts only when it is the last prefix before the opcode.
//   opcode        one byte, 0F xx, 0F 38 xx, 0F 3A xx, 0F 0F (3DNow!, imm8 opcode suffix),
//                 VEX (C4/C5), EVEX (62), XOP (8F with map select >= 8).
//   ModRM         mod/rm select SIB and displacement by address size (16-bit forms have no SIB;
//                 mod 00 rm 101 is disp32, RIP-relative in 64-bit mode; SIB base 101 with mod 00
//                 is disp32). MOV to/from CR/DR (0F 20-23) ignore mod: always a register form.
//   immediates    by opcode, operand size (66, REX.W) and address size (A0-A3 moffs).
//
// Answer: the length (1-15), or 0 when the bytes are no instruction the decoder can size: fewer
// bytes than the instruction needs (truncated), more than 15 bytes (#GP), an opcode that has no
// encoding in this mode (PUSH ES in 64-bit mode, 0F 04, VEX map 0, ...), or VEX/EVEX/XOP after a
// 66/F2/F3/F0/REX prefix (#UD). Opcodes that exist but are invalid with particular operands
// (LEA with a register, LOCK on ADD reg,reg, reserved 0F 38/0F 3A slots) get the length of their
// form: the CPU raises #UD on them, so they never reach an EPT violation, and the caller only
// needs to know it cannot trust a 0.
using Vigil.Abi;

namespace Vigil.Hypervisor.Core
{
    /// <summary>
    /// Default operand and address size of the code segment (SDM Vol 3A 3.4.5, CS.D and CS.L;
    /// real and virtual-8086 mode are 16-bit).
    /// </summary>
    public enum CpuMode : byte
    {
        /// <summary>Real mode, virtual-8086 mode, or a 16-bit code segment (CS.D = 0).</summary>
        Bits16 = 16,

        /// <summary>Protected mode or compatibility mode with CS.D = 1.</summary>
        Bits32 = 32,

        /// <summary>64-bit mode: IA32_EFER.LMA = 1 and CS.L = 1.</summary>
        Bits64 = 64,
    }

    public static class InstructionLength
    {
        /// <summary>The architectural limit (SDM Vol 2A 2.1): longer instructions raise #GP.</summary>
        public const int MaxLength = 15;

        // One-byte and 0F map attributes.
        private const byte M = 1;      // ModRM (with SIB and displacement as the address size says)
        private const byte B = 2;      // imm8
        private const byte W = 4;      // imm16
        private const byte Z = 8;      // imm16 or imm32 by operand size (imm32 with REX.W)
        private const byte S = 16;     // special: decided in code
        private const byte I64 = 32;   // no encoding in 64-bit mode (SDM Vol 2A appendix A, "i64")
        private const byte X = 64;     // no encoding at all (or a prefix, taken before the table)
        private const byte R = 128;    // ModRM whose mod is ignored: always a register form (0F 20-23)

        /// <summary>The one-byte opcode map (SDM Vol 2D Table A-2).</summary>
        private static System.ReadOnlySpan<byte> OneByte =>
        [
            // 00-0F: ADD, PUSH/POP ES, OR, PUSH CS, 0F escape
            M, M, M, M, B, Z, I64, I64, M, M, M, M, B, Z, I64, S,
            // 10-1F: ADC, PUSH/POP SS, SBB, PUSH/POP DS
            M, M, M, M, B, Z, I64, I64, M, M, M, M, B, Z, I64, I64,
            // 20-2F: AND, ES:, DAA, SUB, CS:, DAS
            M, M, M, M, B, Z, X, I64, M, M, M, M, B, Z, X, I64,
            // 30-3F: XOR, SS:, AAA, CMP, DS:, AAS
            M, M, M, M, B, Z, X, I64, M, M, M, M, B, Z, X, I64,
            // 40-4F: INC/DEC (REX in 64-bit mode, taken before the table)
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // 50-5F: PUSH/POP
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // 60-6F: PUSHA, POPA, BOUND/EVEX, ARPL/MOVSXD, FS:, GS:, 66, 67, PUSH Iz, IMUL Iz, PUSH Ib, IMUL Ib, INS/OUTS
            I64, I64, S, M, X, X, X, X, Z, M | Z, B, M | B, 0, 0, 0, 0,
            // 70-7F: Jcc rel8
            B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
            // 80-8F: group 1, TEST, XCHG, MOV, MOV Sreg, LEA, POP Ev/XOP
            M | B, M | Z, M | B | I64, M | B, M, M, M, M, M, M, M, M, M, M, M, S,
            // 90-9F: XCHG/NOP, CBW, CWD, CALL far Ap, FWAIT, PUSHF, POPF, SAHF, LAHF
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, S, 0, 0, 0, 0, 0,
            // A0-AF: MOV moffs, MOVS, CMPS, TEST Ib/Iz, STOS, LODS, SCAS
            S, S, S, S, 0, 0, 0, 0, B, Z, 0, 0, 0, 0, 0, 0,
            // B0-BF: MOV r8, Ib; MOV r, Iv
            B, B, B, B, B, B, B, B, S, S, S, S, S, S, S, S,
            // C0-CF: shift Ib, RET Iw, RET, LES/VEX3, LDS/VEX2, MOV Ib/Iz (XABORT/XBEGIN), ENTER Iw Ib, LEAVE, RETF Iw, RETF, INT3, INT Ib, INTO, IRET
            M | B, M | B, W, 0, S, S, M | B, M | Z, W | B, 0, W, 0, 0, B, I64, 0,
            // D0-DF: shift 1/CL, AAM Ib, AAD Ib, SALC, XLAT, x87
            M, M, M, M, B | I64, B | I64, I64, 0, M, M, M, M, M, M, M, M,
            // E0-EF: LOOPcc/JrCXZ rel8, IN/OUT Ib, CALL/JMP rel, JMP far Ap, JMP rel8, IN/OUT DX
            B, B, B, B, B, B, B, B, S, S, S, B, 0, 0, 0, 0,
            // F0-FF: LOCK, INT1, REPNE, REP, HLT, CMC, group 3 (TEST Ib/Iz), CLC..STD, group 4, group 5
            X, 0, X, X, 0, 0, S, S, 0, 0, 0, 0, 0, 0, M, M,
        ];

        /// <summary>The two-byte map 0F xx (SDM Vol 2D Table A-3).</summary>
        private static System.ReadOnlySpan<byte> TwoByte =>
        [
            // 00-0F: group 6, group 7, LAR, LSL, -, SYSCALL, CLTS, SYSRET, INVD, WBINVD, -, UD2, -, prefetch, FEMMS, 3DNow!
            M, M, M, M, X, 0, 0, 0, 0, 0, X, 0, X, M, 0, M | B,
            // 10-1F: SSE moves, prefetch/hint NOPs, MPX, ENDBR
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // 20-2F: MOV CR/DR (register form whatever mod says), MOV TR (gone), SSE
            R, R, R, R, X, X, X, X, M, M, M, M, M, M, M, M,
            // 30-3F: WRMSR, RDTSC, RDMSR, RDPMC, SYSENTER, SYSEXIT, -, GETSEC, 0F 38, -, 0F 3A, -
            0, 0, 0, 0, 0, 0, X, 0, S, X, S, X, X, X, X, X,
            // 40-4F: CMOVcc
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // 50-5F: SSE
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // 60-6F: MMX/SSE2
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // 70-7F: PSHUFx Ib, shift groups Ib, PCMPEQx, EMMS, VMREAD/EXTRQ/INSERTQ, VMWRITE, -, -, HADD/HSUB, MOVD/MOVQ
            M | B, M | B, M | B, M | B, M, M, M, 0, S, M, X, X, M, M, M, M,
            // 80-8F: Jcc rel16/32
            S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
            // 90-9F: SETcc
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // A0-AF: PUSH/POP FS, CPUID, BT, SHLD Ib, SHLD CL, VIA PadLock (ModRM register forms), PUSH/POP GS, RSM, BTS, SHRD Ib, SHRD CL, group 15, IMUL
            0, 0, 0, M, M | B, M, M, M, 0, 0, 0, M, M | B, M, M, M,
            // B0-BF: CMPXCHG, LSS, BTR, LFS, LGS, MOVZX, POPCNT, UD1, group 8 Ib, BTC, BSF, BSR, MOVSX
            M, M, M, M, M, M, M, M, M, M, M | B, M, M, M, M, M,
            // C0-CF: XADD, CMPPS Ib, MOVNTI, PINSRW Ib, PEXTRW Ib, SHUFPS Ib, group 9, BSWAP
            M, M, M | B, M, M | B, M | B, M | B, M, 0, 0, 0, 0, 0, 0, 0, 0,
            // D0-DF: MMX/SSE
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // E0-EF: MMX/SSE
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
            // F0-FF: MMX/SSE, UD0 (no ModRM on AMD)
            M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, S,
        ];

        /// <summary>
        /// The default operand and address size from the guest's segment state (SDM Vol 3A 5.2.1):
        /// 64-bit when IA32_EFER.LMA and CS.L are set, else CS.D; real and virtual-8086 mode pass
        /// <paramref name="csDefaultBig"/> = false.
        /// </summary>
        public static CpuMode ModeOf(bool longModeActive, bool csLong, bool csDefaultBig)
        {
            if (longModeActive && csLong) return CpuMode.Bits64;
            return csDefaultBig ? CpuMode.Bits32 : CpuMode.Bits16;
        }

        /// <summary>
        /// The length of the instruction at the start of <paramref name="code"/> (at most the first
        /// <see cref="MaxLength"/> bytes are read), or 0 when it cannot be sized (see the file comment).
        /// <paramref name="vendor"/> matters for two encodings: a 66 prefix shortens a near CALL/JMP/Jcc
        /// displacement to 16 bits in 64-bit mode on AMD only, and AMD's UD0 (0F FF) has no ModRM.
        /// </summary>
        /// <summary>Bytes <see cref="Fixed"/> looks at.</summary>
        public const int FixedPrefixBytes = 3;

        /// <summary>
        /// The length of the instructions that exit on their own and have one fixed encoding without prefixes, ModRM or
        /// operands, from their first <see cref="FixedPrefixBytes"/> bytes: CPUID (0F A2), RDMSR (0F 32), WRMSR (0F 30),
        /// INVD (0F 08), WBINVD (0F 09): 2; VMCALL (0F 01 C1), XSETBV (0F 01 D1), VMMCALL (0F 01 D9), RDTSCP (0F 01 F9): 3.
        /// The same in every mode (no operand or address size applies). 0 for anything else: the full decoder sizes it.
        /// The exit path's shortcut (InstructionSkip): the common case needs 3 bytes of the guest's code, not 15.
        /// </summary>
        public static int Fixed(System.ReadOnlySpan<byte> code)
        {
            ulong head = 0;
            int count = code.Length < FixedPrefixBytes ? code.Length : FixedPrefixBytes;
            for (int i = 0; i < count; i++) head |= (ulong)code[i] << (i * 8);
            return Fixed(head, count);
        }

        /// <summary><see cref="Fixed(System.ReadOnlySpan{byte})"/> over <paramref name="count"/> bytes packed in <paramref name="head"/>, the first in bits 7:0.</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public static int Fixed(ulong head, int count)
        {
            if (count < 2 || (byte)head != 0x0F) return 0;
            byte second = (byte)(head >> 8);
            if (second == 0xA2) return 2;   // CPUID, the commonest
            switch (second)
            {
                case 0x32:
                case 0x30:
                case 0x08:
                case 0x09:
                    return 2;
                case 0x01:
                    if (count < 3) return 0;
                    return (byte)(head >> 16) is 0xC1 or 0xD1 or 0xD9 or 0xF9 ? 3 : 0;
                default:
                    return 0;
            }
        }

        public static int Decode(System.ReadOnlySpan<byte> code, CpuMode mode, Vendor vendor = Vendor.IntelVmx)
        {
            int limit = code.Length < MaxLength ? code.Length : MaxLength;
            bool is64 = mode == CpuMode.Bits64;
            bool amd = vendor == Vendor.AmdSvm;
            bool operandPrefix = false;   // 66
            bool addressPrefix = false;   // 67
            bool lockPrefix = false;      // F0
            byte repPrefix = 0;           // the last F2 or F3: the mandatory prefix where one applies
            byte rex = 0;                 // the REX byte when it immediately precedes the opcode

            int pos = 0;
            byte op;
            while (true)
            {
                if (pos >= limit) return 0;
                op = code[pos];
                if (op == 0x66) operandPrefix = true;
                else if (op == 0x67) addressPrefix = true;
                else if (op == 0xF0) lockPrefix = true;
                else if (op == 0xF2 || op == 0xF3) repPrefix = op;
                else if (op == 0x26 || op == 0x2E || op == 0x36 || op == 0x3E || op == 0x64 || op == 0x65) { }
                else if (is64 && (op & 0xF0) == 0x40)
                {
                    rex = op;
                    pos++;
                    continue;
                }
                else break;
                rex = 0;   // a legacy prefix after REX makes the REX ignored (SDM Vol 2A 2.2.1)
                pos++;
            }
            pos++;

            bool rexW = (rex & 8) != 0;
            // Operand size 16 or not (32/64 take the same immediates except MOV r64, imm64).
            bool operand16 = mode == CpuMode.Bits16 ? !operandPrefix : operandPrefix && !rexW;
            int operandBytes = rexW ? 8 : operand16 ? 2 : 4;
            int addressBytes = mode == CpuMode.Bits64 ? (addressPrefix ? 4 : 8)
                : mode == CpuMode.Bits32 ? (addressPrefix ? 2 : 4)
                : (addressPrefix ? 4 : 2);
            bool address16 = addressBytes == 2;
            bool vexAllowed = !operandPrefix && !lockPrefix && repPrefix == 0 && rex == 0;

            byte attributes = OneByte[op];
            int immediate = 0;
            if ((attributes & S) != 0)
            {
                switch (op)
                {
                    case 0x0F:
                        return TwoByteMap(code, pos, limit, address16, operand16, is64, amd, operandPrefix, rexW, repPrefix);
                    case 0x62:
                        // EVEX in 64-bit mode; elsewhere BOUND unless ModRM.mod = 11 (SDM Vol 2A 2.7.1).
                        if (pos >= limit) return 0;
                        if (is64 || (code[pos] & 0xC0) == 0xC0) return vexAllowed ? Evex(code, pos, limit, address16) : 0;
                        return Finish(code, pos, limit, address16, modRm: true, 0);
                    case 0xC4:
                    case 0xC5:
                        // VEX in 64-bit mode; elsewhere LES/LDS unless ModRM.mod = 11 (SDM Vol 2A 2.3.5).
                        if (pos >= limit) return 0;
                        if (is64 || (code[pos] & 0xC0) == 0xC0) return vexAllowed ? Vex(code, pos, limit, address16, op == 0xC4) : 0;
                        return Finish(code, pos, limit, address16, modRm: true, 0);
                    case 0x8F:
                        // XOP when the map select field is 8 or more; POP Ev has reg = 0 there (APM Vol 3 1.8).
                        if (pos >= limit) return 0;
                        if ((code[pos] & 0x1F) >= 8) return vexAllowed ? Xop(code, pos, limit, address16) : 0;
                        return Finish(code, pos, limit, address16, modRm: true, 0);
                    case 0x9A:
                    case 0xEA:
                        // CALL/JMP far ptr16:16/32 (not encodable in 64-bit mode).
                        if (is64) return 0;
                        immediate = (operand16 ? 2 : 4) + 2;
                        break;
                    case 0xA0:
                    case 0xA1:
                    case 0xA2:
                    case 0xA3:
                        // MOV AL/rAX <-> moffs: the offset is as wide as the address size.
                        immediate = addressBytes;
                        break;
                    case 0xE8:
                    case 0xE9:
                        immediate = NearBranchBytes(is64, amd, operand16, operandPrefix, rexW);
                        break;
                    case 0xF6:
                    case 0xF7:
                        // Group 3: only TEST (/0, and its alias /1) takes an immediate.
                        if (pos >= limit) return 0;
                        if (((code[pos] >> 3) & 7) < 2) immediate = op == 0xF6 ? 1 : operand16 ? 2 : 4;
                        return Finish(code, pos, limit, address16, modRm: true, immediate);
                    default:
                        // B8+r: MOV r, imm16/32/64 — the one imm64 outside moffs (REX.W).
                        immediate = operandBytes;
                        break;
                }
                return Finish(code, pos, limit, address16, modRm: false, immediate);
            }
            if ((attributes & X) != 0) return 0;
            if (is64 && (attributes & I64) != 0) return 0;
            return Finish(code, pos, limit, address16, (attributes & M) != 0, ImmediateBytes(attributes, operand16));
        }

        private static int TwoByteMap(System.ReadOnlySpan<byte> code, int pos, int limit, bool address16, bool operand16, bool is64, bool amd, bool operandPrefix, bool rexW, byte repPrefix)
        {
            if (pos >= limit) return 0;
            byte op = code[pos++];
            byte attributes = TwoByte[op];
            if ((attributes & X) != 0) return 0;
            if ((attributes & R) != 0)
            {
                // MOV CR/DR: "the mod field is ignored" (SDM Vol 2B MOV—Move to/from Control Registers).
                return pos + 1 <= limit ? pos + 1 : 0;
            }
            if ((attributes & S) == 0) return Finish(code, pos, limit, address16, (attributes & M) != 0, ImmediateBytes(attributes, operand16));
            switch (op)
            {
                case 0x38:
                    // Three-byte map 0F 38: every opcode has a ModRM and no immediate (SDM Vol 2D Table A-4).
                    if (pos >= limit) return 0;
                    return Finish(code, pos + 1, limit, address16, modRm: true, 0);
                case 0x3A:
                    // Three-byte map 0F 3A: every opcode has a ModRM and an imm8 (SDM Vol 2D Table A-5).
                    if (pos >= limit) return 0;
                    return Finish(code, pos + 1, limit, address16, modRm: true, 1);
                case 0x78:
                    // VMREAD; with 66 EXTRQ xmm, imm8, imm8, with F2 INSERTQ xmm, xmm, imm8, imm8 (AMD SSE4a).
                    // F2/F3 take precedence over 66 as the mandatory prefix.
                    return Finish(code, pos, limit, address16, modRm: true, repPrefix == 0xF2 || (repPrefix == 0 && operandPrefix) ? 2 : 0);
                case 0xFF:
                    // UD0: Intel decodes a ModRM, AMD does not (SDM Vol 2B UD; APM Vol 3 UD0).
                    return Finish(code, pos, limit, address16, modRm: !amd, 0);
                default:
                    // 0F 80-8F: Jcc rel16/32.
                    return Finish(code, pos, limit, address16, modRm: false, NearBranchBytes(is64, amd, operand16, operandPrefix, rexW));
            }
        }

        /// <summary>
        /// Displacement of a near CALL/JMP/Jcc: in 64-bit mode Intel always reads rel32 (66 is ignored)
        /// while AMD honours 66 unless REX.W overrides it (SDM Vol 2A 2.2.1.3; APM Vol 3 1.2.7).
        /// </summary>
        private static int NearBranchBytes(bool is64, bool amd, bool operand16, bool operandPrefix, bool rexW)
        {
            if (!is64) return operand16 ? 2 : 4;
            return amd && operandPrefix && !rexW ? 2 : 4;
        }

        private static int ImmediateBytes(byte attributes, bool operand16)
        {
            int bytes = 0;
            if ((attributes & B) != 0) bytes += 1;
            if ((attributes & W) != 0) bytes += 2;
            if ((attributes & Z) != 0) bytes += operand16 ? 2 : 4;
            return bytes;
        }

        /// <summary>VEX: C5 [R vvvv L pp] or C4 [R X B mmmmm] [W vvvv L pp], then opcode and ModRM (SDM Vol 2A 2.3).</summary>
        private static int Vex(System.ReadOnlySpan<byte> code, int pos, int limit, bool address16, bool threeByte)
        {
            int map = 1;
            if (threeByte)
            {
                if (pos >= limit) return 0;
                map = code[pos] & 0x1F;
                pos += 2;
            }
            else
            {
                pos += 1;
            }
            if (pos >= limit) return 0;
            byte op = code[pos++];
            if (map == 1)
            {
                // VZEROUPPER/VZEROALL: the only VEX instruction without a ModRM.
                if (op == 0x77) return pos;
                return Finish(code, pos, limit, address16, modRm: true, Map1Imm8(op) ? 1 : 0);
            }
            if (map == 2) return Finish(code, pos, limit, address16, modRm: true, 0);
            if (map == 3) return Finish(code, pos, limit, address16, modRm: true, 1);
            return 0;
        }

        /// <summary>EVEX: 62 P0 P1 P2, opcode, ModRM (SDM Vol 2A 2.7). A compressed disp8 is still one byte.</summary>
        private static int Evex(System.ReadOnlySpan<byte> code, int pos, int limit, bool address16)
        {
            if (pos + 3 >= limit) return 0;
            int map = code[pos] & 0x07;
            // P1 bit 2 is fixed at 1 (it is what tells EVEX from the older MVEX).
            if ((code[pos + 1] & 0x04) == 0) return 0;
            pos += 3;
            byte op = code[pos++];
            switch (map)
            {
                case 1: return Finish(code, pos, limit, address16, modRm: true, Map1Imm8(op) ? 1 : 0);
                case 2: return Finish(code, pos, limit, address16, modRm: true, 0);
                case 3: return Finish(code, pos, limit, address16, modRm: true, 1);
                case 5:   // AVX512-FP16 maps 5 and 6: no immediates
                case 6: return Finish(code, pos, limit, address16, modRm: true, 0);
                default: return 0;
            }
        }

        /// <summary>XOP: 8F [R X B mmmmm] [W vvvv L pp], opcode, ModRM; map 8 has imm8, map 9 none, map 0A imm32 (APM Vol 3 1.8).</summary>
        private static int Xop(System.ReadOnlySpan<byte> code, int pos, int limit, bool address16)
        {
            int map = code[pos] & 0x1F;
            pos += 2;
            if (pos >= limit) return 0;
            pos++;   // opcode
            switch (map)
            {
                case 8: return Finish(code, pos, limit, address16, modRm: true, 1);
                case 9: return Finish(code, pos, limit, address16, modRm: true, 0);
                case 10: return Finish(code, pos, limit, address16, modRm: true, 4);
                default: return 0;
            }
        }

        /// <summary>In the VEX/EVEX 0F map, the opcodes that carry an imm8 (as in the legacy 0F map).</summary>
        private static bool Map1Imm8(byte op) => (op >= 0x70 && op <= 0x73) || op == 0xC2 || op == 0xC4 || op == 0xC5 || op == 0xC6;

        /// <summary>
        /// Adds the ModRM (with SIB and displacement) at <paramref name="pos"/> and the immediate;
        /// the length, or 0 when it exceeds the bytes available or 15.
        /// </summary>
        private static int Finish(System.ReadOnlySpan<byte> code, int pos, int limit, bool address16, bool modRm, int immediate)
        {
            if (modRm)
            {
                if (pos >= limit) return 0;
                byte modrm = code[pos++];
                int mod = modrm >> 6;
                int rm = modrm & 7;
                if (mod != 3)
                {
                    if (address16)
                    {
                        // 16-bit forms (SDM Vol 2A Table 2-1): no SIB; [disp16] is mod 00 rm 110.
                        pos += mod == 1 ? 1 : mod == 2 ? 2 : rm == 6 ? 2 : 0;
                    }
                    else
                    {
                        // 32/64-bit forms (SDM Vol 2A Tables 2-2, 2-3): rm 100 brings a SIB, whose base
                        // 101 with mod 00 means disp32 without a base; mod 00 rm 101 is disp32 (RIP-relative
                        // in 64-bit mode).
                        int displacement = mod == 1 ? 1 : mod == 2 ? 4 : 0;
                        if (rm == 4)
                        {
                            if (pos >= limit) return 0;
                            if (mod == 0 && (code[pos] & 7) == 5) displacement = 4;
                            pos++;
                        }
                        else if (mod == 0 && rm == 5)
                        {
                            displacement = 4;
                        }
                        pos += displacement;
                    }
                }
            }
            pos += immediate;
            return pos <= limit ? pos : 0;
        }
    }
}
