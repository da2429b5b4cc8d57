// The MOV forms compilers emit for MMIO (SDM Vol 2 2.1-2.2, MOV): enough to emulate an access to a
// trapped device page (ApicPage). Anything else is refused, never guessed. Differential-tested against
// Iced (tests/Vigil.Tests/Hypervisor/MmioInstructionTests.cs): where this decoder accepts, Iced agrees
// on every field; where Iced sees one of these forms (without LOCK/REP prefixes), this decoder accepts.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    /// <summary>A decoded MMIO MOV (64-bit mode): direction, register or immediate, operand size, length.</summary>
    public struct MmioInstruction
    {
        public int Length;
        public bool IsStore;
        public bool HasImmediate;
        public int Register;

        /// <summary>Operand size in bytes: 2 (66 prefix), 4, or 8 (REX.W).</summary>
        public int Size;

        /// <summary>The immediate as stored: 16 bits with 66, imm32 sign-extended to 64 bits with REX.W (SDM Vol 2B MOV C7 /0).</summary>
        public ulong Immediate;

        /// <summary>
        /// Decodes 89 /r, 8B /r and C7 /0 with a memory operand, after any number of segment, operand-size and
        /// address-size prefixes and a REX prefix (SDM Vol 2A 2.1-2.2; a REX not directly before the opcode is
        /// ignored, 2.2.1). False for anything else — LOCK and REP prefixes included — or when the bytes run out
        /// (an instruction is at most 15 bytes, 2.3.11).
        /// </summary>
        public static bool Decode(System.ReadOnlySpan<byte> code, out MmioInstruction insn)
        {
            insn = default;
            int limit = code.Length < 15 ? code.Length : 15;
            int i = 0;
            int rex = 0;
            bool operandSize = false;
            while (i < limit)
            {
                byte b = code[i];
                if (b == 0x66) operandSize = true;
                else if (b != 0x67 && b != 0x26 && b != 0x2E && b != 0x36 && b != 0x3E && b != 0x64 && b != 0x65)
                {
                    if ((b & 0xF0) != 0x40) break;
                    rex = b;   // a REX prefix counts only directly before the opcode
                    i++;
                    continue;
                }
                rex = 0;
                i++;
            }
            if (i + 2 > limit) return false;
            byte opcode = code[i++];
            if (opcode != 0x89 && opcode != 0x8B && opcode != 0xC7) return false;
            byte modrm = code[i++];
            int mod = modrm >> 6;
            int reg = (modrm >> 3) & 7;
            int rm = modrm & 7;
            if (mod == 3) return false;   // register operand: not a memory access
            if (rm == 4)
            {
                if (i >= limit) return false;
                byte sib = code[i++];
                if (mod == 0 && (sib & 7) == 5) i += 4;
            }
            else if (mod == 0 && rm == 5)
            {
                i += 4;   // RIP-relative disp32
            }
            if (mod == 1) i += 1;
            else if (mod == 2) i += 4;
            insn.Size = (rex & 8) != 0 ? 8 : operandSize ? 2 : 4;   // REX.W wins over 66 (SDM Vol 2A 2.2.1.2)
            insn.Register = reg | ((rex & 4) != 0 ? 8 : 0);
            if (opcode == 0xC7)
            {
                if (reg != 0) return false;
                insn.HasImmediate = true;
                insn.Register = 0;
                if (insn.Size == 2)
                {
                    if (i + 2 > limit) return false;
                    insn.Immediate = (ulong)(code[i] | (code[i + 1] << 8));
                    i += 2;
                }
                else
                {
                    if (i + 4 > limit) return false;
                    uint imm = (uint)(code[i] | (code[i + 1] << 8) | (code[i + 2] << 16) | (code[i + 3] << 24));
                    insn.Immediate = insn.Size == 8 ? (ulong)(long)(int)imm : imm;
                    i += 4;
                }
            }
            if (i > limit) return false;
            insn.IsStore = opcode != 0x8B;
            insn.Length = i;
            return true;
        }
    }
}
