// Types the C# compiler requires by name, and the Unsafe intrinsics (ILC supplies their bodies).
namespace System.Runtime.CompilerServices
{
    public static class RuntimeFeature
    {
        public const string UnmanagedSignatureCallingConvention = nameof(UnmanagedSignatureCallingConvention);
        public const string DefaultImplementationsOfInterfaces = nameof(DefaultImplementationsOfInterfaces);
        public const string ByRefFields = nameof(ByRefFields);
        public const string NumericIntPtr = nameof(NumericIntPtr);
        public const string VirtualStaticsInInterfaces = nameof(VirtualStaticsInInterfaces);
    }

    public static class RuntimeHelpers
    {
        public static unsafe int OffsetToStringData => sizeof(IntPtr) + sizeof(int);

        [Intrinsic]
        public static void InitializeArray(Array array, RuntimeFieldHandle fldHandle) => throw null;
    }

    /// <summary>Bodies are never run: ILC replaces every call with IL.</summary>
    public static unsafe class Unsafe
    {
        [Intrinsic] public static void* AsPointer<T>(ref T value) => throw null;
        [Intrinsic] public static ref T AsRef<T>(void* source) => throw null;
        [Intrinsic] public static ref T AsRef<T>(ref readonly T source) => throw null;
        [Intrinsic] public static T As<T>(object o) where T : class => throw null;
        [Intrinsic] public static ref TTo As<TFrom, TTo>(ref TFrom source) => throw null;
        [Intrinsic] public static ref T Add<T>(ref T source, int elementOffset) => throw null;
        [Intrinsic] public static ref T Add<T>(ref T source, nint elementOffset) => throw null;
        [Intrinsic] public static ref T AddByteOffset<T>(ref T source, nint byteOffset) => throw null;
        [Intrinsic] public static int SizeOf<T>() => throw null;
        [Intrinsic] public static T ReadUnaligned<T>(void* source) => throw null;
        [Intrinsic] public static void WriteUnaligned<T>(void* destination, T value) => throw null;
    }

    public sealed class IntrinsicAttribute : Attribute { }

    public sealed class InterpolatedStringHandlerAttribute : Attribute { }

    /// <summary>Enough for C# string interpolation: literals, strings and anything with ToString().</summary>
    [InterpolatedStringHandler]
    public ref struct DefaultInterpolatedStringHandler
    {
        private string _text;

        public DefaultInterpolatedStringHandler(int literalLength, int formattedCount) { _text = ""; }

        public void AppendLiteral(string value) { _text = string.Concat(_text, value); }

        public void AppendFormatted(string value) { _text = string.Concat(_text, value); }

        public void AppendFormatted<T>(T value)
        {
            if (value != null) _text = string.Concat(_text, value.ToString());
        }

        public string ToStringAndClear()
        {
            string s = _text;
            _text = "";
            return s;
        }
    }

    public sealed class IsVolatile { }
    public sealed class IsByRefLikeAttribute : Attribute { }
    public sealed class IsReadOnlyAttribute : Attribute { }
    public sealed class IsUnmanagedAttribute : Attribute { }
    public sealed class IsExternalInit { }
    public sealed class ScopedRefAttribute : Attribute { }
    public sealed class RequiresLocationAttribute : Attribute { }
    public sealed class ExtensionAttribute : Attribute { }
    public sealed class CompilerGeneratedAttribute : Attribute { }
    public sealed class ModuleInitializerAttribute : Attribute { }
    public sealed class UnsafeValueTypeAttribute : Attribute { }
    public sealed class SkipLocalsInitAttribute : Attribute { }

    public sealed class RefSafetyRulesAttribute : Attribute
    {
        public RefSafetyRulesAttribute(int version) { }
    }

    public sealed class NullableAttribute : Attribute
    {
        public NullableAttribute(byte value) { }

        public NullableAttribute(byte[] value) { }
    }

    public sealed class NullableContextAttribute : Attribute
    {
        public NullableContextAttribute(byte value) { }
    }

