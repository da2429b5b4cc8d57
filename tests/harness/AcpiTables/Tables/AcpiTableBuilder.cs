// Minimal ACPI tables for a PC that has none (OVMF under Bochs): RSDP, XSDT, RSDT, FADT, FACS,
// DSDT and MADT, written into one caller-provided buffer whose physical address is given, so the
// tables can point at each other. Vendor-neutral: spans and integers only, no firmware calls;
// compiled into acpitables.efi (tiny core library) and into the unit tests (real .NET).
//
// What they describe (the machine Bochs emulates with OVMF on it):
//   - PIIX4 power management block at I/O 0xB000 (OVMF programs PMBA = 0xB000): PM1a_EVT 0xB000,
//     PM1a_CNT 0xB004, PM_TMR 0xB008; SCI on ISA IRQ 9, level-triggered, active high;
//   - no SMI command port: the chipset is already in ACPI mode (SCI_EN is set by the firmware);
//   - \_S5 = {0, 0}: SLP_TYP 0 with SLP_EN is soft-off on PIIX4, so an OS can power off;
//   - one enabled local APIC per processor, the I/O APIC at 0xFEC00000 (GSI base 0), LINT1 = NMI.
// Layout and field offsets: ACPI 6.5 §5.2.5 (RSDP), §5.2.6 (header), §5.2.7 (RSDT), §5.2.8 (XSDT),
// §5.2.9 (FADT; the ACPI 1.0 form, 116 bytes, revision 1), §5.2.10 (FACS), §5.2.12 (MADT).
using System;

namespace Vigil.Harness.Acpi
{
    public enum AcpiBuildStatus
    {
        Success,

        /// <summary>No processor given: an MADT needs at least the boot processor.</summary>
        NoProcessors,

        /// <summary>More than <see cref="AcpiTableBuilder.MaxProcessors"/> processors.</summary>
        TooManyProcessors,

        /// <summary>An APIC ID above 254 needs an x2APIC entry (type 9), which this builder does not write.</summary>
        ApicIdOutOfRange,

        /// <summary>The buffer is shorter than <see cref="AcpiTableBuilder.TotalSize"/>.</summary>
        BufferTooSmall,

        /// <summary>The tables must lie below 4 GiB (the RSDT and the ACPI 1.0 FADT hold 32-bit addresses).</summary>
        AddressAbove4GiB,

        /// <summary>The buffer's physical address is not 64-byte aligned (the FACS must be, §5.2.10).</summary>
        AddressMisaligned,
    }

    public static class AcpiTableBuilder
    {
        // Where each table sits in the buffer. The FACS offset is a multiple of 64 (alignment rule);
        // the others are 16-byte aligned for readability in a memory dump.
        public const int RsdpOffset = 0x000;
        public const int XsdtOffset = 0x040;
        public const int RsdtOffset = 0x080;
        public const int FacsOffset = 0x0C0;
        public const int FadtOffset = 0x100;
        public const int DsdtOffset = 0x180;
        public const int MadtOffset = 0x1C0;

        public const int HeaderLength = 36;
        public const int RsdpLength = 36;
        public const int XsdtLength = HeaderLength + (2 * 8);   // FADT, MADT
        public const int RsdtLength = HeaderLength + (2 * 4);
        public const int FacsLength = 64;
        public const int FadtLength = 116;

