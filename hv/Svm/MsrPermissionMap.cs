// The MSR permission map (APM Vol 2 15.11): 8 KiB, two bits per MSR (bit 2n: intercept RDMSR,
// bit 2n+1: intercept WRMSR) in three 2 KiB vectors: 0000_0000-0000_1FFF at 0x000,
// C000_0000-C000_1FFF at 0x800, C001_0000-C001_1FFF at 0x1000. MSRs outside them always exit.
// The map itself is built from the vendor-neutral table (hv/Core/Msr/MsrPolicy); this reads it.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Svm
{
    public static unsafe class MsrPermissionMap
    {
        public const int Bytes = 8192;

        /// <summary>Bit offset of <paramref name="msr"/>'s read-intercept bit in the map; -1 when the map does not cover it.</summary>
        public static int ReadBit(uint msr) => Core.Msr.MsrPolicy.SvmReadBit(msr);

        /// <summary>Sets the intercept bits for <paramref name="msr"/>; false when the map does not cover it (it always exits).</summary>
        public static bool Intercept(byte* map, uint msr, bool read, bool write)
        {
            int bit = ReadBit(msr);
            if (bit < 0) return false;
            if (read) map[bit >> 3] |= (byte)(1 << (bit & 7));
            if (write) map[(bit + 1) >> 3] |= (byte)(1 << ((bit + 1) & 7));
            return true;
        }

        public static bool IsIntercepted(byte* map, uint msr, bool write)
        {
            int bit = ReadBit(msr);
            if (bit < 0) return true;
            if (write) bit++;
            return (map[bit >> 3] & (1 << (bit & 7))) != 0;
        }
    }
}
