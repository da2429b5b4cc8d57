// acpitables.efi entry point: a test-harness tool, not part of Vigil. UEFI boot services, BSP.
// OVMF takes its ACPI tables from QEMU's fw_cfg; under Bochs there is none, so the OS would see
// one CPU and could not power off. On the Bochs test disk this image is \EFI\BOOT\BOOTX64.EFI:
//   1. if the configuration table has an ACPI 2.0 or 1.0 RSDP, change nothing;
//   2. otherwise build minimal tables (Tables/AcpiTableBuilder.cs) from the MP services' processor
//      list and the I/O APIC's ID, in one EfiACPIReclaimMemory block below 4 GiB, and install the
//      RSDP with InstallConfigurationTable (UEFI 2.10 §4.6, §7.3);
//   3. start \EFI\vigil\vigil.efi from the same volume with empty load options.
using System;
using System.Runtime.InteropServices;
using Internal.Runtime;
using Vigil.Harness.Acpi;
using Vigil.Platform.Firmware;
using Vigil.Platform.Uefi;

namespace Vigil.Harness
{
    internal static unsafe class EfiMain
    {
        private const ulong HeapPages = 16;
        private const string NextImage = "\\EFI\\vigil\\vigil.efi";

        [UnmanagedCallersOnly(EntryPoint = "EfiMain")]
        private static ulong Main(void* imageHandle, EFI_SYSTEM_TABLE* st)
        {
            EFI_BOOT_SERVICES* bs = st->BootServices;
            HarnessConsole.Attach(st->ConOut);
            ulong heap;
            ulong status = bs->AllocatePages(EFI_ALLOCATE_TYPE.AllocateAnyPages, EFI_MEMORY_TYPE.EfiLoaderData, HeapPages, &heap);
            if (EFI_STATUS.IsError(status))
            {
                HarnessConsole.Write("acpitables: cannot allocate the heap; starting nothing\n");
                return status;
            }
            Startup.Initialize((void*)heap, HeapPages * 4096);

            if (FirmwareHasAcpi(st)) HarnessConsole.Line("firmware has ACPI tables; nothing to do");
            else InstallTables(bs, st);

            return StartNext(imageHandle, st);
        }

        private static bool FirmwareHasAcpi(EFI_SYSTEM_TABLE* st)
        {
            EFI_GUID acpi20 = EFI_CONFIGURATION_TABLE.Acpi20TableGuid;
            EFI_GUID acpi10 = EFI_CONFIGURATION_TABLE.AcpiTableGuid;
            for (ulong i = 0; i < st->NumberOfTableEntries; i++)
            {
                EFI_GUID* guid = &st->ConfigurationTable[i].VendorGuid;
                if (acpi20.Equals(guid) || acpi10.Equals(guid)) return true;
            }
            return false;
        }

