// The primitive value types. Their layout is fixed by the compiler; only a few members exist,
// and every member that does exist behaves as in real .NET (so shared code compiles both ways).
namespace System
{
    public struct Boolean
    {
        public override string ToString() => this ? "True" : "False";
    }

    public unsafe struct Char
    {
        public const char MaxValue = (char)0xFFFF;
        public const char MinValue = (char)0;

        public override string ToString()
        {
            char c = this;
            return string.Concat(new ReadOnlySpan<char>(&c, 1), default);
        }
    }

    public struct SByte
    {
        public const sbyte MaxValue = 127;
        public const sbyte MinValue = -128;
    }

    public struct Byte
    {
        public const byte MaxValue = 0xFF;
        public const byte MinValue = 0;

        public override string ToString() => Number.FormatUInt64(this);
    }

    public struct Int16
    {
        public const short MaxValue = 0x7FFF;
        public const short MinValue = unchecked((short)0x8000);
    }

    public struct UInt16
    {
        public const ushort MaxValue = 0xFFFF;
        public const ushort MinValue = 0;

        public override string ToString() => Number.FormatUInt64(this);
    }

    public struct Int32
    {
        public const int MaxValue = 0x7FFFFFFF;
        public const int MinValue = unchecked((int)0x80000000);

        public override string ToString() => Number.FormatInt64(this);
    }

    public struct UInt32
    {
        public const uint MaxValue = 0xFFFFFFFF;
        public const uint MinValue = 0;

        public override string ToString() => Number.FormatUInt64(this);
    }

    public struct Int64
    {
        public const long MaxValue = 0x7FFFFFFFFFFFFFFF;
        public const long MinValue = unchecked((long)0x8000000000000000);

        public override string ToString() => Number.FormatInt64(this);
    }

    public struct UInt64
    {
        public const ulong MaxValue = 0xFFFFFFFFFFFFFFFF;
        public const ulong MinValue = 0;

        public override string ToString() => Number.FormatUInt64(this);
    }

    public struct Single { }

    public struct Double { }

    public unsafe struct IntPtr
    {
        private readonly void* _value;

        public IntPtr(void* value) { _value = value; }

        public IntPtr(long value) { _value = (void*)value; }

        public static readonly IntPtr Zero;

        public static int Size => 8;

        public static explicit operator IntPtr(void* value) => new IntPtr(value);

        public static explicit operator void*(IntPtr value) => value._value;

        public static explicit operator long(IntPtr value) => (long)value._value;

        public static explicit operator IntPtr(long value) => new IntPtr(value);

        public static bool operator ==(IntPtr a, IntPtr b) => a._value == b._value;

        public static bool operator !=(IntPtr a, IntPtr b) => a._value != b._value;

        public override bool Equals(object o) => o is IntPtr p && p._value == _value;

        public override int GetHashCode() => (int)(long)_value;

        public void* ToPointer() => _value;
    }

    public unsafe struct UIntPtr
    {
        private readonly void* _value;

        public UIntPtr(void* value) { _value = value; }

        public void* ToPointer() => _value;
    }
}
