// The hand-over from vigil.efi (the loader, UEFI boot services) to the hypervisor image it placed
// in reserved memory. Lives in that reserved memory too, so the hypervisor may keep it.
// Compiled into vigil.efi and the hypervisor (no runtime), and into the tests (layout).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vigil.Abi
{
    /// <summary>One range of the firmware's memory map (UEFI memory descriptor, condensed).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PhysicalRange
    {
        public ulong Base;
        public ulong Pages;

        /// <summary>EFI_MEMORY_TYPE of the range.</summary>
        public uint Type;

        public uint Reserved;

        /// <summary>EFI memory attributes (UC, WC, WT, WB, ... capability bits).</summary>
        public ulong Attributes;
    }

    [InlineArray(LaunchParameters.MaxCpus)]
    public struct ApicIdArray
    {
        private uint _element0;
    }

    [InlineArray(LaunchParameters.MaxCpus)]
    public struct LaunchStatusArray
    {
        private LaunchStatus _element0;
    }

    [InlineArray(LaunchParameters.MessageLength)]
    public struct MessageText
    {
        private char _element0;
    }

    [InlineArray(LaunchParameters.PolicyNameLength)]
    public struct PolicyNameText
    {
        private char _element0;
    }

    /// <summary>What vigil.efi found at the policy path of vigil.conf (hv/Abi/StatusReport.cs PolicyOrigin says what is in force).</summary>
    public enum LaunchPolicyState : uint
    {
        /// <summary>vigil.conf says `policy = built-in`: the built-in rules, on purpose.</summary>
        NotConfigured = 0,

        /// <summary>The file was read and validated by the loader: <see cref="LaunchParameters.PolicyImage"/> holds it.</summary>
        Loaded = 1,

        /// <summary>No file at the path (or it could not be read): the built-in rules; the reason is in PolicyMessage.</summary>
        Missing = 2,

        /// <summary>The file is not a valid compiled policy: the built-in rules; the reason is in PolicyMessage.</summary>
        Rejected = 3,
    }

    /// <summary>Result of starting the hypervisor on one CPU.</summary>
    public enum LaunchStatus : uint
    {
        Virtualized = 0,
        NotSupported = 1,
        DisabledByFirmware = 2,
        AlreadyInUse = 3,
        LaunchFailed = 4,
        OutOfMemory = 5,
        BadParameters = 6,
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct LaunchParameters
    {
        /// <summary>"VIGILLNC" as little-endian bytes.</summary>
        public const ulong ExpectedSignature = 0x434E_4C4C_4947_4956;
        public const uint CurrentVersion = 2;
        public const int MaxCpus = 64;
        public const int MessageLength = 256;
        public const int PolicyNameLength = 64;

        /// <summary>The largest compiled policy vigil.efi hands over.</summary>
        public const int MaxPolicyBytes = PolicyStatus.MaxImageBytes;

        public ulong Signature;
        public uint Version;
        public uint Size;

        // --- filled in by the loader ---

        /// <summary>The whole reservation (EfiReservedMemoryType): image, heap, page pool.</summary>
        public ulong ReservedBase;
        public ulong ReservedSize;

        public ulong ImageBase;
        public ulong ImageSize;

        /// <summary>The core library's object heap.</summary>
        public ulong HeapBase;
        public ulong HeapSize;

        /// <summary>4 KiB pages for tables, control blocks, stacks and logs.</summary>
        public ulong PoolBase;
        public ulong PoolSize;

        /// <summary>Firmware memory map at hand-over (after the reservation was made).</summary>
        public PhysicalRange* MemoryMap;
        public uint MemoryMapCount;

        /// <summary>UART base for the hypervisor's log; 0 = none.</summary>
        public ushort LogPort;
        public ushort Padding0;

        public uint CpuCount;
        public uint BspIndex;
        public ApicIdArray ApicIds;

        // --- filled in by the hypervisor's entry point ---

        public Vendor Vendor;
        public LaunchStatus Status;

        /// <summary>Why the hypervisor cannot run (NUL-terminated), when <see cref="Status"/> is not Virtualized.</summary>
        public MessageText Message;

        /// <summary>Virtualizes the calling CPU (index into <see cref="ApicIds"/>); call on every CPU, BSP last.</summary>
        public delegate* unmanaged<uint, LaunchStatus> LaunchCpu;

        /// <summary>What LaunchCpu returned on each CPU (written by the loader).</summary>
        public LaunchStatusArray Results;

        // --- the policy (filled in by the loader; the hypervisor copies and validates it again in its entry point) ---

        /// <summary>Physical address of the compiled policy in loader memory (0: none), and its size.</summary>
        public ulong PolicyImage;

        public uint PolicyImageSize;

        public LaunchPolicyState PolicyState;

        /// <summary>The policy path of vigil.conf (NUL-terminated, cut to fit).</summary>
        public PolicyNameText PolicyName;

        /// <summary>Why the loader did not hand the file over (NUL-terminated), when PolicyState is Missing or Rejected.</summary>
        public MessageText PolicyMessage;
    }
}