        private static void InstallTables(EFI_BOOT_SERVICES* bs, EFI_SYSTEM_TABLE* st)
        {
            uint* apicIds = stackalloc uint[AcpiTableBuilder.MaxProcessors];
            int count = PlatformProbe.ProcessorApicIds(bs, apicIds, AcpiTableBuilder.MaxProcessors, out ulong reported, out ulong mpStatus);
            if (count == 0)
            {
                // Without the MP services the one processor known to exist is this one; its
                // initial APIC ID is CPUID.01H:EBX[31:24].
                uint* regs = stackalloc uint[4];
                Platform.Cpu.Cpuid(1, 0, regs);
                apicIds[0] = regs[1] >> 24;
                count = 1;
                HarnessConsole.Line("no processor list from the MP services (" + EFI_STATUS.Name(mpStatus) + "); describing this processor only");
            }
            else if (reported > (ulong)count)
            {
                HarnessConsole.Line("the firmware reports " + reported.ToString() + " processors; describing " + count.ToString());
            }

            byte ioApicId = PlatformProbe.IoApicId(out uint ioApicRegister);
            if (ioApicRegister == 0xFFFFFFFF) HarnessConsole.Line("the I/O APIC register reads all ones; is there an I/O APIC at " + HarnessConsole.Hex(AcpiTableBuilder.IoApicAddress) + "?");

            int size = AcpiTableBuilder.TotalSize(count);
            ulong pages = ((ulong)size + 4095) / 4096;
            ulong address = 0xFFFFFFFF;   // AllocateMaxAddress: the highest address allowed
            ulong status = bs->AllocatePages(EFI_ALLOCATE_TYPE.AllocateMaxAddress, EFI_MEMORY_TYPE.EfiACPIReclaimMemory, pages, &address);
            if (EFI_STATUS.IsError(status))
            {
                HarnessConsole.Line("cannot allocate " + pages.ToString() + " pages of ACPI memory below 4 GiB: " + EFI_STATUS.Name(status) + "; no tables installed");
                return;
            }

            // Identity-mapped boot services memory: the physical address is the pointer.
            AcpiBuildStatus built = AcpiTableBuilder.Build(new ReadOnlySpan<uint>(apicIds, count), ioApicId, new Span<byte>((void*)address, (int)(pages * 4096)), address);
            if (built != AcpiBuildStatus.Success)
            {
                bs->FreePages(address, pages);
                HarnessConsole.Line("cannot build the tables: " + AcpiTableBuilder.Describe(built) + "; no tables installed");
                return;
            }

            EFI_GUID acpi20 = EFI_CONFIGURATION_TABLE.Acpi20TableGuid;
            status = bs->InstallConfigurationTable(&acpi20, (void*)(address + AcpiTableBuilder.RsdpOffset));
            if (EFI_STATUS.IsError(status))
            {
                bs->FreePages(address, pages);
                HarnessConsole.Line("InstallConfigurationTable failed: " + EFI_STATUS.Name(status) + "; no tables installed");
                return;
            }

            string ids = "";
            for (int i = 0; i < count; i++) ids = ids + (i == 0 ? "" : ",") + apicIds[i].ToString();
            HarnessConsole.Line("installed ACPI tables (RSDP rev 2 at " + HarnessConsole.Hex(address + AcpiTableBuilder.RsdpOffset)
                + ", XSDT, RSDT, FADT, FACS, DSDT with _S5, MADT): " + count.ToString() + (count == 1 ? " CPU" : " CPUs")
                + ", APIC IDs " + ids + ", IOAPIC ID " + ioApicId.ToString());
        }

        private static ulong StartNext(void* imageHandle, EFI_SYSTEM_TABLE* st)
        {
            ulong status = BootVolume.Open(imageHandle, st, out BootVolume volume);
            if (EFI_STATUS.IsError(status))
            {
                HarnessConsole.Line("cannot open the volume this image was started from: " + EFI_STATUS.Name(status) + "; cannot start " + NextImage);
                return status;
            }
            HarnessConsole.Line("starting " + NextImage);
            status = ImageLauncher.Start(imageHandle, st, in volume, NextImage, "", out string? failedStep);
            if (failedStep != null)
            {
                HarnessConsole.Line("cannot start " + NextImage + ": " + failedStep + " failed: " + EFI_STATUS.Name(status));
            }
            else if (EFI_STATUS.IsError(status))
            {
                HarnessConsole.Line(NextImage + " returned " + EFI_STATUS.Name(status));
            }
            return status;
        }

        /// <summary>The core library's fail-fast hook.</summary>
        [UnmanagedCallersOnly(EntryPoint = "vigil_report_fatal")]
        private static void ReportFatal(char* line)
        {
            int n = 0;
            while (line[n] != '\0') n++;
            HarnessConsole.Write("acpitables: ");
            HarnessConsole.Write(new ReadOnlySpan<char>(line, n));
            HarnessConsole.Write("\n");
        }
    }
}
