// Cast checks and reference-array element access ILC roots by name. Classes walk the parent
// chain; interfaces scan interface maps. No array covariance checks.
using System;
using System.Runtime.CompilerServices;
using Internal.Runtime;
using Internal.Runtime.CompilerHelpers;

namespace System.Runtime
{
    internal static unsafe class TypeCast
    {
        private static bool IsClassOf(MethodTable* mt, MethodTable* target)
        {
            for (; mt != null; mt = mt->RelatedType)
            {
                if (mt == target) return true;
            }
            return false;
        }

        private static bool ImplementsInterface(MethodTable* mt, MethodTable* iface)
        {
            for (; mt != null; mt = mt->RelatedType)
            {
                MethodTable** map = mt->InterfaceMap;
                for (int i = 0; i < mt->NumInterfaces; i++)
                {
                    if (map[i] == iface) return true;
                }
            }
            return false;
        }

        private static object IsInstanceOfClass(MethodTable* t, object o) => o == null || IsClassOf(o.GetMethodTable(), t) ? o : null;

        private static object IsInstanceOfInterface(MethodTable* t, object o) => o == null || ImplementsInterface(o.GetMethodTable(), t) ? o : null;

        private static object IsInstanceOfAny(MethodTable* t, object o)
            => o == null || IsClassOf(o.GetMethodTable(), t) || ImplementsInterface(o.GetMethodTable(), t) ? o : null;

        private static object IsInstanceOfException(MethodTable* t, object o) => IsInstanceOfAny(t, o);

        private static object CheckCastClass(MethodTable* t, object o)
        {
            if (o != null && IsInstanceOfClass(t, o) == null) ThrowHelpers.ThrowInvalidCastException();
            return o;
        }

        private static object CheckCastClassSpecial(MethodTable* t, object o) => CheckCastClass(t, o);

        private static object CheckCastInterface(MethodTable* t, object o)
        {
            if (o != null && IsInstanceOfInterface(t, o) == null) ThrowHelpers.ThrowInvalidCastException();
            return o;
        }

        private static object CheckCastAny(MethodTable* t, object o)
        {
            if (o != null && IsInstanceOfAny(t, o) == null) ThrowHelpers.ThrowInvalidCastException();
            return o;
        }

        private static void StelemRef(object[] array, nint index, object obj)
        {
            if ((nuint)index >= (nuint)array.Length) ThrowHelpers.ThrowIndexOutOfRangeException();
            ref byte data = ref Unsafe.As<RawArrayData>(array).Data;
            Unsafe.As<byte, object>(ref Unsafe.Add(ref data, index * 8)) = obj;
        }

        private static ref object LdelemaRef(object[] array, nint index, MethodTable* elementType)
        {
            if ((nuint)index >= (nuint)array.Length) ThrowHelpers.ThrowIndexOutOfRangeException();
            ref byte data = ref Unsafe.As<RawArrayData>(array).Data;
            return ref Unsafe.As<byte, object>(ref Unsafe.Add(ref data, index * 8));
        }
    }
}
