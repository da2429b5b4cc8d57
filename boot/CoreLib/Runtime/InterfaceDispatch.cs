// Interface dispatch resolver, called from the generated stub RhpInitialDynamicInterfaceDispatch
// for every interface call site (no caching). Root-mode code avoids interface dispatch altogether
// (struct-constrained generics); this exists so boot-time code may use interfaces.
// Cell layout (ILC 10, x64): { void* stub; nint interface-MT-or-relptr | flags(2 bits) }, a run of
// cells ends with a cell whose stub is null and whose second word holds the slot number.
using System;
using System.Runtime;

namespace Internal.Runtime.CompilerHelpers
{
    internal static unsafe class InterfaceDispatch
    {
        [RuntimeExport("vigil_resolve_interface")]
        private static IntPtr Resolve(object obj, IntPtr* cell)
        {
            nint cache = (nint)(long)cell[1];
            MethodTable* iface;
            if ((cache & 3) == 3) iface = (MethodTable*)((byte*)&cell[1] + (int)(cache & ~(nint)3));
            else if ((cache & 3) == 1) iface = (MethodTable*)(cache & ~(nint)3);
            else
            {
                FailFast.Fail("unsupported interface dispatch cell");
                return default;
            }
            IntPtr* c = cell;
            while (c[0] != default(IntPtr)) c += 2;
            ushort slot = (ushort)(long)c[1];

            MethodTable* objMT = obj.GetMethodTable();
            for (MethodTable* mt = objMT; mt != null; mt = mt->RelatedType)
            {
                if ((mt->CombinedFlags & MethodTable.HasDispatchMapFlag) == 0) continue;
                int index = IndexOfInterface(mt, iface);
                if (index < 0) continue;
                // Optional fields after the interface map: TypeManager, WritableData, DispatchMap (relative pointers).
                int* optional = (int*)(mt->InterfaceMap + mt->NumInterfaces);
                ushort* map = (ushort*)((byte*)&optional[2] + optional[2]);
                int count = map[0] + map[1];    // standard entries, then default-interface-method entries
                ushort* entry = map + 4;
                for (int i = 0; i < count; i++, entry += 3)
                {
                    if (entry[0] != index || entry[1] != slot) continue;
                    if (i >= map[0] && HasStandardImplementation(objMT, iface, slot)) continue;
                    ushort impl = entry[2];
                    if (impl < mt->NumVtableSlots) return objMT->Vtable[impl];
                    // Sealed vtable: relative pointer after the dispatch map's.
                    int* sealedRel = &optional[3];
                    int* sealedTable = (int*)((byte*)sealedRel + *sealedRel);
                    int k = impl - mt->NumVtableSlots;
                    return (IntPtr)((byte*)&sealedTable[k] + sealedTable[k]);
                }
            }
            FailFast.Fail("interface method implementation not found");
            return default;
        }

        private static int IndexOfInterface(MethodTable* mt, MethodTable* iface)
        {
            MethodTable** map = mt->InterfaceMap;
            for (int i = 0; i < mt->NumInterfaces; i++)
            {
                if (map[i] == iface) return i;
            }
            return -1;
        }

        // A class implementation anywhere in the hierarchy wins over a default interface method.
        private static bool HasStandardImplementation(MethodTable* objMT, MethodTable* iface, ushort slot)
        {
            for (MethodTable* mt = objMT; mt != null; mt = mt->RelatedType)
            {
                if ((mt->CombinedFlags & MethodTable.HasDispatchMapFlag) == 0) continue;
                int index = IndexOfInterface(mt, iface);
                if (index < 0) continue;
                int* optional = (int*)(mt->InterfaceMap + mt->NumInterfaces);
                ushort* map = (ushort*)((byte*)&optional[2] + optional[2]);
                ushort* entry = map + 4;
                for (int i = 0; i < map[0]; i++, entry += 3)
                {
                    if (entry[0] == index && entry[1] == slot) return true;
                }
            }
            return false;
        }
    }
}
