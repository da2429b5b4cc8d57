// Root mode (any CPU, on the exit path): guest-physical memory as the host sees it, through the host's
// identity map (hv/Host, NestedMap<HostFormat>), so an address is a pointer. The map ends at the top
// of the memory map (device memory above it, e.g. 64-bit PCI BARs, is mapped for the guest only), and
// the hypervisor's reservation must never be read or written for the guest: both are the bounds set
// once by Initialize (BSP, before any launch). Until then nothing is reachable.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core
{
    public unsafe struct HostPhysicalMemory : IPhysicalMemory
    {
        private static PhysicalBounds s_bounds;

        /// <summary>The end of the host's identity map and the hypervisor's reservation.</summary>
        public static void Initialize(ulong hostMapLimit, ulong reservedBase, ulong reservedSize)
            => s_bounds = new PhysicalBounds(hostMapLimit, reservedBase, reservedSize);

        // The walks call these for every entry: inlined (the ILC's inliner leaves even one-line accessors out of long methods).
        public readonly PhysicalBounds Bounds
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => s_bounds;
        }

        public readonly ulong ReadUInt64(ulong address) => *(ulong*)address;

        public readonly void WriteByte(ulong address, byte value) => *(byte*)address = value;

        public readonly void WriteUInt64(ulong address, ulong value) => *(ulong*)address = value;
    }
}
