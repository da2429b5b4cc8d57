using System;
using System.Buffers.Binary;
using System.Text;
using Vigil.Harness.Acpi;
using Xunit;

namespace Vigil.Tests.Harness;

/// <summary>
/// The minimal ACPI tables acpitables.efi installs under Bochs. The tables are found the way an OS
/// finds them (RSDP → XSDT/RSDT → FADT/MADT → FACS/DSDT), through physical addresses, and decoded
/// with the BCL's own little-endian readers rather than the builder's.
/// </summary>
public class AcpiTableBuilderTests
{
    private const ulong Base = 0x7F00_0000;   // a page-aligned address below 4 GiB, as OVMF would give

    private static byte[] Build(uint[] apicIds, byte ioApicId = 0, ulong address = Base)
    {
        var buffer = new byte[8192];
        Assert.Equal(AcpiBuildStatus.Success, AcpiTableBuilder.Build(apicIds, ioApicId, buffer, address));
        return buffer;
    }

    /// <summary>The table at a physical address, its length taken from its header.</summary>
    private static ReadOnlySpan<byte> TableAt(byte[] buffer, ulong address, ulong bufferAddress = Base)
    {
        Assert.InRange(address, bufferAddress, bufferAddress + (ulong)buffer.Length - 36);
        int offset = (int)(address - bufferAddress);
        int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset + 4));
        Assert.InRange(length, 36, buffer.Length - offset);
        return buffer.AsSpan(offset, length);
    }

    private static string Ascii(ReadOnlySpan<byte> bytes) => Encoding.ASCII.GetString(bytes);

    private static int ByteSum(ReadOnlySpan<byte> bytes)
    {
        int sum = 0;
        foreach (byte b in bytes) sum += b;
        return sum & 0xFF;
    }

    private static uint U32(ReadOnlySpan<byte> table, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(table[offset..]);

    private static ulong U64(ReadOnlySpan<byte> table, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(table[offset..]);

    private static ushort U16(ReadOnlySpan<byte> table, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(table[offset..]);

    private static ReadOnlySpan<byte> Rsdp(byte[] buffer) => buffer.AsSpan(AcpiTableBuilder.RsdpOffset, 36);

    private static ReadOnlySpan<byte> Xsdt(byte[] buffer) => TableAt(buffer, U64(Rsdp(buffer), 24));

    private static ReadOnlySpan<byte> Rsdt(byte[] buffer) => TableAt(buffer, U32(Rsdp(buffer), 16));

    /// <summary>The XSDT entry whose table has the signature.</summary>
    private static ReadOnlySpan<byte> Find(byte[] buffer, string signature)
    {
        ReadOnlySpan<byte> xsdt = Xsdt(buffer);
        for (int p = 36; p < xsdt.Length; p += 8)
        {
            ReadOnlySpan<byte> table = TableAt(buffer, U64(xsdt, p));
            if (Ascii(table[..4]) == signature) return table.ToArray();
        }
        Assert.Fail("no " + signature + " in the XSDT");
        return default;
    }

    private static ReadOnlySpan<byte> Fadt(byte[] buffer) => Find(buffer, "FACP");

    private static ReadOnlySpan<byte> Madt(byte[] buffer) => Find(buffer, "APIC");

    private static ReadOnlySpan<byte> Dsdt(byte[] buffer) => TableAt(buffer, U32(Fadt(buffer), 40));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Every_table_sums_to_zero_and_the_rsdp_has_both_checksums(int cpus)
    {
        byte[] buffer = Build(FirstApicIds(cpus));
        ReadOnlySpan<byte> rsdp = Rsdp(buffer);
        Assert.Equal(0, ByteSum(rsdp[..20]));
        Assert.Equal(0, ByteSum(rsdp));
        Assert.Equal(0, ByteSum(Xsdt(buffer)));
        Assert.Equal(0, ByteSum(Rsdt(buffer)));
        Assert.Equal(0, ByteSum(Fadt(buffer)));
        Assert.Equal(0, ByteSum(Madt(buffer)));
        Assert.Equal(0, ByteSum(Dsdt(buffer)));
    }

    [Fact]
    public void A_changed_byte_breaks_the_checksum()
    {
        // The check above can fail: the checksum covers the table body.
        byte[] buffer = Build([0]);
        int madt = (int)(U64(Xsdt(buffer), 44) - Base);
        buffer[madt + 47] ^= 0x01;   // the first local APIC entry's APIC ID
        Assert.NotEqual(0, ByteSum(TableAt(buffer, Base + (ulong)madt)));
    }

    [Fact]
    public void Rsdp_is_revision_2_and_points_at_the_xsdt_and_the_rsdt()
    {
        byte[] buffer = Build([0]);
        ReadOnlySpan<byte> rsdp = Rsdp(buffer);
        Assert.Equal("RSD PTR ", Ascii(rsdp[..8]));
        Assert.Equal("VIGIL ", Ascii(rsdp[9..15]));
        Assert.Equal(2, rsdp[15]);
        Assert.Equal(36u, U32(rsdp, 20));
        Assert.Equal("RSDT", Ascii(Rsdt(buffer)[..4]));
        Assert.Equal("XSDT", Ascii(Xsdt(buffer)[..4]));
        Assert.InRange(U32(rsdp, 16), (uint)Base, (uint)Base + 8192);
        Assert.Equal(0, rsdp[33] | rsdp[34] | rsdp[35]);
    }

    [Fact]
    public void Xsdt_and_rsdt_list_the_fadt_then_the_madt()
    {
        byte[] buffer = Build([0, 1]);
        ReadOnlySpan<byte> xsdt = Xsdt(buffer);
        ReadOnlySpan<byte> rsdt = Rsdt(buffer);
        Assert.Equal(36 + 16, xsdt.Length);
        Assert.Equal(36 + 8, rsdt.Length);
        Assert.Equal("FACP", Ascii(TableAt(buffer, U64(xsdt, 36))[..4]));
        Assert.Equal("APIC", Ascii(TableAt(buffer, U64(xsdt, 44))[..4]));
        Assert.Equal(U64(xsdt, 36), U32(rsdt, 36));
        Assert.Equal(U64(xsdt, 44), U32(rsdt, 40));
    }

    [Fact]
    public void Headers_carry_signature_revision_and_oem_fields()
    {
        byte[] buffer = Build([0]);
        foreach (string signature in new[] { "FACP", "APIC" })
        {
            ReadOnlySpan<byte> table = Find(buffer, signature);
            Assert.Equal(1, table[8]);
            Assert.Equal("VIGIL ", Ascii(table[10..16]));
            Assert.Equal("ACPITBLS", Ascii(table[16..24]));
            Assert.Equal("VGIL", Ascii(table[28..32]));
        }
    }

    [Fact]
    public void Fadt_describes_the_piix4_pm_block_and_sci_9_in_the_acpi_1_layout()
    {
        byte[] buffer = Build([0]);
        ReadOnlySpan<byte> fadt = Fadt(buffer);
        Assert.Equal(116, fadt.Length);
        Assert.Equal(1, fadt[8]);
        Assert.Equal(1, fadt[44]);                 // INT_MODEL: APIC
        Assert.Equal(9, U16(fadt, 46));            // SCI_INT
        Assert.Equal(0u, U32(fadt, 48));           // SMI_CMD: none
        Assert.Equal(0xB000u, U32(fadt, 56));      // PM1a_EVT_BLK
        Assert.Equal(0u, U32(fadt, 60));           // PM1b_EVT_BLK
        Assert.Equal(0xB004u, U32(fadt, 64));      // PM1a_CNT_BLK
        Assert.Equal(0xB008u, U32(fadt, 76));      // PM_TMR_BLK
        Assert.Equal(4, fadt[88]);                 // PM1_EVT_LEN
        Assert.Equal(2, fadt[89]);                 // PM1_CNT_LEN
        Assert.Equal(4, fadt[91]);                 // PM_TMR_LEN
        Assert.Equal(0u, U32(fadt, 112) & (1u << 8));   // TMR_VAL_EXT clear: 24-bit timer
    }

    [Fact]
    public void Facs_is_64_byte_aligned_with_signature_and_length()
    {
        byte[] buffer = Build([0]);
        uint facs = U32(Fadt(buffer), 36);
        Assert.Equal(0u, facs % 64);
        ReadOnlySpan<byte> table = TableAt(buffer, facs);
        Assert.Equal("FACS", Ascii(table[..4]));
        Assert.Equal(64, table.Length);
    }

    [Fact]
    public void Dsdt_holds_exactly_name_s5_package_of_four_zeros()
    {
        byte[] buffer = Build([0]);
        ReadOnlySpan<byte> dsdt = Dsdt(buffer);
        Assert.Equal("DSDT", Ascii(dsdt[..4]));
        Assert.Equal(
            new byte[] { 0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00 },
            dsdt[36..].ToArray());
    }

    public static TheoryData<uint[], byte> MadtCases => new()
    {
        { new uint[] { 0 }, 0 },
        { new uint[] { 0, 1 }, 2 },
        { new uint[] { 0, 2, 4, 6 }, 9 },
    };

    [Theory]
    [MemberData(nameof(MadtCases))]
    public void Madt_has_one_enabled_local_apic_per_cpu_then_ioapic_override_and_nmi(uint[] apicIds, byte ioApicId)
    {
        byte[] buffer = Build(apicIds, ioApicId);
        ReadOnlySpan<byte> madt = Madt(buffer);
        Assert.Equal(36 + 8 + (8 * apicIds.Length) + 12 + 10 + 6, madt.Length);
        Assert.Equal(0xFEE00000u, U32(madt, 36));
        Assert.Equal(1u, U32(madt, 40));           // PCAT_COMPAT

        int p = 44;
        for (int i = 0; i < apicIds.Length; i++, p += 8)
        {
            Assert.Equal(0, madt[p]);              // Processor Local APIC
            Assert.Equal(8, madt[p + 1]);
            Assert.Equal(i, madt[p + 2]);          // ACPI Processor UID
            Assert.Equal(apicIds[i], madt[p + 3]);
            Assert.Equal(1u, U32(madt, p + 4));    // Enabled
        }

        Assert.Equal(1, madt[p]);                  // I/O APIC
        Assert.Equal(12, madt[p + 1]);
        Assert.Equal(ioApicId, madt[p + 2]);
        Assert.Equal(0, madt[p + 3]);
        Assert.Equal(0xFEC00000u, U32(madt, p + 4));
        Assert.Equal(0u, U32(madt, p + 8));        // GSI base
        p += 12;

        Assert.Equal(2, madt[p]);                  // Interrupt Source Override
        Assert.Equal(10, madt[p + 1]);
        Assert.Equal(0, madt[p + 2]);              // ISA
        Assert.Equal(9, madt[p + 3]);
        Assert.Equal(9u, U32(madt, p + 4));
        Assert.Equal(0x000D, U16(madt, p + 8));    // level, active high
        p += 10;

        Assert.Equal(4, madt[p]);                  // Local APIC NMI
        Assert.Equal(6, madt[p + 1]);
        Assert.Equal(0xFF, madt[p + 2]);           // all processors
        Assert.Equal(0, U16(madt, p + 3));
        Assert.Equal(1, madt[p + 5]);              // LINT1
        Assert.Equal(madt.Length, p + 6);
    }

    [Fact]
    public void Tables_fit_the_reported_size_and_leave_the_rest_of_the_buffer_alone()
    {
        var buffer = new byte[8192];
        Array.Fill(buffer, (byte)0xAA);
        Assert.Equal(AcpiBuildStatus.Success, AcpiTableBuilder.Build([0, 1, 2, 3], 0, buffer, Base));
        int size = AcpiTableBuilder.TotalSize(4);
        Assert.Equal(0x1C0 + 36 + 8 + 32 + 28, size);
        Assert.All(buffer[size..], b => Assert.Equal(0xAA, b));
        ReadOnlySpan<byte> madt = Madt(buffer);
        Assert.Equal(size, (int)(U64(Xsdt(buffer), 44) - Base) + madt.Length);
    }

    [Fact]
    public void Exactly_the_total_size_is_enough_and_one_byte_less_is_not()
    {
        int size = AcpiTableBuilder.TotalSize(2);
        Assert.Equal(AcpiBuildStatus.Success, AcpiTableBuilder.Build([0, 1], 0, new byte[size], Base));
        Assert.Equal(AcpiBuildStatus.BufferTooSmall, AcpiTableBuilder.Build([0, 1], 0, new byte[size - 1], Base));
    }

    [Fact]
    public void Addresses_follow_the_physical_address_given()
    {
        const ulong other = 0x1000;
        byte[] buffer = Build([0], 0, other);
        Assert.Equal(other + 0x40, U64(Rsdp(buffer), 24));
        Assert.Equal(other + 0x80, U32(Rsdp(buffer), 16));
        ReadOnlySpan<byte> fadt = TableAt(buffer, U64(TableAt(buffer, U64(Rsdp(buffer), 24), other), 36), other);
        Assert.Equal("FACP", Ascii(fadt[..4]));
    }

    [Fact]
    public void Inputs_that_cannot_be_described_are_refused()
    {
        var buffer = new byte[8192];
        Assert.Equal(AcpiBuildStatus.NoProcessors, AcpiTableBuilder.Build([], 0, buffer, Base));
        Assert.Equal(AcpiBuildStatus.TooManyProcessors, AcpiTableBuilder.Build(new uint[256], 0, buffer, Base));
        Assert.Equal(AcpiBuildStatus.ApicIdOutOfRange, AcpiTableBuilder.Build([0, 255], 0, buffer, Base));
        Assert.Equal(AcpiBuildStatus.AddressMisaligned, AcpiTableBuilder.Build([0], 0, buffer, Base + 32));
        Assert.Equal(AcpiBuildStatus.AddressAbove4GiB, AcpiTableBuilder.Build([0], 0, buffer, 0x1_0000_0000));
        Assert.Equal(AcpiBuildStatus.AddressAbove4GiB, AcpiTableBuilder.Build([0], 0, buffer, 0x1_0000_0000 - 0x100));
        Assert.Equal(AcpiBuildStatus.Success, AcpiTableBuilder.Build([0], 0, buffer, 0x1_0000_0000 - 0x1000));
        Assert.Equal(AcpiBuildStatus.Success, AcpiTableBuilder.Build(new uint[255], 0, new byte[AcpiTableBuilder.TotalSize(255)], Base));
    }

    private static uint[] FirstApicIds(int count)
    {
        var ids = new uint[count];
        for (int i = 0; i < count; i++) ids[i] = (uint)i;
        return ids;
    }
}
