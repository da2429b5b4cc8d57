// The root of the type system. ILC relies on the first field being the MethodTable pointer.
using Internal.Runtime;

namespace System
{
    public unsafe class Object
    {
#pragma warning disable CS0169, CS0649 // written by the allocator, read through GetMethodTable
        internal MethodTable* m_pEEType;
#pragma warning restore CS0169, CS0649

        public Object() { }

        public virtual string ToString() => "System.Object";

        public virtual bool Equals(object o) => (object)this == o;

        public virtual int GetHashCode() => 0;

        internal MethodTable* GetMethodTable() => m_pEEType;
    }

    public abstract class ValueType { }

    public abstract class Enum : ValueType { }

    public struct Void { }

    public class Attribute { }

    public abstract class Type { }

    /// <summary>The JIT asks for this type by name (getBuiltinClass); it is never instantiated.</summary>
    internal sealed class RuntimeType : Type { }

    public struct RuntimeTypeHandle { private IntPtr _value; }

    public struct RuntimeMethodHandle { private IntPtr _value; }

    public struct RuntimeFieldHandle { private IntPtr _value; }

    /// <summary>Exists so that <c>throw</c> compiles. There is no unwinder: throwing is a fail-fast.</summary>
    public class Exception
    {
        public Exception() { }

        public Exception(string message) { }
    }

    public interface IDisposable
    {
        void Dispose();
    }

    public struct Nullable<T> where T : struct
    {
        private readonly bool hasValue;
        internal T value;

        public Nullable(T value)
        {
            hasValue = true;
            this.value = value;
        }

        public readonly bool HasValue => hasValue;

        public readonly T Value
        {
            get
            {
                if (!hasValue) Internal.Runtime.CompilerHelpers.ThrowHelpers.ThrowInvalidOperationException();
                return value;
            }
        }

        public readonly T GetValueOrDefault() => value;

        public static implicit operator Nullable<T>(T value) => new Nullable<T>(value);

        public static explicit operator T(Nullable<T> value) => value.Value;
    }
}

namespace System.Collections
{
    // Roslyn wants these to exist for foreach over arrays (it still lowers to an index loop).
    public interface IEnumerable
    {
        IEnumerator GetEnumerator();
    }

    public interface IEnumerator
    {
        bool MoveNext();

        object Current { get; }
    }
}
