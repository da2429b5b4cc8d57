// Decodes the store that faulted on a guarded page, in 64-bit mode: where it writes (linear address),
// how many bytes, and what. The guard judges the write from this and, when allowed, performs it
// itself (no window in which another CPU could write the page). Forms (SDM Vol 2, each instruction's
// page; Vol 2A 2.1-2.2 for prefixes, ModRM, SIB):
//   MOV r/m,r (88/89), MOV r/m,imm (C6/C7 /0), MOV moffs,AL/rAX (A2/A3), MOVNTI (0F C3),
//   XCHG r/m,r (86/87: always locked), CMPXCHG r/m,r (0F B0/B1, with or without LOCK),
//   MOVS and STOS (A4/A5, AA/AB) with or without REP — the kernel's memcpy/memset (rep movsb/movsq,
//   memcpy_orig's overlapping MOVs).
// Anything else (read-modify-write arithmetic, SSE stores, ...) is not decoded: the guard blocks it
// and records its bytes, it never guesses. 16-bit and 32-bit code is not decoded either (the kernel
// the guard protects runs in 64-bit mode). No allocation; compiled twice (hypervisor and tests, where
// it is compared with Iced's decoder).
using System;

namespace Vigil.Hypervisor.Core.Decoding
{
    public enum WriteForm : byte
    {
        /// <summary>Not a store this decoder knows (or not a memory destination).</summary>
        None = 0,

        /// <summary>MOV to memory from a register or an immediate; MOVNTI.</summary>
        Move = 1,

        /// <summary>XCHG: the register gets the old memory value.</summary>
        Exchange = 2,

        /// <summary>CMPXCHG: writes the register if memory equals the accumulator, else loads memory into it.</summary>
        CompareExchange = 3,

        /// <summary>STOS: the accumulator to ES:[RDI], Count times with REP.</summary>
        StoreString = 4,

        /// <summary>MOVS: [RSI] (DS or an override) to ES:[RDI], Count times with REP.</summary>
        MoveString = 5,
    }

    /// <summary>A decoded store.</summary>
    public struct MemoryWrite
    {
        public WriteForm Form;

        /// <summary>The instruction's length in bytes.</summary>
        public int Length;

        /// <summary>Bytes per element: 1, 2, 4 or 8.</summary>
        public int Size;

        /// <summary>Linear address of the (first) element written.</summary>
        public ulong Destination;

        /// <summary>The value written (Move, Exchange, CompareExchange's source, StoreString's accumulator), truncated to Size.</summary>
        public ulong Value;

        /// <summary>The register the value comes from (0-15; 4 = RSP), or -1 for an immediate.</summary>
        public int Register;

        /// <summary>True for AH, CH, DH, BH (byte registers 4-7 without REX): <see cref="Register"/> names RAX-RBX.</summary>
        public bool HighByte;

        /// <summary>String forms: elements (RCX with REP, else 1).</summary>
        public ulong Count;

        /// <summary>MoveString: linear address of the (first) source element.</summary>
        public ulong Source;

        /// <summary>String forms: RFLAGS.DF was set (addresses go down).</summary>
        public bool Down;

        /// <summary>A REP prefix on a string form.</summary>
        public bool Repeat;

        /// <summary>LOCK prefix (XCHG with memory is locked without it too).</summary>
        public bool Locked;

        /// <summary>A 67 prefix: addresses (and RSI/RDI/RCX for strings) are 32 bits wide.</summary>
        public bool Address32;

        /// <summary>All bytes written: Size × Count.</summary>
        public ulong TotalBytes => (ulong)Size * (Form is WriteForm.StoreString or WriteForm.MoveString ? Count : 1);
    }

    /// <summary>The guest state a store's operands come from.</summary>
    public ref struct WriteContext
    {
        /// <summary>RAX..R15 by encoding number (4 = RSP): 16 entries.</summary>
        public ReadOnlySpan<ulong> Registers;

        public ulong Rip;
        public ulong Rflags;
        public ulong FsBase;
        public ulong GsBase;
    }

    public static class MemoryWriteDecoder
    {
        private const ulong DirectionFlag = 1UL << 10;

