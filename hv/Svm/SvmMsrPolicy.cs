// Which MSR accesses exit under SVM (the MSR permission map, APM Vol 2 15.11) and what the guest sees
// for them (hv/Core/Vcpu/MsrExit and SvmVcpu): everything passes through except what would reveal or reconfigure SVM, the
// x2APIC ICR (INIT/start-up IPIs to virtualized APs, ApStartup) and IA32_PAT, whose guest value lives
// in the VMCB's G_PAT so the host's PAT stays the reset layout the nested entries assume (NptFormat).
// Pure logic: compiled into the hypervisor and the tests.
namespace Vigil.Hypervisor.Svm
{
    public static unsafe class SvmMsrPolicy
    {
        public const uint Pat = 0x277;                  // IA32_PAT (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1)
        public const uint Efer = 0xC000_0080;
        public const uint VmCr = 0xC001_0114;
        public const uint HsavePa = 0xC001_0117;

        /// <summary>Sets the intercepts in a zeroed 8 KiB permission map.</summary>
        public static void Build(byte* map)
        {
            MsrPermissionMap.Intercept(map, Efer, read: true, write: true);        // SVME stays set, hidden
            MsrPermissionMap.Intercept(map, VmCr, read: true, write: true);        // SVM reads as disabled
            MsrPermissionMap.Intercept(map, HsavePa, read: true, write: true);     // the host save area is Vigil's
            MsrPermissionMap.Intercept(map, Core.ApicPage.X2ApicIcrMsr, read: false, write: true);  // INIT/SIPI to APs (x2APIC)
            // With nested paging the guest's PAT is G_PAT (APM Vol 2 15.25.8); QEMU keeps one PAT register for
            // host and guest, so an unintercepted WRMSR would change the host's, and an RDMSR would show it.
            MsrPermissionMap.Intercept(map, Pat, read: true, write: true);
        }

        /// <summary>Each of the eight PAT entries must be 0, 1, 4, 5, 6 or 7, else WRMSR raises #GP (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1).</summary>
        public static bool IsValidPat(ulong value) => Core.Vcpu.MsrExit.IsValidPat(value);
    }
}
