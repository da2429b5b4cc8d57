// Segment attributes between a GDT descriptor and the VMCB's packed 12-bit form (APM Vol 2 15.5.1,
// Table B-2 note): VMCB bits 7:0 = descriptor bits 47:40 (type, S, DPL, P), bits 11:8 = descriptor
// bits 55:52 (AVL, L, D/B, G). Used to capture the firmware's segments at launch and to build
// real-mode state for an AP's start-up IPI.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Svm
{
    public static class SegmentAttributes
    {
        public static ushort FromDescriptor(ulong descriptor)
            => (ushort)(((descriptor >> 40) & 0xFF) | (((descriptor >> 52) & 0xF) << 8));

        public static ulong ToDescriptorBits(ushort attributes)
            => (((ulong)attributes & 0xFF) << 40) | ((((ulong)attributes >> 8) & 0xF) << 52);

        /// <summary>Base of a code/data descriptor (bits 63:56, 39:16).</summary>
        public static uint Base(ulong descriptor)
            => (uint)(((descriptor >> 16) & 0xFF_FFFF) | ((descriptor >> 56) << 24));

        /// <summary>Limit in bytes: bits 51:48 and 15:0, scaled by 4 KiB when G is set.</summary>
        public static uint Limit(ulong descriptor)
        {
            uint raw = (uint)((descriptor & 0xFFFF) | (((descriptor >> 48) & 0xF) << 16));
            return (descriptor & (1UL << 55)) != 0 ? (raw << 12) | 0xFFF : raw;
        }

        /// <summary>Present, writable, accessed data segment as real mode and the start-up IPI leave it (type 3, S, P).</summary>
        public const ushort RealModeData = 0x93;

        /// <summary>Present, readable, accessed code segment (type 0xB, S, P).</summary>
        public const ushort RealModeCode = 0x9B;
    }
}
