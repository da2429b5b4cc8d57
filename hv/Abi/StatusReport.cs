// The Status hypercall's output, written into a guest buffer. Blittable, fixed layout (tests check it).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vigil.Abi
{
    public enum Vendor : uint
    {
        None = 0,
        IntelVmx = 1,
        AmdSvm = 2,
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct CpuStatus
    {
        /// <summary>Local APIC ID of the CPU.</summary>
        public uint ApicId;

        /// <summary>1 when this CPU runs under the hypervisor.</summary>
        public uint Virtualized;

        public ulong TotalExits;

        /// <summary>Exits per <see cref="ExitReason"/>.</summary>
        public fixed ulong Exits[ExitReasons.Count];
    }

    [InlineArray(StatusReport.MaxCpus)]
    public struct CpuStatusArray
    {
        private CpuStatus _element0;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct StatusReport
    {
        /// <summary>"VIGILSTS" as little-endian bytes.</summary>
        public const ulong ExpectedSignature = 0x5354_534C_4947_4956;
        public const int MaxCpus = 64;

        public ulong Signature;
        public uint Version;
        public Vendor Vendor;
        public uint CpuCount;
        public uint VirtualizedCount;

        /// <summary>Bytes of physical memory the hypervisor reserved (image, tables, stacks, logs).</summary>
        public ulong ReservedBytes;

        /// <summary>Physical address of that reservation (tests check the guest cannot read it).</summary>
        public ulong ReservedBase;

        public CpuStatusArray Cpus;
    }
}