        /// <summary>Decodes the 64-bit-mode instruction in <paramref name="code"/>; false (Form None) for anything it does not know.</summary>
        public static bool Decode(ReadOnlySpan<byte> code, in WriteContext context, out MemoryWrite write)
        {
            write = default;
            if (context.Registers.Length < 16) return false;
            int i = 0;
            bool operand16 = false, address32 = false, locked = false, repeat = false;
            int segment = 0;   // 0 = none, 4 = FS, 5 = GS
            int rex = 0;
            // Legacy prefixes in any order; REX counts only as the last byte before the opcode (SDM Vol 2A 2.2.1).
            for (; i < code.Length && i < 15; i++)
            {
                byte b = code[i];
                if (b == 0x66) operand16 = true;
                else if (b == 0x67) address32 = true;
                else if (b == 0xF0) locked = true;
                else if (b is 0xF2 or 0xF3) repeat = true;
                else if (b == 0x64) segment = 4;
                else if (b == 0x65) segment = 5;
                else if (b is 0x26 or 0x2E or 0x36 or 0x3E) { }   // ignored in 64-bit mode
                else break;
            }
            if (i < code.Length && (code[i] & 0xF0) == 0x40) rex = code[i++];
            if (i >= code.Length) return false;
            bool w = (rex & 8) != 0;
            int size = w ? 8 : operand16 ? 2 : 4;

            byte opcode = code[i++];
            bool twoByte = false;
            if (opcode == 0x0F)
            {
                if (i >= code.Length) return false;
                opcode = code[i++];
                twoByte = true;
            }

            write.Locked = locked;
            write.Address32 = address32;
            write.Count = 1;
            if (!twoByte)
            {
                switch (opcode)
                {
                    case 0x88: case 0x89: case 0x86: case 0x87:
                    {
                        write.Form = opcode is 0x86 or 0x87 ? WriteForm.Exchange : WriteForm.Move;
                        write.Size = (opcode & 1) == 0 ? 1 : size;
                        if (!MemoryOperand(code, ref i, rex, address32, segment, in context, out int reg, out ulong ea, ripRelativeImmediate: 0)) return false;
                        write.Destination = ea;
                        SetRegisterValue(ref write, reg, rex, in context);
                        break;
                    }
                    case 0xC6: case 0xC7:
                    {
                        write.Form = WriteForm.Move;
                        write.Size = opcode == 0xC6 ? 1 : size;
                        int immediate = opcode == 0xC6 ? 1 : size == 2 ? 2 : 4;
                        if (!MemoryOperand(code, ref i, rex, address32, segment, in context, out int reg, out ulong ea, immediate)) return false;
                        if ((reg & 7) != 0) return false;   // C6/C7 /1-/7 are not MOV (XABORT/XBEGIN live at mod 3 only)
                        if (i + immediate > code.Length) return false;
                        ulong value = immediate switch
                        {
                            1 => code[i],
                            2 => (ulong)(code[i] | (code[i + 1] << 8)),
                            _ => (ulong)(long)(int)(code[i] | ((uint)code[i + 1] << 8) | ((uint)code[i + 2] << 16) | ((uint)code[i + 3] << 24)),   // imm32, sign-extended with REX.W
                        };
                        i += immediate;
                        write.Destination = ea;
                        write.Register = -1;
                        write.Value = Truncate(value, write.Size);
                        break;
                    }
                    case 0xA2: case 0xA3:
                    {
                        // MOV moffs, AL/rAX: an absolute address of the address size (8 bytes, 4 with 67).
                        int offsetBytes = address32 ? 4 : 8;
                        if (i + offsetBytes > code.Length) return false;
                        ulong offset = 0;
                        for (int k = 0; k < offsetBytes; k++) offset |= (ulong)code[i + k] << (8 * k);
                        i += offsetBytes;
                        write.Form = WriteForm.Move;
                        write.Size = opcode == 0xA2 ? 1 : size;
                        write.Destination = SegmentBase(segment, in context) + offset;
                        write.Register = 0;
                        write.Value = Truncate(context.Registers[0], write.Size);
                        break;
                    }
                    case 0xAA: case 0xAB: case 0xA4: case 0xA5:
                    {
                        write.Form = opcode is 0xAA or 0xAB ? WriteForm.StoreString : WriteForm.MoveString;
                        write.Size = (opcode & 1) == 0 ? 1 : size;
                        write.Repeat = repeat;
                        ulong mask = address32 ? 0xFFFF_FFFFUL : ulong.MaxValue;
                        write.Destination = context.Registers[7] & mask;   // ES:RDI; ES has base 0 and no override in 64-bit mode
                        write.Count = repeat ? context.Registers[1] & mask : 1;
                        write.Down = (context.Rflags & DirectionFlag) != 0;
                        if (write.Form == WriteForm.MoveString)
                        {
                            write.Source = SegmentBase(segment, in context) + (context.Registers[6] & mask);   // DS:RSI, overridable
                        }
                        else
                        {
                            write.Register = 0;
                            write.Value = Truncate(context.Registers[0], write.Size);
                        }
                        break;
                    }
                    default:
                        return false;
                }
            }
            else
            {
                switch (opcode)
                {
                    case 0xB0: case 0xB1:
                    {
                        write.Form = WriteForm.CompareExchange;
                        write.Size = opcode == 0xB0 ? 1 : size;
                        if (!MemoryOperand(code, ref i, rex, address32, segment, in context, out int reg, out ulong ea, 0)) return false;
                        write.Destination = ea;
                        SetRegisterValue(ref write, reg, rex, in context);
                        break;
                    }
                    case 0xC3:
                    {
                        if (operand16 || repeat) return false;   // 66/F2/F3 0F C3 are not MOVNTI (#UD)
                        write.Form = WriteForm.Move;
                        write.Size = w ? 8 : 4;
                        if (!MemoryOperand(code, ref i, rex, address32, segment, in context, out int reg, out ulong ea, 0)) return false;
                        write.Destination = ea;
                        SetRegisterValue(ref write, reg, rex, in context);
                        break;
                    }
                    default:
                        return false;
                }
            }
            if (i > 15 || i > code.Length) return false;
            // LOCK is allowed only on read-modify-write forms with a memory destination (SDM Vol 2A LOCK): #UD on MOV,
            // MOVNTI and the string forms.
            if (locked && write.Form is not (WriteForm.Exchange or WriteForm.CompareExchange)) return false;
            write.Length = i;
            return true;
        }

