// Memory helpers the JIT maps its MemCpy/MemSet/MemZero helpers to, plus Math.
using System.Runtime.CompilerServices;

namespace System
{
    public static class Buffer
    {
        // Rooted by ILC's scanner (bulk write barrier). There is no GC: a plain copy.
        internal static void BulkMoveWithWriteBarrier(ref byte destination, ref byte source, nuint byteCount)
            => SpanHelpers.Memmove(ref destination, ref source, byteCount);
    }

    internal static unsafe class SpanHelpers
    {
        internal static void Memmove(ref byte destination, ref byte source, nuint length)
        {
            byte* d = (byte*)Unsafe.AsPointer(ref destination);
            byte* s = (byte*)Unsafe.AsPointer(ref source);
            if (d == s || length == 0) return;
            if (d < s || d >= s + length)
            {
                for (nuint i = 0; i < length; i++) d[i] = s[i];
            }
            else
            {
                for (nuint i = length; i > 0; i--) d[i - 1] = s[i - 1];
            }
        }

        internal static void Fill(ref byte destination, byte value, nuint length)
        {
            byte* d = (byte*)Unsafe.AsPointer(ref destination);
            for (nuint i = 0; i < length; i++) d[i] = value;
        }

        internal static void ClearWithoutReferences(ref byte destination, nuint length) => Fill(ref destination, 0, length);
    }

    public static class Math
    {
        public static int Max(int val1, int val2) => val1 >= val2 ? val1 : val2;

        public static int Min(int val1, int val2) => val1 <= val2 ? val1 : val2;

        public static ulong Max(ulong val1, ulong val2) => val1 >= val2 ? val1 : val2;

        public static ulong Min(ulong val1, ulong val2) => val1 <= val2 ? val1 : val2;
    }
}
