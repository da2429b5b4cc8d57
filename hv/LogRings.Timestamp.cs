// The hypervisor's half of hv/Core/Logging/LogRings.cs: records carry the time stamp counter.
namespace Vigil.Hypervisor.Core
{
    public static partial class LogRings
    {
        static partial void ReadTimestamp(ref ulong tsc) => tsc = Vigil.Platform.Cpu.Rdtsc();
    }
}
