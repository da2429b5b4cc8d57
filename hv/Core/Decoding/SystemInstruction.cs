// Decodes the system instructions whose SVM intercepts carry no operand information without decode
// assists (APM Vol 2 15.33: EXITINFO1 holds the CR's GPR only with decode assists; QEMU TCG has none):
//   MOV CRn, reg (0F 22 /r: ModRM.reg with REX.R is the CR, ModRM.rm with REX.B the GPR, mod ignored,
//     SDM Vol 2B MOV CR; LOCK MOV CR0 is CR8 on AMD, APM Vol 3 MOV CRn), CLTS (0F 06),
//   LMSW reg (0F 01 /6, mod 3; the memory form is not decoded),
//   LGDT/LIDT m (0F 01 /2, /3, memory only: 2-byte limit, then an 8-byte base in 64-bit mode, SDM Vol 2A LGDT).
// MOV CR, CLTS and LMSW reg decode in every mode (no memory operand; REX only in 64-bit mode); LGDT/LIDT in
// 64-bit mode only (the guard intercepts them only there). Compiled twice; no allocation.
using System;

namespace Vigil.Hypervisor.Core.Decoding
{
    public enum SystemForm : byte
    {
        None = 0,
        MoveToControlRegister = 1,
        Clts = 2,
        Lmsw = 3,
        Lgdt = 4,
        Lidt = 5,
    }

    public struct SystemInstruction
    {
        public SystemForm Form;

        /// <summary>Bytes of the instruction.</summary>
        public int Length;

        /// <summary>MOV to CR: the control register (0-15).</summary>
        public int ControlRegister;

        /// <summary>MOV to CR, LMSW: the source register (0-15; 4 = RSP).</summary>
        public int Register;

        /// <summary>LGDT/LIDT: the linear address of the 10-byte operand.</summary>
        public ulong Address;
    }

    public static class SystemInstructionDecoder
    {
        public static bool Decode(ReadOnlySpan<byte> code, bool is64, in WriteContext context, out SystemInstruction s)
        {
            s = default;
            int i = 0;
            bool locked = false, address32 = false;
            int segment = 0, rex = 0;
            for (; i < code.Length && i < 15; i++)
            {
                byte b = code[i];
                if (b == 0xF0) locked = true;
                else if (b == 0x67) address32 = true;
                else if (b == 0x64) segment = 4;
                else if (b == 0x65) segment = 5;
                else if (b is 0x66 or 0xF2 or 0xF3 or 0x26 or 0x2E or 0x36 or 0x3E) { }
                else break;
            }
            if (is64 && i < code.Length && (code[i] & 0xF0) == 0x40) rex = code[i++];
            if (i + 1 >= code.Length || code[i] != 0x0F) return false;
            byte opcode = code[i + 1];
            i += 2;
            switch (opcode)
            {
                case 0x06:
                    s.Form = SystemForm.Clts;
                    break;
                case 0x22:
                {
                    if (i >= code.Length) return false;
                    byte modrm = code[i++];
                    s.Form = SystemForm.MoveToControlRegister;
                    s.ControlRegister = ((modrm >> 3) & 7) | ((rex & 4) << 1);
                    if (locked && s.ControlRegister == 0) s.ControlRegister = 8;
                    s.Register = (modrm & 7) | ((rex & 1) << 3);
                    break;
                }
                case 0x01:
                {
                    if (i >= code.Length) return false;
                    byte modrm = code[i];
                    int reg = (modrm >> 3) & 7;
                    if ((modrm >> 6) == 3)
                    {
                        if (reg != 6) return false;   // mod 3 with /0-/5, /7: VMCALL, MONITOR, SWAPGS, ... not these
                        i++;
                        s.Form = SystemForm.Lmsw;
                        s.Register = (modrm & 7) | ((rex & 1) << 3);
                        break;
                    }
                    if (!is64 || (reg != 2 && reg != 3)) return false;
                    if (!MemoryWriteDecoder.MemoryOperand(code, ref i, rex, address32, segment, in context, out _, out ulong ea, 0)) return false;
                    s.Form = reg == 2 ? SystemForm.Lgdt : SystemForm.Lidt;
                    s.Address = ea;
                    break;
                }
                default:
                    return false;
            }
            if (i > 15) return false;
            s.Length = i;
            return true;
        }
    }
}
