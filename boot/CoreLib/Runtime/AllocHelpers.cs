// Object and array allocation helpers ILC-generated code calls by symbol name.
using System;
using System.Runtime;
using System.Runtime.CompilerServices;

namespace Internal.Runtime.CompilerHelpers
{
    internal static unsafe class AllocHelpers
    {
        [RuntimeExport("RhpNewFast")]
        internal static object RhpNewFast(MethodTable* mt)
        {
            void* p = Heap.Allocate(mt->BaseSize);
            *(MethodTable**)p = mt;
            return Unsafe.As<IntPtr, object>(ref *(IntPtr*)&p);
        }

        [RuntimeExport("RhpNewArray")]
        internal static object RhpNewArray(MethodTable* mt, int length)
        {
            if (length < 0) ThrowHelpers.ThrowOverflowException();
            ulong size = mt->BaseSize + ((ulong)length * mt->ComponentSize);
            void* p = Heap.Allocate(size);
            *(MethodTable**)p = mt;
            *(int*)((byte*)p + 8) = length;
            return Unsafe.As<IntPtr, object>(ref *(IntPtr*)&p);
        }

        [RuntimeExport("RhpNewArrayFast")]
        internal static object RhpNewArrayFast(MethodTable* mt, int length) => RhpNewArray(mt, length);

        [RuntimeExport("RhpNewPtrArrayFast")]
        internal static object RhpNewPtrArrayFast(MethodTable* mt, int length) => RhpNewArray(mt, length);
    }

    /// <summary>Multi-dimensional arrays: [MT][int total][pad][int bounds[rank]][int lowerBounds[rank]][data].</summary>
    internal static unsafe class ArrayHelpers
    {
        public static object NewObjArray(MethodTable* mt, int nDimensions, int* pDimensions)
        {
            int total = 1;
            for (int i = 0; i < nDimensions; i++)
            {
                if (pDimensions[i] < 0) ThrowHelpers.ThrowOverflowException();
                total *= pDimensions[i];
            }
            object o = AllocHelpers.RhpNewArray(mt, total);
            int* bounds = (int*)(*(byte**)Unsafe.AsPointer(ref o) + 16);
            for (int i = 0; i < nDimensions; i++) bounds[i] = pDimensions[i];
            return o;
        }

        public static object NewObjArrayRare(MethodTable* mt, int nDimensions, int* pDimensions) => NewObjArray(mt, nDimensions, pDimensions);
    }

    /// <summary>ldtoken support: the IL still carries ldtoken where the JIT expands InitializeArray.</summary>
    internal static class LdTokenHelpers
    {
        private static RuntimeTypeHandle GetRuntimeTypeHandle(IntPtr pEEType) => default;
        private static RuntimeMethodHandle GetRuntimeMethodHandle(IntPtr pHandleSignature) => default;
        private static RuntimeFieldHandle GetRuntimeFieldHandle(IntPtr pHandleSignature) => default;
        private static Type GetRuntimeType(IntPtr pEEType) => null;
    }
}

namespace System.Runtime
{
    using Internal.Runtime;
    using Internal.Runtime.CompilerHelpers;

    /// <summary>Boxing and allocation entry points ILC binds by name.</summary>
    internal static unsafe class RuntimeExports
    {
        public static object RhBox(MethodTable* mt, ref byte data)
        {
            object o = AllocHelpers.RhpNewFast(mt);
            byte* destination = *(byte**)Unsafe.AsPointer(ref o) + 8;
            byte* source = (byte*)Unsafe.AsPointer(ref data);
            ulong n = mt->BaseSize - 16;
            for (ulong i = 0; i < n; i++) destination[i] = source[i];
            return o;
        }

        public static ref byte RhUnbox2(MethodTable* mt, object obj)
        {
            if (obj == null || obj.GetMethodTable() != mt) ThrowHelpers.ThrowInvalidCastException();
            return ref Unsafe.As<RawData>(obj).Data;
        }

        public static void RhUnboxNullable(ref byte data, MethodTable* mt, object obj)
            => FailFast.Fail("unboxing to Nullable<T> is not supported");

        public static object RhNewObject(MethodTable* mt) => AllocHelpers.RhpNewFast(mt);

        public static object RhNewArray(MethodTable* mt, int length) => AllocHelpers.RhpNewArray(mt, length);

        public static object RhNewVariableSizeObject(MethodTable* mt, int length) => AllocHelpers.RhpNewArray(mt, length);
    }

    internal sealed class RawData
    {
#pragma warning disable CS0649 // layout only
        public byte Data;
#pragma warning restore CS0649
    }
}
