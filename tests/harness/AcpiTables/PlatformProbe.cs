// The inputs of the ACPI tables that only the machine knows: the processors' local APIC IDs
// (EFI_MP_SERVICES_PROTOCOL, PI 1.7 Vol 2 §13.4) and the I/O APIC's ID (82093AA datasheet §3.2.1:
// register 0 through IOREGSEL/IOWIN, ID in bits 27:24). Boot services, BSP.
using Vigil.Harness.Acpi;
using Vigil.Platform.Uefi;

namespace Vigil.Harness
{
    internal static unsafe class PlatformProbe
    {
        /// <summary>A 32-bit memory-mapped register: volatile, so every access reaches the device.</summary>
        private struct MmioRegister
        {
            public volatile uint Value;
        }

        private const ulong IoRegSel = AcpiTableBuilder.IoApicAddress;
        private const ulong IoWin = AcpiTableBuilder.IoApicAddress + 0x10;

        /// <summary>
        /// Fills <paramref name="apicIds"/> (room for <paramref name="capacity"/>) with one APIC ID per
        /// processor, in the MP services' order (the BSP is processor 0 in OVMF). Returns the count, or
        /// 0 if there are no MP services; <paramref name="reported"/> is the number the firmware
        /// reported (it can exceed <paramref name="capacity"/>).
        /// </summary>
        public static int ProcessorApicIds(EFI_BOOT_SERVICES* bs, uint* apicIds, int capacity, out ulong reported, out ulong status)
        {
            reported = 0;
            EFI_MP_SERVICES_PROTOCOL* mp;
            EFI_GUID guid = EFI_MP_SERVICES_PROTOCOL.Guid;
            status = bs->LocateProtocol(&guid, null, (void**)&mp);
            if (EFI_STATUS.IsError(status)) return 0;
            ulong count;
            ulong enabled;
            status = mp->GetNumberOfProcessors(mp, &count, &enabled);
            if (EFI_STATUS.IsError(status)) return 0;
            reported = count;
            int n = 0;
            for (ulong i = 0; i < count && n < capacity; i++)
            {
                EFI_PROCESSOR_INFORMATION info;
                if (EFI_STATUS.IsError(mp->GetProcessorInfo(mp, i, &info))) continue;   // as if absent
                apicIds[n++] = (uint)info.ProcessorId;
            }
            return n;
        }

        /// <summary>The I/O APIC's 4-bit ID; <paramref name="raw"/> is the whole register (all ones: no device).</summary>
        public static byte IoApicId(out uint raw)
        {
            ((MmioRegister*)IoRegSel)->Value = 0;   // IOAPICID
            raw = ((MmioRegister*)IoWin)->Value;
            return (byte)((raw >> 24) & 0x0F);
        }
    }
}