        // The ModRM memory operand (SDM Vol 2A 2.1.5, Tables 2-2/2-3; RIP-relative 2.2.1.6). False for a register
        // operand (mod 3) or bytes that end early. `reg` is the ModRM reg field with REX.R. The RIP-relative base is the
        // next instruction, so the immediate's size that still follows must be known here.
        internal static bool MemoryOperand(ReadOnlySpan<byte> code, ref int i, int rex, bool address32, int segment,
            in WriteContext context, out int reg, out ulong ea, int ripRelativeImmediate)
        {
            reg = 0;
            ea = 0;
            if (i >= code.Length) return false;
            byte modrm = code[i++];
            int mod = modrm >> 6;
            reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
            int rm = modrm & 7;
            if (mod == 3) return false;
            ulong address;
            bool ripRelative = false;
            if (rm == 4)
            {
                if (i >= code.Length) return false;
                byte sib = code[i++];
                int scale = sib >> 6;
                int index = ((sib >> 3) & 7) | ((rex & 2) << 2);
                int baseReg = (sib & 7) | ((rex & 1) << 3);
                address = index == 4 ? 0 : context.Registers[index] << scale;   // index 100 (RSP) without REX.X: none
                if ((sib & 7) == 5 && mod == 0)
                {
                    if (!Displacement(code, ref i, 4, ref address)) return false;   // no base, disp32
                }
                else
                {
                    address += context.Registers[baseReg];
                }
            }
            else if (rm == 5 && mod == 0)
            {
                address = 0;
                if (!Displacement(code, ref i, 4, ref address)) return false;
                ripRelative = true;
            }
            else
            {
                address = context.Registers[rm | ((rex & 1) << 3)];
            }
            if (mod == 1 && !Displacement(code, ref i, 1, ref address)) return false;
            if (mod == 2 && !Displacement(code, ref i, 4, ref address)) return false;
            if (ripRelative) address += context.Rip + (ulong)(i + ripRelativeImmediate);
            if (address32) address &= 0xFFFF_FFFF;
            ea = SegmentBase(segment, in context) + address;
            return true;
        }

        private static bool Displacement(ReadOnlySpan<byte> code, ref int i, int bytes, ref ulong address)
        {
            if (i + bytes > code.Length) return false;
            long displacement = bytes == 1
                ? (sbyte)code[i]
                : (int)(code[i] | ((uint)code[i + 1] << 8) | ((uint)code[i + 2] << 16) | ((uint)code[i + 3] << 24));
            i += bytes;
            address = unchecked(address + (ulong)displacement);
            return true;
        }

        private static void SetRegisterValue(ref MemoryWrite write, int reg, int rex, in WriteContext context)
        {
            // Byte registers 4-7 are AH, CH, DH, BH unless a REX prefix is present (SDM Vol 2A 3.7.2.1).
            if (write.Size == 1 && rex == 0 && reg is >= 4 and <= 7)
            {
                write.Register = reg - 4;
                write.HighByte = true;
                write.Value = (context.Registers[reg - 4] >> 8) & 0xFF;
                return;
            }
            write.Register = reg;
            write.Value = Truncate(context.Registers[reg], write.Size);
        }

        private static ulong SegmentBase(int segment, in WriteContext context)
            => segment == 4 ? context.FsBase : segment == 5 ? context.GsBase : 0;

        private static ulong Truncate(ulong value, int size)
            => size == 8 ? value : value & ((1UL << (8 * size)) - 1);
    }
}
