// The vendor-neutral MSR policy (hv/Core/Msr): the table generates the VMX MSR bitmap and the SVM MSR
// permission map bit for bit; MSRs outside the maps' ranges exit and are executed for the guest, with
// the CPU's #GP reflected (GuestMsrAccess, with a fake CPU).
using System.Collections.Generic;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Msr;
using Xunit;

namespace Vigil.Tests.Hypervisor;

public sealed unsafe class MsrPolicyTests
{
    private static byte[] VmxBitmap()
    {
        var bitmap = new byte[MsrPolicy.VmxBitmapBytes];
        fixed (byte* b = bitmap) MsrPolicy.BuildVmxBitmap(b);
        return bitmap;
    }

    private static byte[] SvmMap()
    {
        var map = new byte[MsrPolicy.SvmPermissionMapBytes];
        fixed (byte* m = map) MsrPolicy.BuildSvmPermissionMap(m);
        return map;
    }

    private static bool Bit(byte[] map, int bit) => (map[bit >> 3] & (1 << (bit & 7))) != 0;

    [Fact]
    public void Every_bit_of_the_vmx_bitmap_is_what_the_table_says()
    {
        // SDM Vol 3C 25.6.9: read-low (0-1FFF) at byte 0, read-high (C000_0000-C000_1FFF) at 1024,
        // write-low at 2048, write-high at 3072; one bit per MSR.
        byte[] bitmap = VmxBitmap();
        int set = 0;
        for (int bit = 0; bit < MsrPolicy.VmxBitmapBytes * 8; bit++)
        {
            int area = bit / (1024 * 8);
            uint msr = (uint)(bit % (1024 * 8)) + ((area & 1) != 0 ? 0xC000_0000u : 0);
            bool write = area >= 2;
            Assert.True(MsrPolicy.Intercepts(msr, write, Vendor.IntelVmx) == Bit(bitmap, bit), $"VMX bitmap bit {bit}: MSR 0x{msr:X} {(write ? "write" : "read")}");
            if (Bit(bitmap, bit)) set++;
        }
        // FEATURE_CONTROL and the 20 VMX capability MSRs read and write, the x2APIC ICR write: nothing else.
        Assert.Equal((2 * 21) + 1, set);
    }

    [Fact]
    public void Every_bit_of_the_svm_permission_map_is_what_the_table_says()
    {
        // APM Vol 2 15.11: three 2 KiB vectors (0-1FFF, C000_0000-C000_1FFF, C001_0000-C001_1FFF), two bits per
        // MSR (read, write); the fourth 2 KiB is reserved and stays clear.
        byte[] map = SvmMap();
        uint[] bases = [0, 0xC000_0000, 0xC001_0000];
        int set = 0;
        for (int bit = 0; bit < MsrPolicy.SvmPermissionMapBytes * 8; bit++)
        {
            int vector = bit / (0x800 * 8);
            if (vector == 3)
            {
                Assert.False(Bit(map, bit), $"reserved bit {bit} set");
                continue;
            }
            uint msr = bases[vector] + (uint)((bit % (0x800 * 8)) / 2);
            bool write = (bit & 1) != 0;
            Assert.True(MsrPolicy.Intercepts(msr, write, Vendor.AmdSvm) == Bit(map, bit), $"SVM map bit {bit}: MSR 0x{msr:X} {(write ? "write" : "read")}");
            if (Bit(map, bit)) set++;
        }
        // PAT, EFER, VM_CR, VM_HSAVE_PA read and write, the x2APIC ICR write.
        Assert.Equal((4 * 2) + 1, set);
    }

    [Theory]
    [InlineData(0x3Au, true, false)]            // IA32_FEATURE_CONTROL: VMX only
    [InlineData(0x480u, true, false)]           // IA32_VMX_BASIC
    [InlineData(0x493u, true, false)]           // IA32_VMX_EXIT_CTLS2
    [InlineData(0x494u, false, false)]
    [InlineData(0x277u, false, true)]           // IA32_PAT: SVM only (VMX switches it in the VMCS)
    [InlineData(0xC000_0080u, false, true)]     // EFER
    [InlineData(0xC001_0114u, false, true)]     // VM_CR
    [InlineData(0xC001_0117u, false, true)]     // VM_HSAVE_PA
    [InlineData(0x1Bu, false, false)]           // IA32_APIC_BASE passes through
    [InlineData(0xC000_0082u, false, false)]    // LSTAR passes through
    public void The_table_intercepts_what_each_back_end_must_emulate(uint msr, bool intel, bool amd)
    {
        Assert.Equal(intel, MsrPolicy.Intercepts(msr, write: false, Vendor.IntelVmx));
        Assert.Equal(intel, MsrPolicy.Intercepts(msr, write: true, Vendor.IntelVmx));
        Assert.Equal(amd, MsrPolicy.Intercepts(msr, write: false, Vendor.AmdSvm));
        Assert.Equal(amd, MsrPolicy.Intercepts(msr, write: true, Vendor.AmdSvm));
    }

    [Fact]
    public void X2apic_icr_writes_exit_on_both_and_reads_pass_through()
    {
        foreach (Vendor v in new[] { Vendor.IntelVmx, Vendor.AmdSvm })
        {
            Assert.True(MsrPolicy.Intercepts(ApicPage.X2ApicIcrMsr, write: true, v));
            Assert.True(MsrPolicy.IsPassThrough(ApicPage.X2ApicIcrMsr, write: false, v));
        }
    }

