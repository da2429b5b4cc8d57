// Physical memory as the host sees it: identity-mapped, so an address is a pointer.
namespace Vigil.Hypervisor.Core
{
    public unsafe struct HostPhysicalMemory : IPhysicalMemory
    {
        public readonly ulong ReadUInt64(ulong address) => *(ulong*)address;

        public readonly void WriteByte(ulong address, byte value) => *(byte*)address = value;
    }
}
