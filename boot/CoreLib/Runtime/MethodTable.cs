// The part of NativeAOT's MethodTable layout (x64) the helpers below read.
using System;
using System.Runtime.CompilerServices;

namespace Internal.Runtime
{
    public unsafe struct MethodTable
    {
        public const uint HasDispatchMapFlag = 0x00040000;

        public ushort ComponentSize;        // +0 (low half of the flags dword)
        public ushort Flags;                // +2
        public uint BaseSize;               // +4
        public MethodTable* RelatedType;    // +8: base type of a class, element type of an array
        public ushort NumVtableSlots;       // +16
        public ushort NumInterfaces;        // +18
        public uint HashCode;               // +20
        // +24: vtable slots, then the interface map

        public readonly uint CombinedFlags => ComponentSize | ((uint)Flags << 16);

        public IntPtr* Vtable => (IntPtr*)((byte*)Unsafe.AsPointer(ref this) + 24);

        public MethodTable** InterfaceMap => (MethodTable**)((byte*)Unsafe.AsPointer(ref this) + 24 + (NumVtableSlots * 8));
    }
}