        /// <summary>DefinitionBlock body: <c>Name (_S5, Package (4) { 0, 0, 0, 0 })</c>.</summary>
        /// <remarks>
        /// NameOp 0x08, NameString "_S5_", PackageOp 0x12, PkgLength 6 (itself, NumElements and the
        /// four elements), NumElements 4, then four ZeroOp (ACPI 6.5 §20.2.5.2, §20.2.5.4, §20.2.4).
        /// Elements: SLP_TYPa, SLP_TYPb and two reserved values.
        /// </remarks>
        public static ReadOnlySpan<byte> S5Aml => [0x08, (byte)'_', (byte)'S', (byte)'5', (byte)'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00];

        public const int DsdtLength = HeaderLength + 12;

        public const int MadtFixedLength = HeaderLength + 8;   // local APIC address, flags
        public const int MadtLocalApicLength = 8;
        public const int MadtIoApicLength = 12;
        public const int MadtInterruptOverrideLength = 10;
        public const int MadtLocalApicNmiLength = 6;

        /// <summary>ACPI processor UIDs are bytes and 0xFF means "all processors" in the NMI entry.</summary>
        public const int MaxProcessors = 255;

        /// <summary>xAPIC IDs are 8 bits; 0xFF is the broadcast ID.</summary>
        public const uint MaxApicId = 254;

        // The platform described (see the file comment).
        public const ushort PmBase = 0xB000;
        public const ushort Pm1aEventBlock = PmBase;
        public const ushort Pm1aControlBlock = PmBase + 4;
        public const ushort PmTimerBlock = PmBase + 8;
        public const byte SciInterrupt = 9;
        public const uint LocalApicAddress = 0xFEE00000;
        public const uint IoApicAddress = 0xFEC00000;

        // Identification written into every table.
        public const string OemId = "VIGIL ";        // 6 characters
        public const string OemTableId = "ACPITBLS";   // 8 characters
        public const uint OemRevision = 1;
        public const string CreatorId = "VGIL";        // 4 characters
        public const uint CreatorRevision = 1;

        // MADT structure types (§5.2.12, Table 5.45) and flags.
        public const byte MadtTypeLocalApic = 0;
        public const byte MadtTypeIoApic = 1;
        public const byte MadtTypeInterruptOverride = 2;
        public const byte MadtTypeLocalApicNmi = 4;
        public const uint MadtPcAtCompat = 1;          // dual 8259s present (§5.2.12, Table 5.44)
        public const uint LocalApicEnabled = 1;        // Table 5.47

        /// <summary>MPS INTI flags: active high (bits 1:0 = 01), level-triggered (bits 3:2 = 11). Table 5.50.</summary>
        public const ushort SciInterruptFlags = 0x000D;

        // FADT Flags (Table 5.10): WBINVD works; C1 supported; power and sleep buttons are not
        // fixed-feature buttons (there are none to report).
        public const uint FadtFlags = (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5);

        public static int MadtLength(int processorCount)
            => MadtFixedLength + (processorCount * MadtLocalApicLength) + MadtIoApicLength + MadtInterruptOverrideLength + MadtLocalApicNmiLength;

        /// <summary>Bytes needed for all tables with <paramref name="processorCount"/> processors.</summary>
        public static int TotalSize(int processorCount) => MadtOffset + MadtLength(processorCount);

        /// <summary>
        /// Writes all tables into <paramref name="destination"/>, which the CPU will find at
        /// <paramref name="physicalAddress"/>. The RSDP is at offset <see cref="RsdpOffset"/>: that is
        /// the address to install. Processor i gets ACPI processor UID i and APIC ID
        /// <paramref name="apicIds"/>[i]; list the boot processor first. Bytes of the buffer past
        /// the tables are left as they are.
        /// </summary>
        public static AcpiBuildStatus Build(ReadOnlySpan<uint> apicIds, byte ioApicId, Span<byte> destination, ulong physicalAddress)
        {
            if (apicIds.Length == 0) return AcpiBuildStatus.NoProcessors;
            if (apicIds.Length > MaxProcessors) return AcpiBuildStatus.TooManyProcessors;
            for (int i = 0; i < apicIds.Length; i++)
            {
                if (apicIds[i] > MaxApicId) return AcpiBuildStatus.ApicIdOutOfRange;
            }
            int total = TotalSize(apicIds.Length);
            if (destination.Length < total) return AcpiBuildStatus.BufferTooSmall;
            if (physicalAddress > 0x1_0000_0000UL - (ulong)total) return AcpiBuildStatus.AddressAbove4GiB;
            if ((physicalAddress & 63) != 0) return AcpiBuildStatus.AddressMisaligned;

            Span<byte> tables = destination.Slice(0, total);
            tables.Clear();
            uint address = (uint)physicalAddress;

            WriteFacs(tables.Slice(FacsOffset, FacsLength));
            WriteDsdt(tables.Slice(DsdtOffset, DsdtLength));
            WriteFadt(tables.Slice(FadtOffset, FadtLength), address + FacsOffset, address + DsdtOffset);
            WriteMadt(tables.Slice(MadtOffset, MadtLength(apicIds.Length)), apicIds, ioApicId);

            Span<byte> rsdt = tables.Slice(RsdtOffset, RsdtLength);
            AcpiBytes.WriteUInt32(rsdt, HeaderLength, address + FadtOffset);
            AcpiBytes.WriteUInt32(rsdt, HeaderLength + 4, address + MadtOffset);
            WriteHeader(rsdt, "RSDT", 1);

            Span<byte> xsdt = tables.Slice(XsdtOffset, XsdtLength);
            AcpiBytes.WriteUInt64(xsdt, HeaderLength, physicalAddress + FadtOffset);
            AcpiBytes.WriteUInt64(xsdt, HeaderLength + 8, physicalAddress + MadtOffset);
            WriteHeader(xsdt, "XSDT", 1);

            WriteRsdp(tables.Slice(RsdpOffset, RsdpLength), address + RsdtOffset, physicalAddress + XsdtOffset);
            return AcpiBuildStatus.Success;
        }

        /// <summary>The status's name, for messages.</summary>
        public static string Describe(AcpiBuildStatus status) => status switch
        {
            AcpiBuildStatus.Success => "success",
            AcpiBuildStatus.NoProcessors => "no processors",
            AcpiBuildStatus.TooManyProcessors => "more than 255 processors",
            AcpiBuildStatus.ApicIdOutOfRange => "an APIC ID above 254 (needs x2APIC entries)",
            AcpiBuildStatus.BufferTooSmall => "buffer too small",
            AcpiBuildStatus.AddressAbove4GiB => "tables would not lie below 4 GiB",
            AcpiBuildStatus.AddressMisaligned => "buffer not 64-byte aligned",
            _ => "unknown status",
        };

        /// <summary>RSDP, revision 2 (ACPI 2.0+): both checksums (§5.2.5.3).</summary>
        private static void WriteRsdp(Span<byte> rsdp, uint rsdtAddress, ulong xsdtAddress)
        {
            AcpiBytes.WriteAscii(rsdp, 0, "RSD PTR ");
            AcpiBytes.WriteAscii(rsdp, 9, OemId);
            rsdp[15] = 2;                                          // Revision
            AcpiBytes.WriteUInt32(rsdp, 16, rsdtAddress);
            AcpiBytes.WriteUInt32(rsdp, 20, RsdpLength);          // Length
            AcpiBytes.WriteUInt64(rsdp, 24, xsdtAddress);
            AcpiBytes.FixChecksum(rsdp.Slice(0, 20), 8);          // the ACPI 1.0 part
            AcpiBytes.FixChecksum(rsdp, 32);                      // Extended Checksum: the whole RSDP
        }

        /// <summary>FACS (§5.2.10): only signature and length; no checksum, no waking vector.</summary>
        private static void WriteFacs(Span<byte> facs)
        {
            AcpiBytes.WriteAscii(facs, 0, "FACS");
            AcpiBytes.WriteUInt32(facs, 4, FacsLength);
        }

        private static void WriteDsdt(Span<byte> dsdt)
        {
            S5Aml.CopyTo(dsdt.Slice(HeaderLength));
            // Revision 1: AML integers are 32 bits.
            WriteHeader(dsdt, "DSDT", 1);
        }

        /// <summary>FADT in the ACPI 1.0 layout (revision 1, 116 bytes; offsets from §5.2.9 Table 5.9).</summary>
        private static void WriteFadt(Span<byte> fadt, uint facsAddress, uint dsdtAddress)
        {
            AcpiBytes.WriteUInt32(fadt, 36, facsAddress);         // FIRMWARE_CTRL
            AcpiBytes.WriteUInt32(fadt, 40, dsdtAddress);         // DSDT
            fadt[44] = 1;                                          // INT_MODEL (ACPI 1.0): APIC
            fadt[45] = 0;                                          // Preferred_PM_Profile: unspecified
            AcpiBytes.WriteUInt16(fadt, 46, SciInterrupt);        // SCI_INT
            AcpiBytes.WriteUInt32(fadt, 48, 0);                   // SMI_CMD: none, already in ACPI mode
            AcpiBytes.WriteUInt32(fadt, 56, Pm1aEventBlock);      // PM1a_EVT_BLK
            AcpiBytes.WriteUInt32(fadt, 64, Pm1aControlBlock);    // PM1a_CNT_BLK
            AcpiBytes.WriteUInt32(fadt, 76, PmTimerBlock);        // PM_TMR_BLK
            fadt[88] = 4;                                          // PM1_EVT_LEN
            fadt[89] = 2;                                          // PM1_CNT_LEN
            fadt[91] = 4;                                          // PM_TMR_LEN (24-bit timer: TMR_VAL_EXT clear)
            AcpiBytes.WriteUInt16(fadt, 96, 101);                 // P_LVL2_LAT > 100: C2 not supported
            AcpiBytes.WriteUInt16(fadt, 98, 1001);                // P_LVL3_LAT > 1000: C3 not supported
            fadt[108] = 0x32;                                      // CENTURY: CMOS RTC index of the century
            AcpiBytes.WriteUInt32(fadt, 112, FadtFlags);          // Flags
            WriteHeader(fadt, "FACP", 1);
        }

        private static void WriteMadt(Span<byte> madt, ReadOnlySpan<uint> apicIds, byte ioApicId)
        {
            AcpiBytes.WriteUInt32(madt, 36, LocalApicAddress);
            AcpiBytes.WriteUInt32(madt, 40, MadtPcAtCompat);
            int p = MadtFixedLength;
            for (int i = 0; i < apicIds.Length; i++)
            {
                madt[p] = MadtTypeLocalApic;
                madt[p + 1] = MadtLocalApicLength;
                madt[p + 2] = (byte)i;                             // ACPI Processor UID
                madt[p + 3] = (byte)apicIds[i];                    // APIC ID
                AcpiBytes.WriteUInt32(madt, p + 4, LocalApicEnabled);
                p += MadtLocalApicLength;
            }

            madt[p] = MadtTypeIoApic;
            madt[p + 1] = MadtIoApicLength;
            madt[p + 2] = ioApicId;
            AcpiBytes.WriteUInt32(madt, p + 4, IoApicAddress);
            AcpiBytes.WriteUInt32(madt, p + 8, 0);                // Global System Interrupt Base
            p += MadtIoApicLength;

            // The SCI is level-triggered, active high, unlike an ISA IRQ (edge, active high).
            madt[p] = MadtTypeInterruptOverride;
            madt[p + 1] = MadtInterruptOverrideLength;
            madt[p + 2] = 0;                                       // Bus: ISA
            madt[p + 3] = SciInterrupt;                            // Source
            AcpiBytes.WriteUInt32(madt, p + 4, SciInterrupt);     // Global System Interrupt
            AcpiBytes.WriteUInt16(madt, p + 8, SciInterruptFlags);
            p += MadtInterruptOverrideLength;

            // LINT1 of every local APIC is wired to NMI (the PC convention).
            madt[p] = MadtTypeLocalApicNmi;
            madt[p + 1] = MadtLocalApicNmiLength;
            madt[p + 2] = 0xFF;                                    // all processors
            AcpiBytes.WriteUInt16(madt, p + 3, 0);                // MPS INTI flags: bus default
            madt[p + 5] = 1;                                       // LINT1
            WriteHeader(madt, "APIC", 1);
        }

        /// <summary>
        /// The common header (§5.2.6): signature, length (the whole span), revision, OEM fields, and
        /// the checksum over the whole table. Call last, when the body is written.
        /// </summary>
        private static void WriteHeader(Span<byte> table, string signature, byte revision)
        {
            AcpiBytes.WriteAscii(table, 0, signature);
            AcpiBytes.WriteUInt32(table, 4, (uint)table.Length);
            table[8] = revision;
            AcpiBytes.WriteAscii(table, 10, OemId);
            AcpiBytes.WriteAscii(table, 16, OemTableId);
            AcpiBytes.WriteUInt32(table, 24, OemRevision);
            AcpiBytes.WriteAscii(table, 28, CreatorId);
            AcpiBytes.WriteUInt32(table, 32, CreatorRevision);
            AcpiBytes.FixChecksum(table, 9);
        }
    }
}
