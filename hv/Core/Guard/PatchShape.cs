// The instructions Linux 6.1 writes into its own text after boot (docs/GUARD.md): NOPs of
// asm/nops.h, JMP rel8/rel32, CALL rel32, Jcc rel32, RET (padded with INT3), and INT3 itself.
// A write to kernel text is a kernel patch only if it turns one of these into another at a patch
// site. Compiled twice (hypervisor and tests); no allocation.
using System;

namespace Vigil.Hypervisor.Core.Guard
{
    public enum PatchKind : byte
    {
        /// <summary>Not one of the shapes.</summary>
        None = 0,

        /// <summary>A NOP of asm/nops.h (1-8 bytes).</summary>
        Nop = 1,

        /// <summary>JMP rel8 (EB), JMP rel32 (E9), Jcc rel32 (0F 8x): a control transfer with a destination.</summary>
        Jump = 2,

        /// <summary>CALL rel32 (E8).</summary>
        Call = 3,

        /// <summary>RET (C3) padded with INT3 to the site's length (static calls without return thunks).</summary>
        Return = 4,

        /// <summary>INT3 (CC) over the first byte: a kprobe, or the first step of text_poke_bp.</summary>
        Breakpoint = 5,
    }

    /// <summary>One shape found at the start of some bytes: kind, length, and for jumps and calls the displacement.</summary>
    public readonly struct PatchShape
    {
        public PatchShape(PatchKind kind, int length, long displacement = 0)
        {
            Kind = kind;
            Length = length;
            Displacement = displacement;
        }

        public PatchKind Kind { get; }

        public int Length { get; }

        /// <summary>For <see cref="PatchKind.Jump"/> and <see cref="PatchKind.Call"/>: destination = site + Length + Displacement.</summary>
        public long Displacement { get; }

        public bool HasDestination => Kind is PatchKind.Jump or PatchKind.Call;

        /// <summary>The shapes a patch site may hold before and after a patch (INT3 is a step, not a site's content).</summary>
        public bool IsSiteContent => Kind is PatchKind.Nop or PatchKind.Jump or PatchKind.Call or PatchKind.Return;

        public ulong Destination(ulong site) => unchecked(site + (ulong)Length + (ulong)Displacement);   // wraps like the CPU

        /// <summary>The longest shape at the start of <paramref name="bytes"/>, or one of kind None.</summary>
        public static PatchShape At(ReadOnlySpan<byte> bytes)
        {
            if (bytes.Length == 0) return default;
            // Longest NOP first: NOP5 must not be read as a shorter prefix of itself.
            for (int length = Math.Min(8, bytes.Length); length >= 1; length--)
            {
                if (IsNop(bytes, length)) return new PatchShape(PatchKind.Nop, length);
            }
            switch (bytes[0])
            {
                case 0xEB when bytes.Length >= 2:
                    return new PatchShape(PatchKind.Jump, 2, (sbyte)bytes[1]);
                case 0xE9 when bytes.Length >= 5:
                    return new PatchShape(PatchKind.Jump, 5, Rel32(bytes, 1));
                case 0xE8 when bytes.Length >= 5:
                    return new PatchShape(PatchKind.Call, 5, Rel32(bytes, 1));
                case 0x0F when bytes.Length >= 6 && (bytes[1] & 0xF0) == 0x80:
                    return new PatchShape(PatchKind.Jump, 6, Rel32(bytes, 2));
                case 0xC3:
                    int padded = 1;
                    while (padded < 5 && padded < bytes.Length && bytes[padded] == 0xCC) padded++;
                    return new PatchShape(PatchKind.Return, padded);
                case 0xCC:
                    return new PatchShape(PatchKind.Breakpoint, 1);
                default:
                    return default;
            }
        }

        /// <summary>The shape of exactly <paramref name="length"/> bytes at the start, or None (used when the site's length is known).</summary>
        public static PatchShape Exactly(ReadOnlySpan<byte> bytes, int length)
        {
            if (length < 1 || length > bytes.Length) return default;
            if (IsNop(bytes, length)) return new PatchShape(PatchKind.Nop, length);
            if (bytes[0] == 0xC3)
            {
                for (int i = 1; i < length; i++)
                {
                    if (bytes[i] != 0xCC) return default;
                }
                return new PatchShape(PatchKind.Return, length);
            }
            PatchShape shape = At(bytes.Slice(0, length));
            return shape.Kind is PatchKind.Jump or PatchKind.Call && shape.Length == length ? shape : default;
        }

        private static long Rel32(ReadOnlySpan<byte> b, int at)
            => (int)(b[at] | ((uint)b[at + 1] << 8) | ((uint)b[at + 2] << 16) | ((uint)b[at + 3] << 24));

        // x86-64 NOPs of asm/nops.h (BYTES_NOP1..8).
        private static bool IsNop(ReadOnlySpan<byte> b, int length)
        {
            if (b.Length < length) return false;
            return length switch
            {
                1 => b[0] == 0x90,
                2 => b[0] == 0x66 && b[1] == 0x90,
                3 => b[0] == 0x0F && b[1] == 0x1F && b[2] == 0x00,
                4 => b[0] == 0x0F && b[1] == 0x1F && b[2] == 0x40 && b[3] == 0x00,
                5 => b[0] == 0x0F && b[1] == 0x1F && b[2] == 0x44 && b[3] == 0x00 && b[4] == 0x00,
                6 => b[0] == 0x66 && b[1] == 0x0F && b[2] == 0x1F && b[3] == 0x44 && b[4] == 0x00 && b[5] == 0x00,
                7 => b[0] == 0x0F && b[1] == 0x1F && b[2] == 0x80 && b[3] == 0x00 && b[4] == 0x00 && b[5] == 0x00 && b[6] == 0x00,
                8 => b[0] == 0x0F && b[1] == 0x1F && b[2] == 0x84 && b[3] == 0x00 && b[4] == 0x00 && b[5] == 0x00 && b[6] == 0x00 && b[7] == 0x00,
                _ => false,
            };
        }
    }
}