    public sealed class IndexerNameAttribute : Attribute
    {
        public IndexerNameAttribute(string indexerName) { }
    }

    public sealed class InlineArrayAttribute : Attribute
    {
        public InlineArrayAttribute(int length) { }
    }

    public sealed class FixedBufferAttribute : Attribute
    {
        public FixedBufferAttribute(Type elementType, int length) { }
    }

    public sealed class CallerFilePathAttribute : Attribute { }

    public sealed class CallerLineNumberAttribute : Attribute { }

    public sealed class CallerMemberNameAttribute : Attribute { }

    public enum MethodImplOptions
    {
        Unmanaged = 4, NoInlining = 8, ForwardRef = 16, Synchronized = 32, NoOptimization = 64,
        PreserveSig = 128, AggressiveInlining = 256, AggressiveOptimization = 512, InternalCall = 4096,
    }

    public sealed class MethodImplAttribute : Attribute
    {
        public MethodImplAttribute(MethodImplOptions methodImplOptions) { }
    }

    public static class CallConvCdecl { }

    public static class CallConvStdcall { }

    public static class CallConvSuppressGCTransition { }
}

namespace System.Runtime
{
    /// <summary>Exposes a managed method under a fixed symbol name (runtime helpers).</summary>
    internal sealed class RuntimeExportAttribute : Attribute
    {
        public RuntimeExportAttribute(string entry) { }
    }

    /// <summary>Binds an extern method to a native symbol, called without any transition.</summary>
    public sealed class RuntimeImportAttribute : Attribute
    {
        public RuntimeImportAttribute(string entry) { }

        public RuntimeImportAttribute(string dllName, string entry) { }
    }
}

namespace System.Runtime.InteropServices
{
    public enum LayoutKind
    {
        Sequential = 0,
        Explicit = 2,
        Auto = 3,
    }

    public sealed class StructLayoutAttribute : Attribute
    {
        public StructLayoutAttribute(LayoutKind layoutKind) { }

        public int Pack;
        public int Size;
    }

    public sealed class FieldOffsetAttribute : Attribute
    {
        public FieldOffsetAttribute(int offset) { }
    }

    public sealed class UnmanagedCallersOnlyAttribute : Attribute
    {
        public UnmanagedCallersOnlyAttribute() { }

        public Type[] CallConvs;
        public string EntryPoint;
    }

    public sealed class DllImportAttribute : Attribute
    {
        public DllImportAttribute(string dllName) { }

        public string EntryPoint;
        public bool ExactSpelling;
        public CallingConvention CallingConvention;
    }

    public enum CallingConvention
    {
        Winapi = 1,
        Cdecl = 2,
        StdCall = 3,
    }

    public sealed class SuppressGCTransitionAttribute : Attribute { }

    public sealed class InAttribute : Attribute { }

    public sealed class OutAttribute : Attribute { }

    public sealed class PreserveSigAttribute : Attribute { }

    public static class MemoryMarshal
    {
        public static Span<T> CreateSpan<T>(ref T reference, int length) => new Span<T>(ref reference, length);

        public static ReadOnlySpan<T> CreateReadOnlySpan<T>(ref readonly T reference, int length)
            => new ReadOnlySpan<T>(ref System.Runtime.CompilerServices.Unsafe.AsRef(in reference), length);

        public static ref T GetReference<T>(Span<T> span) => ref span._reference;
    }

    /// <summary>Required by ILC's scanner (body substitution target); never called.</summary>
    public interface IDynamicInterfaceCastable
    {
        internal static IntPtr GetDynamicInterfaceImplementation(object instance, IntPtr interfaceType, ushort slot) => default;
    }
}

namespace System.Threading
{
    /// <summary>One thread per image: <c>lock</c> compiles to these no-ops.</summary>
    public static class Monitor
    {
        public static void Enter(object obj, ref bool lockTaken) { lockTaken = true; }

        public static void Enter(object obj) { }

        public static void Exit(object obj) { }
    }
}
