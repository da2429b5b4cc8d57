// Little-endian field writers and the ACPI checksum, on spans only, so the table builder compiles
// unchanged against the tiny core library and against real .NET (where the unit tests run).
using System;

namespace Vigil.Harness.Acpi
{
    public static class AcpiBytes
    {
        public static void WriteUInt8(Span<byte> table, int offset, byte value) => table[offset] = value;

        public static void WriteUInt16(Span<byte> table, int offset, ushort value)
        {
            table[offset] = (byte)value;
            table[offset + 1] = (byte)(value >> 8);
        }

        public static void WriteUInt32(Span<byte> table, int offset, uint value)
        {
            for (int i = 0; i < 4; i++) table[offset + i] = (byte)(value >> (8 * i));
        }

        public static void WriteUInt64(Span<byte> table, int offset, ulong value)
        {
            for (int i = 0; i < 8; i++) table[offset + i] = (byte)(value >> (8 * i));
        }

        /// <summary>Signatures and OEM IDs: ASCII, exactly <c>text.Length</c> bytes, no terminator.</summary>
        public static void WriteAscii(Span<byte> table, int offset, string text)
        {
            for (int i = 0; i < text.Length; i++) table[offset + i] = (byte)text[i];
        }

        public static ushort ReadUInt16(ReadOnlySpan<byte> table, int offset) => (ushort)(table[offset] | (table[offset + 1] << 8));

        public static uint ReadUInt32(ReadOnlySpan<byte> table, int offset)
        {
            uint value = 0;
            for (int i = 3; i >= 0; i--) value = (value << 8) | table[offset + i];
            return value;
        }

        public static ulong ReadUInt64(ReadOnlySpan<byte> table, int offset)
        {
            ulong value = 0;
            for (int i = 7; i >= 0; i--) value = (value << 8) | table[offset + i];
            return value;
        }

        /// <summary>
        /// The byte sum of <paramref name="bytes"/> modulo 256. A table is valid when the sum over
        /// its whole length, checksum byte included, is zero (ACPI 6.5 §5.2.5.3, §5.2.6).
        /// </summary>
        public static byte Sum(ReadOnlySpan<byte> bytes)
        {
            byte sum = 0;
            for (int i = 0; i < bytes.Length; i++) sum += bytes[i];
            return sum;
        }

        /// <summary>Sets the byte at <paramref name="checksumOffset"/> so <paramref name="bytes"/> sums to zero.</summary>
        public static void FixChecksum(Span<byte> bytes, int checksumOffset)
        {
            bytes[checksumOffset] = 0;
            bytes[checksumOffset] = (byte)(0 - Sum(bytes));
        }
    }
}
