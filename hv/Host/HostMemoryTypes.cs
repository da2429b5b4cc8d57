// The machine's memory types and paging features as the identity maps need them, read once on the BSP
// before any launch (boot services alive, interrupts as the firmware left them): the MTRR snapshot
// (hv/Core/Paging/Mtrr.cs, through PlatformMemory's CPUID checks), NX and 1 GiB page support, MAXPHYADDR. Shared by the
// host CR3 (HostEnvironment) and the back ends' second-level tables, so both see one snapshot.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Host
{
    /// <summary>RDMSR for MtrrSet.Read (only MSRs the CPU has: the callers check CPUID first).</summary>
    internal struct HostMsrReader : IMsrReader
    {
        public readonly ulong Read(uint msr) => Vigil.Platform.Cpu.ReadMsr(msr);
    }

    internal static unsafe class HostMemoryTypes
    {
        private static MtrrSet s_mtrrs;
        private static bool s_read;
        private static bool s_noExecute;
        private static bool s_gigabytePages;
        private static uint s_physicalAddressBits;

        /// <summary>The MTRR snapshot (after <see cref="Initialize"/>).</summary>
        public static ref readonly MtrrSet Mtrrs => ref s_mtrrs;

        /// <summary>CPUID 8000_0001h:EDX.NX: EFER.NXE can be set, so no-execute leaves are valid.</summary>
        public static bool NoExecute => s_noExecute;

        /// <summary>CPUID 8000_0001h:EDX.Page1GB.</summary>
        public static bool GigabytePages => s_gigabytePages;

        /// <summary>MAXPHYADDR (CPUID 8000_0008h EAX[7:0], PoolSize.PhysicalAddressBits): how far the nested maps reach.</summary>
        public static uint PhysicalAddressBits => s_physicalAddressBits;

        /// <summary>Reads everything once (later calls do nothing); false, logged, when the MTRRs cannot be trusted.</summary>
        public static bool Initialize()
        {
            if (s_read) return true;
            s_read = true;
            uint* r = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(0, 0, r);
            bool amd = r[1] == 0x68747541 && r[3] == 0x69746E65 && r[2] == 0x444D4163;   // "AuthenticAMD"
            Vigil.Platform.Cpu.Cpuid(0x8000_0000, 0, r);
            uint maxExtended = r[0];
            if (maxExtended >= 0x8000_0001)
            {
                Vigil.Platform.Cpu.Cpuid(0x8000_0001, 0, r);
                s_noExecute = (r[3] & PlatformMemory.Cpuid80000001EdxNx) != 0;
                s_gigabytePages = (r[3] & PlatformMemory.Cpuid80000001EdxPage1GB) != 0;
            }
            Vigil.Platform.Cpu.Cpuid(0x8000_0008, 0, r);
            s_physicalAddressBits = Vigil.Abi.PoolSize.PhysicalAddressBits(maxExtended, r[0]);
            Vigil.Platform.Cpu.Cpuid(1, 0, r);
            bool tom2 = PlatformMemory.CanReadAmdTopOfMemory2(amd, r[0], r[2]);
            var msrs = new HostMsrReader();
            bool ok = PlatformMemory.ReadMtrrs(ref msrs, r[3], tom2, out s_mtrrs);
            if ((r[3] & PlatformMemory.Cpuid1EdxMtrr) == 0) Hv.Log.Warn("no MTRRs (CPUID.1:EDX.MTRR clear): identity maps are write-back");
            else
            {
                Hv.Log.Info("MTRRs: " + (s_mtrrs.Enabled ? "enabled" : "disabled") + ", default type " + ((int)s_mtrrs.DefaultType).ToString() + ", "
                    + s_mtrrs.VariableCount.ToString() + " variable ranges, fixed ranges " + (s_mtrrs.FixedRangesEnabled ? "on" : "off")
                    + (amd ? (tom2 ? ", SYSCFG/TOP_MEM2 read" : ", SYSCFG/TOP_MEM2 not read (under a hypervisor or an old family)") : ""));
            }
            if (!ok) Hv.Log.Error("the CPU has more variable MTRRs than Vigil keeps: memory types would be wrong");
            return ok;
        }
    }
}
