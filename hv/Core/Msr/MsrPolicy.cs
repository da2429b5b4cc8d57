// Which guest RDMSR/WRMSR exit, as one vendor-neutral table, and the two hardware maps generated from
// it: the VMX MSR bitmap (SDM Vol 3C 25.6.9: 4 KiB, read-low at 0, read-high at 1024, write-low at
// 2048, write-high at 3072, one bit per MSR) and the SVM MSR permission map (APM Vol 2 15.11: 8 KiB,
// two bits per MSR). An MSR no rule names passes through: the guest's access runs on the hardware
// with no exit. MSRs outside the maps' ranges exit whatever the map says (VMX: outside 0-1FFF and
// C000_0000-C000_1FFF, SDM Vol 3C 26.1.3; SVM: outside 0-1FFF, C000_0000-C000_1FFF and
// C001_0000-C001_1FFF, APM Vol 2 15.11, e.g. AMD's SMCA banks at C000_2000 and up): an exit of such
// an MSR that no rule intercepts is executed by the host for the guest (GuestMsrAccess), with the
// CPU's own answer, #GP included (HostSafeMsr catches it).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Msr
{
    /// <summary>Which accesses of an MSR exit on purpose.</summary>
    [System.Flags]
    public enum MsrIntercept : byte
    {
        None = 0,
        Read = 1,
        Write = 2,
        ReadWrite = Read | Write,
    }

    /// <summary>One line of the policy: the MSRs [First, Last] on <see cref="Vendors"/> exit for <see cref="Intercept"/>.</summary>
    public readonly struct MsrRule
    {
        public MsrRule(uint first, uint last, MsrVendors vendors, MsrIntercept intercept)
        {
            First = first;
            Last = last;
            Vendors = vendors;
            Intercept = intercept;
        }

        public uint First { get; }

        public uint Last { get; }

        public MsrVendors Vendors { get; }

        public MsrIntercept Intercept { get; }

        public bool Covers(uint msr, Vendor vendor) => msr >= First && msr <= Last && MsrPolicy.Applies(Vendors, vendor);
    }

    /// <summary>The back ends a rule applies to.</summary>
    [System.Flags]
    public enum MsrVendors : byte
    {
        Intel = 1,
        Amd = 2,
        Both = Intel | Amd,
    }

    public static unsafe class MsrPolicy
    {
        public const uint FeatureControl = 0x3A;             // IA32_FEATURE_CONTROL (SDM Vol 4 Table 2-2)
        public const uint FirstVmxCapability = 0x480;        // IA32_VMX_BASIC
        public const uint LastVmxCapability = 0x493;         // IA32_VMX_EXIT_CTLS2
        public const uint Pat = 0x277;                       // IA32_PAT (SDM Vol 3A 11.12.2, APM Vol 2 7.8.1)
        public const uint X2ApicIcr = ApicPage.X2ApicIcrMsr; // 0x830 (SDM Vol 3A 10.12.9)
        public const uint Efer = 0xC000_0080;
        public const uint VmCr = 0xC001_0114;                // APM Vol 2 15.30.1
        public const uint HsavePa = 0xC001_0117;             // APM Vol 2 15.30.4

        public const int VmxBitmapBytes = 4096;
        public const int SvmPermissionMapBytes = 8192;

        /// <summary>The number of rules; <see cref="Rule"/> gives each.</summary>
        public const int RuleCount = 7;

        /// <summary>
        /// The policy. Everything not named here passes through. Why each MSR exits:
        /// 0 IA32_FEATURE_CONTROL, 1 the VMX capability MSRs: the guest sees a CPU without VMX (its CPUID
        ///   says so): FEATURE_CONTROL locked with VMX off, the capability MSRs #GP.
        /// 2 x2APIC ICR writes: INIT and start-up IPIs to virtualized CPUs are caught (hv/Core/Apic/ApStartup).
        /// 3 IA32_PAT on SVM: the guest's PAT is the VMCB's G_PAT (APM Vol 2 15.25.8); the host's stays the
        ///   reset layout the nested entries assume (NptFormat). VMX switches PAT through VMCS fields.
        /// 4 EFER on SVM: SVME must stay set under the guest and reads as clear.
        /// 5 VM_CR, 6 VM_HSAVE_PA: SVM reads as disabled; the host save area is Vigil's.
        /// </summary>
        public static MsrRule Rule(int index) => index switch
        {
            0 => new MsrRule(FeatureControl, FeatureControl, MsrVendors.Intel, MsrIntercept.ReadWrite),
            1 => new MsrRule(FirstVmxCapability, LastVmxCapability, MsrVendors.Intel, MsrIntercept.ReadWrite),
            2 => new MsrRule(X2ApicIcr, X2ApicIcr, MsrVendors.Both, MsrIntercept.Write),
            3 => new MsrRule(Pat, Pat, MsrVendors.Amd, MsrIntercept.ReadWrite),
            4 => new MsrRule(Efer, Efer, MsrVendors.Amd, MsrIntercept.ReadWrite),
            5 => new MsrRule(VmCr, VmCr, MsrVendors.Amd, MsrIntercept.ReadWrite),
            6 => new MsrRule(HsavePa, HsavePa, MsrVendors.Amd, MsrIntercept.ReadWrite),
            _ => default,
        };

        public static bool Applies(MsrVendors vendors, Vendor vendor)
            => (vendor == Vendor.IntelVmx && (vendors & MsrVendors.Intel) != 0) || (vendor == Vendor.AmdSvm && (vendors & MsrVendors.Amd) != 0);

        /// <summary>Whether the policy intercepts this access on purpose (its handler emulates it).</summary>
        public static bool Intercepts(uint msr, bool write, Vendor vendor)
        {
            MsrIntercept wanted = write ? MsrIntercept.Write : MsrIntercept.Read;
            for (int i = 0; i < RuleCount; i++)
            {
                MsrRule rule = Rule(i);
                if (rule.Covers(msr, vendor) && (rule.Intercept & wanted) != 0) return true;
            }
            return false;
        }

        /// <summary>Whether the vendor's map has a bit for the MSR; an MSR outside exits on every access.</summary>
        public static bool InMap(uint msr, Vendor vendor)
        {
            if (msr <= 0x1FFF || (msr >= 0xC000_0000 && msr <= 0xC000_1FFF)) return true;
            return vendor == Vendor.AmdSvm && msr >= 0xC001_0000 && msr <= 0xC001_1FFF;
        }

        /// <summary>
        /// Whether an access that exited is the guest's own to run on the hardware: not intercepted on purpose,
        /// so it exited only because its MSR lies outside the map. The host executes it (GuestMsrAccess).
        /// </summary>
        public static bool IsPassThrough(uint msr, bool write, Vendor vendor) => !Intercepts(msr, write, vendor);

        /// <summary>Fills a zeroed 4 KiB VMX MSR bitmap from the table (SDM Vol 3C 25.6.9).</summary>
        public static void BuildVmxBitmap(byte* bitmap)
        {
            for (int i = 0; i < RuleCount; i++)
            {
                MsrRule rule = Rule(i);
                if (!Applies(rule.Vendors, Vendor.IntelVmx)) continue;
                for (uint msr = rule.First; msr <= rule.Last && msr >= rule.First; msr++)
                {
                    int bit = VmxReadBit(msr);
                    if (bit < 0) continue;   // outside the bitmap: exits anyway
                    if ((rule.Intercept & MsrIntercept.Read) != 0) SetBit(bitmap, bit);
                    if ((rule.Intercept & MsrIntercept.Write) != 0) SetBit(bitmap, bit + (2048 * 8));
                }
            }
        }

        /// <summary>Fills a zeroed 8 KiB SVM MSR permission map from the table (APM Vol 2 15.11).</summary>
        public static void BuildSvmPermissionMap(byte* map)
        {
            for (int i = 0; i < RuleCount; i++)
            {
                MsrRule rule = Rule(i);
                if (!Applies(rule.Vendors, Vendor.AmdSvm)) continue;
                for (uint msr = rule.First; msr <= rule.Last && msr >= rule.First; msr++)
                {
                    int bit = SvmReadBit(msr);
                    if (bit < 0) continue;
                    if ((rule.Intercept & MsrIntercept.Read) != 0) SetBit(map, bit);
                    if ((rule.Intercept & MsrIntercept.Write) != 0) SetBit(map, bit + 1);
                }
            }
        }

        /// <summary>The VMX bitmap's read bit for the MSR (the write bit is 2048 bytes further); -1 outside its ranges.</summary>
        public static int VmxReadBit(uint msr)
        {
            if (msr <= 0x1FFF) return (int)msr;                                           // read-low
            if (msr >= 0xC000_0000 && msr <= 0xC000_1FFF) return (1024 * 8) + (int)(msr & 0x1FFF);   // read-high
            return -1;
        }

        /// <summary>The SVM map's read bit for the MSR (the write bit is the next); -1 outside its three vectors.</summary>
        public static int SvmReadBit(uint msr)
        {
            uint vectorBase;
            if (msr <= 0x1FFF) vectorBase = 0x000;
            else if (msr >= 0xC000_0000 && msr <= 0xC000_1FFF) vectorBase = 0x800;
            else if (msr >= 0xC001_0000 && msr <= 0xC001_1FFF) vectorBase = 0x1000;
            else return -1;
            return (int)((vectorBase * 8) + ((msr & 0x1FFF) * 2));
        }

        private static void SetBit(byte* map, int bit) => map[bit >> 3] |= (byte)(1 << (bit & 7));
    }
}
