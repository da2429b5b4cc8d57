// Segment registers in the VMCS format: base, limit and access rights from a GDT/LDT descriptor
// (SDM Vol 3A 3.4.5 descriptor layout; SDM Vol 3C 25.4.1, Table 25-2 access-rights format).
// Pure logic over the descriptor bytes: compiled into the hypervisor and into the tests.
namespace Vigil.Hypervisor.Vmx
{
    public struct SegmentState
    {
        public ushort Selector;
        public ulong Base;
        public uint Limit;
        public uint AccessRights;
    }

    public static unsafe class SegmentAccessRights
    {
        /// <summary>Access-rights bit 16: the segment is unusable (SDM Vol 3C 25.4.1).</summary>
        public const uint Unusable = 1u << 16;

        /// <summary>
        /// The VMCS access-rights field of a descriptor: bits 7:0 are descriptor bits 47:40 (type, S, DPL, P),
        /// bits 15:12 are descriptor bits 55:52 (AVL, L, D/B, G), bits 11:8 are reserved (0).
        /// </summary>
        public static uint FromDescriptor(ulong descriptor)
            => (uint)((descriptor >> 40) & 0xFF) | (uint)(((descriptor >> 52) & 0xF) << 12);

        /// <summary>The byte-granular limit: descriptor bits 15:0 and 51:48, scaled by 4 KiB when G is set.</summary>
        public static uint Limit(ulong descriptor)
        {
            uint limit = (uint)(descriptor & 0xFFFF) | (uint)((descriptor >> 32) & 0xF_0000);
            return (descriptor & (1UL << 55)) != 0 ? (limit << 12) | 0xFFF : limit;
        }

        /// <summary>The base: descriptor bits 39:16 and 63:56 (plus bits 95:64 of a 16-byte system descriptor, SDM Vol 3A 8.2.3).</summary>
        public static ulong Base(ulong descriptor, ulong upper, bool system16Bytes)
        {
            ulong b = ((descriptor >> 16) & 0xFF_FFFF) | (((descriptor >> 56) & 0xFF) << 24);
            if (system16Bytes) b |= (upper & 0xFFFF_FFFF) << 32;
            return b;
        }

        /// <summary>
        /// The segment a selector names in the table at <paramref name="gdtBase"/>: a null selector (or one beyond the
        /// limit, or in an LDT) is unusable; system descriptors (S = 0: TSS, LDT) are 16 bytes in IA-32e mode.
        /// </summary>
        public static SegmentState FromGdt(byte* gdtBase, uint gdtLimit, ushort selector)
        {
            var s = new SegmentState { Selector = selector };
            uint index = (uint)(selector & ~7);
            if (index == 0 || (selector & 4) != 0 || index + 7 > gdtLimit)
            {
                s.AccessRights = Unusable;
                return s;
            }
            ulong descriptor = *(ulong*)(gdtBase + index);
            bool system = (descriptor & (1UL << 44)) == 0;
            ulong upper = system && index + 15 <= gdtLimit ? *(ulong*)(gdtBase + index + 8) : 0;
            s.Base = Base(descriptor, upper, system);
            s.Limit = Limit(descriptor);
            s.AccessRights = FromDescriptor(descriptor);
            if ((s.AccessRights & 0x80) == 0) s.AccessRights |= Unusable;   // not present
            return s;
        }
    }
}