    [Theory]
    [InlineData(0x0u, true, true)]
    [InlineData(0x1FFFu, true, true)]
    [InlineData(0x2000u, false, false)]             // Intel MSRs above 0x1FFF exit on both
    [InlineData(0x4000_0000u, false, false)]        // the synthetic range
    [InlineData(0xBFFF_FFFFu, false, false)]
    [InlineData(0xC000_0000u, true, true)]
    [InlineData(0xC000_1FFFu, true, true)]
    [InlineData(0xC000_2000u, false, false)]        // AMD SMCA bank 0 (MCA_CTL): exits on both
    [InlineData(0xC000_2FFFu, false, false)]
    [InlineData(0xC001_0000u, false, true)]         // SVM's third vector; VMX's bitmap has none
    [InlineData(0xC001_1FFFu, false, true)]
    [InlineData(0xC001_2000u, false, false)]
    [InlineData(0xFFFF_FFFFu, false, false)]
    public void Msrs_outside_the_maps_exit_regardless(uint msr, bool vmxMap, bool svmMap)
    {
        Assert.Equal(vmxMap, MsrPolicy.InMap(msr, Vendor.IntelVmx));
        Assert.Equal(svmMap, MsrPolicy.InMap(msr, Vendor.AmdSvm));
        Assert.Equal(vmxMap, MsrPolicy.VmxReadBit(msr) >= 0);
        Assert.Equal(svmMap, MsrPolicy.SvmReadBit(msr) >= 0);
    }

    [Fact]
    public void Every_rule_lies_inside_its_vendors_map()
    {
        // An intercept outside the map could not be expressed by it (it would exit anyway, for every access).
        for (int i = 0; i < MsrPolicy.RuleCount; i++)
        {
            MsrRule rule = MsrPolicy.Rule(i);
            Assert.True(rule.Last >= rule.First && rule.Intercept != MsrIntercept.None, $"rule {i}");
            foreach (Vendor v in new[] { Vendor.IntelVmx, Vendor.AmdSvm })
            {
                if (!MsrPolicy.Applies(rule.Vendors, v)) continue;
                Assert.True(MsrPolicy.InMap(rule.First, v) && MsrPolicy.InMap(rule.Last, v), $"rule {i} for {v}");
            }
        }
        Assert.Equal(default, MsrPolicy.Rule(MsrPolicy.RuleCount));
    }

    [Fact]
    public void Smca_bank_reads_outside_the_map_are_executed_for_the_guest()
    {
        // MCA_CTL of SMCA bank 0: not intercepted, outside the map: the host runs the guest's RDMSR.
        Assert.True(MsrPolicy.IsPassThrough(0xC000_2000, write: false, Vendor.AmdSvm));
        var cpu = new FakeMsrs { Msr = 0xC000_2000, Value = 0x1122_3344_5566_7788 };
        var r = new GuestRegisters { Rcx = 0xFFFF_FFFF_C000_2000, Rax = ulong.MaxValue, Rdx = ulong.MaxValue };
        Assert.True(GuestMsrAccess.Read(ref cpu, ref r));
        Assert.Equal(0x5566_7788UL, r.Rax);     // EDX:EAX, upper halves cleared (SDM Vol 2B RDMSR)
        Assert.Equal(0x1122_3344UL, r.Rdx);
        Assert.Equal(0xC000_2000u, cpu.LastMsr);   // ECX only
    }

    [Fact]
    public void A_gp_from_the_cpu_is_reported_and_leaves_the_registers_alone()
    {
        var cpu = new FakeMsrs { Msr = 0x4000_0000 };
        var r = new GuestRegisters { Rcx = 0x4000_0001, Rax = 7, Rdx = 9 };
        Assert.False(GuestMsrAccess.Read(ref cpu, ref r));
        Assert.Equal(7UL, r.Rax);
        Assert.Equal(9UL, r.Rdx);
        Assert.False(GuestMsrAccess.Write(ref cpu, r));
        Assert.Equal(0, cpu.Writes);
    }

    [Fact]
    public void A_write_takes_edx_eax_and_ignores_the_upper_halves()
    {
        var cpu = new FakeMsrs { Msr = 0xC000_2001 };
        var r = new GuestRegisters { Rcx = 0xC000_2001, Rax = 0xDEAD_BEEF_0000_0001, Rdx = 0xDEAD_BEEF_0000_0002 };
        Assert.True(GuestMsrAccess.Write(ref cpu, r));
        Assert.Equal(0x2_0000_0001UL, cpu.Value);
        Assert.Equal(1, cpu.Writes);
    }

    /// <summary>A CPU with one MSR; every other raises #GP.</summary>
    private struct FakeMsrs : IMsrInstructions
    {
        public uint Msr;
        public ulong Value;
        public uint LastMsr;
        public int Writes;

        public bool TryRead(uint msr, out ulong value)
        {
            LastMsr = msr;
            value = msr == Msr ? Value : 0;
            return msr == Msr;
        }

        public bool TryWrite(uint msr, ulong value)
        {
            LastMsr = msr;
            if (msr != Msr) return false;
            Value = value;
            Writes++;
            return true;
        }
    }
}
