using System;
using Vigil.Abi;
using Xunit;

namespace Vigil.Tests.Hypervisor;

public class BootStateTests
{
    [Fact]
    public void The_guid_fields_vigil_efi_writes_spell_the_guid_efivarfs_names_the_file_with()
    {
        // efivarfs prints Data1-Data2-Data3 as numbers and Data4 byte by byte (Linux efivarfs_create / efi_guid_to_str).
        var guid = new Guid(BootState.GuidData1, BootState.GuidData2, BootState.GuidData3,
            BootState.GuidData4Byte(0), BootState.GuidData4Byte(1), BootState.GuidData4Byte(2), BootState.GuidData4Byte(3),
            BootState.GuidData4Byte(4), BootState.GuidData4Byte(5), BootState.GuidData4Byte(6), BootState.GuidData4Byte(7));
        Assert.Equal(BootState.VendorGuidText, guid.ToString("D"));
        Assert.Equal("VigilBootState-" + BootState.VendorGuidText, BootState.EfivarsName);
    }

    [Fact]
    public void The_texts_say_how_many_cpus_are_protected_or_why_none_is()
    {
        Assert.Equal("protected cpus=3 of 4", BootState.Protected(3, 4));
        Assert.Equal("protected cpus=3 of 4; policy: built-in", BootState.WithPolicy(BootState.Protected(3, 4), "built-in"));
        Assert.Equal("unprotected: this machine has 65 CPUs", BootState.Unprotected("this machine has 65 CPUs"));
        Assert.StartsWith(BootState.UnprotectedPrefix, BootState.Unprotected("x"), StringComparison.Ordinal);
    }

    [Fact]
    public void The_variable_is_volatile_and_readable_by_the_os()
    {
        const uint NonVolatile = 0x1, BootServiceAccess = 0x2, RuntimeAccess = 0x4;
        Assert.Equal(BootServiceAccess | RuntimeAccess, BootState.Attributes);
        Assert.Equal(0u, BootState.Attributes & NonVolatile);
    }
}
