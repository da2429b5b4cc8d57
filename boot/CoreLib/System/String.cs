// System.String: length-prefixed UTF-16, the layout frozen string literals use.
// Only members that real .NET also has exist here, with the same behaviour.
using System.Runtime.CompilerServices;
using Internal.Runtime;
using Internal.Runtime.CompilerHelpers;

namespace System
{
    public sealed unsafe class String
    {
        // Layout contract with the compiler: length, then the characters.
        private readonly int _stringLength;
        private char _firstChar;

        public static readonly string Empty = "";

        public int Length => _stringLength;

        [IndexerName("Chars")]
        public char this[int index]
        {
            get
            {
                if ((uint)index >= (uint)_stringLength) ThrowHelpers.ThrowIndexOutOfRangeException();
                return Unsafe.Add(ref _firstChar, index);
            }
        }

        public ref readonly char GetPinnableReference() => ref _firstChar;

        public static implicit operator ReadOnlySpan<char>(string value)
            => value == null ? default : new ReadOnlySpan<char>(ref value._firstChar, value._stringLength);

        internal static string FastAllocate(int length)
        {
            if (length == 0) return "";
            // Every string shares the MethodTable of the "" literal.
            MethodTable* mt = "".GetMethodTable();
            return Unsafe.As<string>(AllocHelpers.RhpNewArray(mt, length));
        }

        public static string Concat(ReadOnlySpan<char> str0, ReadOnlySpan<char> str1)
        {
            string r = FastAllocate(str0.Length + str1.Length);
            if (r.Length == 0) return r;
            for (int i = 0; i < str0.Length; i++) Unsafe.Add(ref r._firstChar, i) = str0[i];
            for (int i = 0; i < str1.Length; i++) Unsafe.Add(ref r._firstChar, str0.Length + i) = str1[i];
            return r;
        }

        public static string Concat(string str0, string str1) => Concat((ReadOnlySpan<char>)str0, (ReadOnlySpan<char>)str1);

        public static string Concat(string str0, string str1, string str2) => Concat(Concat(str0, str1), str2);

        public static string Concat(string str0, string str1, string str2, string str3) => Concat(Concat(str0, str1), Concat(str2, str3));

        public static string Concat(params string[] values)
        {
            string r = "";
            for (int i = 0; i < values.Length; i++) r = Concat(r, values[i]);
            return r;
        }

        public static bool operator ==(string a, string b) => Equals(a, b);

        public static bool operator !=(string a, string b) => !Equals(a, b);

        public override bool Equals(object o) => o is string s && Equals(this, s);

        public override int GetHashCode()
        {
            uint h = 2166136261;
            for (int i = 0; i < _stringLength; i++) h = (h ^ this[i]) * 16777619;
            return (int)h;
        }

        public static bool Equals(string a, string b)
        {
            if ((object)a == (object)b) return true;
            if ((object)a == null || (object)b == null || a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
            {
                if (a[i] != b[i]) return false;
            }
            return true;
        }

        public static bool IsNullOrEmpty(string value) => value == null || value.Length == 0;

        public override string ToString() => this;
    }

    public static class MemoryExtensions
    {
        /// <summary>The conversion C# uses for string → ReadOnlySpan&lt;char&gt;.</summary>
        public static ReadOnlySpan<char> AsSpan(this string text)
            => text == null ? default : new ReadOnlySpan<char>(ref Unsafe.AsRef(in text.GetPinnableReference()), text.Length);
    }

    /// <summary>Integer formatting for ToString() and interpolation (decimal only, like "D").</summary>
    internal static unsafe class Number
    {
        internal static string FormatInt64(long value)
            => value < 0 ? Format((ulong)(-value), negative: true) : Format((ulong)value, negative: false);

        internal static string FormatUInt64(ulong value) => Format(value, negative: false);

        private static string Format(ulong value, bool negative)
        {
            char* buffer = stackalloc char[24];
            int pos = 24;
            do
            {
                buffer[--pos] = (char)('0' + (int)(value % 10));
                value /= 10;
            }
            while (value != 0);
            if (negative) buffer[--pos] = '-';
            return string.Concat(new ReadOnlySpan<char>(buffer + pos, 24 - pos), default);
        }
    }
}
