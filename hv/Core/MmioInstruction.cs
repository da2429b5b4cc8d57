// The MOV forms compilers emit for MMIO (SDM Vol 2 2.1-2.2, MOV): enough to emulate an access to a
// trapped device page (ApicPage). Anything else is refused, never guessed.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    /// <summary>A decoded MMIO MOV (64-bit mode): direction, register or immediate, length.</summary>
    public struct MmioInstruction
    {
        public int Length;
        public bool IsStore;
        public bool HasImmediate;
        public int Register;
        public uint Immediate;

        /// <summary>Decodes 89 /r, 8B /r and C7 /0 with optional 66/REX prefixes (SDM Vol 2 2.1-2.2). False for anything else.</summary>
        public static bool Decode(System.ReadOnlySpan<byte> code, out MmioInstruction insn)
        {
            insn = default;
            int i = 0;
            int rex = 0;
            while (i < 4 && (code[i] == 0x66 || code[i] == 0x67 || code[i] == 0x2E || code[i] == 0x3E)) i++;
            if ((code[i] & 0xF0) == 0x40) rex = code[i++];
            byte opcode = code[i++];
            if (opcode != 0x89 && opcode != 0x8B && opcode != 0xC7) return false;
            byte modrm = code[i++];
            int mod = modrm >> 6;
            int reg = (modrm >> 3) & 7;
            int rm = modrm & 7;
            if (mod == 3) return false;   // register operand: not a memory access
            if (rm == 4)
            {
                byte sib = code[i++];
                if (mod == 0 && (sib & 7) == 5) i += 4;
            }
            else if (mod == 0 && rm == 5)
            {
                i += 4;   // RIP-relative disp32
            }
            if (mod == 1) i += 1;
            else if (mod == 2) i += 4;
            insn.Register = reg | ((rex & 4) != 0 ? 8 : 0);
            if (opcode == 0xC7)
            {
                if (reg != 0) return false;
                insn.HasImmediate = true;
                insn.Immediate = (uint)(code[i] | (code[i + 1] << 8) | (code[i + 2] << 16) | (code[i + 3] << 24));
                i += 4;
            }
            insn.IsStore = opcode != 0x8B;
            insn.Length = i;
            return i <= code.Length;
        }
    }
}
