// ILC calls these by name where generated code would throw. Without an unwinder every one
// of them is a fail-fast that names the exception.
using System;
using System.Runtime;
using Internal.Runtime;

namespace Internal.Runtime.CompilerHelpers
{
    internal static class ThrowHelpers
    {
        public static void ThrowFeatureBodyRemoved() => FailFast.Fail("FeatureBodyRemoved");
        public static void ThrowNullReferenceException() => FailFast.Fail("NullReferenceException");
        public static void ThrowIndexOutOfRangeException() => FailFast.Fail("IndexOutOfRangeException");
        public static void ThrowOverflowException() => FailFast.Fail("OverflowException");
        public static void ThrowDivideByZeroException() => FailFast.Fail("DivideByZeroException");
        public static void ThrowArgumentOutOfRangeException() => FailFast.Fail("ArgumentOutOfRangeException");
        public static void ThrowArgumentException() => FailFast.Fail("ArgumentException");
        public static void ThrowInvalidOperationException() => FailFast.Fail("InvalidOperationException");
        public static void ThrowPlatformNotSupportedException() => FailFast.Fail("PlatformNotSupportedException");
        public static void ThrowNotImplementedException() => FailFast.Fail("NotImplementedException");
        public static void ThrowInvalidProgramException() => FailFast.Fail("InvalidProgramException");
        public static void ThrowInvalidProgramExceptionWithArgument() => FailFast.Fail("InvalidProgramException");
        public static void ThrowTypeLoadException() => FailFast.Fail("TypeLoadException");
        public static void ThrowTypeLoadExceptionWithArgument() => FailFast.Fail("TypeLoadException");
        public static void ThrowMissingMethodException() => FailFast.Fail("MissingMethodException");
        public static void ThrowMissingFieldException() => FailFast.Fail("MissingFieldException");
        public static void ThrowFileNotFoundException() => FailFast.Fail("FileNotFoundException");
        public static void ThrowInvalidCastException() => FailFast.Fail("InvalidCastException");
        public static void ThrowArrayTypeMismatchException() => FailFast.Fail("ArrayTypeMismatchException");
        public static void ThrowBadImageFormatException() => FailFast.Fail("BadImageFormatException");
        public static void ThrowMarshalDirectiveException() => FailFast.Fail("MarshalDirectiveException");
        public static void ThrowAmbiguousMatchException() => FailFast.Fail("AmbiguousMatchException");
    }

    /// <summary>Transition frames mean nothing without a GC; throw is a fail-fast.</summary>
    internal static class TransitionHelpers
    {
        [RuntimeExport("RhpPInvoke")] private static void RhpPInvoke(IntPtr frame) { }
        [RuntimeExport("RhpPInvokeReturn")] private static void RhpPInvokeReturn(IntPtr frame) { }
        [RuntimeExport("RhpReversePInvoke")] private static void RhpReversePInvoke(IntPtr frame) { }
        [RuntimeExport("RhpReversePInvokeReturn")] private static void RhpReversePInvokeReturn(IntPtr frame) { }
        [RuntimeExport("RhpGcPoll")] private static void RhpGcPoll() { }
        [RuntimeExport("RhpThrowEx")] private static void RhpThrowEx(object exception) => FailFast.Fail("exception thrown (there is no exception handling: throw is fatal)");
        [RuntimeExport("RhpRethrow")] private static void RhpRethrow() => FailFast.Fail("exception rethrown (there is no exception handling)");
        [RuntimeExport("RhpFallbackFailFast")] private static void RhpFallbackFailFast() => FailFast.Fail("runtime fail-fast (stack cookie or internal check)");
    }
}
