// Which MSR accesses exit (the MSR bitmap, SDM Vol 3C 25.6.9) and what the guest sees for them.
// Everything passes through except what would reveal or reconfigure VMX: IA32_FEATURE_CONTROL and
// the VMX capability MSRs (the guest's CPUID says it has no VMX); writes of the x2APIC ICR exit too,
// for the INIT and start-up IPIs to virtualized APs (hv/Core/ApStartup). MSRs outside the bitmap's two
// ranges always exit (SDM Vol 3C 26.1.3). Pure logic: compiled into the hypervisor and the tests.
namespace Vigil.Hypervisor.Vmx
{
    public static unsafe class VmxMsrPolicy
    {
        public const uint FeatureControl = 0x3A;
        public const uint FirstVmxCapability = 0x480;
        public const uint LastVmxCapability = 0x493;

        /// <summary>Fills a zeroed 4 KiB bitmap: read-low at 0, read-high at 1024, write-low at 2048, write-high at 3072.</summary>
        public static void BuildBitmap(byte* bitmap)
        {
            Set(bitmap, 0, FeatureControl);
            Set(bitmap, 2048, FeatureControl);
            for (uint msr = FirstVmxCapability; msr <= LastVmxCapability; msr++)
            {
                Set(bitmap, 0, msr);
                Set(bitmap, 2048, msr);
            }
            Set(bitmap, 2048, Core.ApicPage.X2ApicIcrMsr);
        }

        private static void Set(byte* bitmap, int area, uint msr) => bitmap[area + (int)(msr >> 3)] |= (byte)(1 << (int)(msr & 7));

        /// <summary>True when the guest's RDMSR of <paramref name="msr"/> gets #GP, as on a CPU without VMX.</summary>
        public static bool ReadFaults(uint msr) => !InBitmapRange(msr) || (msr >= FirstVmxCapability && msr <= LastVmxCapability);

        /// <summary>The guest's view of IA32_FEATURE_CONTROL: locked, VMX bits clear.</summary>
        public static ulong FeatureControlView(ulong hardware) => (hardware | 1) & ~0x6UL;

        public static bool InBitmapRange(uint msr) => msr <= 0x1FFF || (msr >= 0xC000_0000 && msr <= 0xC000_1FFF);
    }
}
