// EFI_MEMORY_DESCRIPTOR (UEFI 2.10 §7.2 GetMemoryMap). Walk arrays by the DescriptorSize the
// firmware returns, which may exceed sizeof(EFI_MEMORY_DESCRIPTOR).
namespace Vigil.Platform.Uefi
{
    public struct EFI_MEMORY_DESCRIPTOR
    {
        public uint Type;
        public uint Pad;
        public ulong PhysicalStart;
        public ulong VirtualStart;
        public ulong NumberOfPages;
        public ulong Attribute;
    }
}
