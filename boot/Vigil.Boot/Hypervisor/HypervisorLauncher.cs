// Starts the hypervisor, UEFI boot services, BSP (APs through EFI_MP_SERVICES_PROTOCOL):
//   1. reads \EFI\vigil\vigil-hv.efi and reserves, as EfiReservedMemoryType (never reused by the OS,
//      never moved by SetVirtualAddressMap), one block for its image, its heap and its page pool;
//   2. places the image there with Vigil's own PE loader (relocations applied);
//   3. hands it LaunchParameters (CPU list, memory map, log port, the compiled policy vigil.efi read and
//      checked: PolicyFile) and calls its entry point, which checks the CPU, copies and checks the policy
//      again and prepares what all CPUs share;
//   4. runs LaunchCpu on every AP, then on the BSP: each CPU's current firmware context becomes
//      its guest state.
// Any failure is reported and the OS boots unprotected (fail open, loudly).
using Vigil.Abi;
using Vigil.Boot.Loader;
using Vigil.Platform.Firmware;
using Vigil.Platform.Uefi;

namespace Vigil.Boot.Hypervisor
{
    internal static unsafe class HypervisorLauncher
    {
        public const string ImagePath = "\\EFI\\vigil\\vigil-hv.efi";
        private const int MaxImageSize = 16 * 1024 * 1024;
        private const ulong PageSize = 4096;
        private const ulong HeapBytes = 2UL << 20;

        private static LaunchParameters* s_parameters;
        private static EFI_MP_SERVICES_PROTOCOL* s_mp;

        /// <summary>The machine's CPUs as the firmware counts them (set by <see cref="Start"/>; 1 without MP services).</summary>
        public static uint CpuCount { get; private set; }

        /// <summary>Returns the number of CPUs now running under the hypervisor (0: unprotected).</summary>
        public static uint Start(EFI_SYSTEM_TABLE* st, in BootVolume volume, ushort logPort, in PolicyFile policy)
        {
            EFI_BOOT_SERVICES* bs = st->BootServices;
            ulong status = volume.ReadFile(ImagePath, MaxImageSize, out byte* file, out int fileSize);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("cannot read the hypervisor image " + ImagePath + ": " + EFI_STATUS.Name(status));
                return 0;
            }
            var fileSpan = new System.ReadOnlySpan<byte>(file, fileSize);
            PeLoadError peError = PeImage.Parse(fileSpan, out PeImageInfo info);
            if (peError != PeLoadError.None)
            {
                BootLog.Error(ImagePath + " is not a usable image: " + PeImage.Describe(peError));
                return 0;
            }

            uint cpuCount = 1;
            CpuCount = 1;
            uint bspIndex = 0;
            uint* apicIds = stackalloc uint[LaunchParameters.MaxCpus];
            apicIds[0] = 0;
            EFI_GUID mpGuid = EFI_MP_SERVICES_PROTOCOL.Guid;
            EFI_MP_SERVICES_PROTOCOL* mp;
            if (EFI_STATUS.IsError(bs->LocateProtocol(&mpGuid, null, (void**)&mp))) mp = null;
            s_mp = mp;
            if (mp != null)
            {
                ulong total, enabled, self;
                if (!EFI_STATUS.IsError(mp->GetNumberOfProcessors(mp, &total, &enabled)) && total > 0)
                {
                    CpuCount = (uint)total;
                    if (total > LaunchParameters.MaxCpus)
                    {
                        BootLog.Error("this machine has " + ((long)total).ToString() + " CPUs; Vigil supports at most " + LaunchParameters.MaxCpus.ToString()
                            + " (a hypervisor on some CPUs only would leave the others unguarded); booting unprotected");
                        return 0;
                    }
                    cpuCount = (uint)total;
                    for (uint i = 0; i < cpuCount; i++)
                    {
                        EFI_PROCESSOR_INFORMATION cpu;
                        apicIds[i] = EFI_STATUS.IsError(mp->GetProcessorInfo(mp, i, &cpu)) ? 0xFFFFFFFF : (uint)cpu.ProcessorId;
                    }
                }
                if (!EFI_STATUS.IsError(mp->WhoAmI(mp, &self))) bspIndex = (uint)self;
            }
            else
            {
                BootLog.Warn("no EFI_MP_SERVICES_PROTOCOL: only this CPU can be virtualized");
            }

            // The hand-over block (parameters and memory map) lives outside the reservation, in loader
            // memory the OS reclaims: vigil.efi still writes results into it after the CPUs are launched,
            // while the whole reservation is hidden from the guest from the first instruction. The
            // hypervisor copies what it needs during Prepare and never reads the block afterwards.
            const ulong MapAreaBytes = 64 * 1024;
            ulong handoverBytes = (((ulong)sizeof(LaunchParameters) + PageSize - 1) & ~(PageSize - 1)) + MapAreaBytes;
            ulong handover;
            status = bs->AllocatePages(EFI_ALLOCATE_TYPE.AllocateAnyPages, EFI_MEMORY_TYPE.EfiLoaderData, handoverBytes / PageSize, &handover);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("cannot allocate the hypervisor hand-over block: " + EFI_STATUS.Name(status));
                return 0;
            }
            // The memory map decides the pool's size (PoolSize: the identity maps grow with it); it is copied
            // again below, after the reservation, so the hypervisor sees the reservation in it.
            var mapArea = (PhysicalRange*)(handover + handoverBytes - MapAreaBytes);
            uint ranges = CopyMemoryMap(bs, mapArea, (int)(MapAreaBytes / (ulong)sizeof(PhysicalRange)));
            if (ranges == 0) return 0;
            ulong top = PoolSize.TopOfMemory(new System.ReadOnlySpan<PhysicalRange>(mapArea, (int)ranges));
            ulong imageBytes = ((ulong)info.SizeOfImage + PageSize - 1) & ~(PageSize - 1);
            // The nested map reaches MAXPHYADDR (CPUID 8000_0008h), so device BARs above the memory map are mapped.
            uint* cpuid = stackalloc uint[4];
            Vigil.Platform.Cpu.Cpuid(0x8000_0000, 0, cpuid);
            uint maxExtended = cpuid[0];
            Vigil.Platform.Cpu.Cpuid(0x8000_0008, 0, cpuid);
            ulong poolBytes = PoolSize.Bytes(cpuCount, top, PoolSize.PhysicalAddressBits(maxExtended, cpuid[0]));
            ulong totalBytes = imageBytes + HeapBytes + poolBytes;
            ulong reserved;
            status = bs->AllocatePages(EFI_ALLOCATE_TYPE.AllocateAnyPages, EFI_MEMORY_TYPE.EfiReservedMemoryType, totalBytes / PageSize, &reserved);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("cannot reserve " + ((long)(totalBytes >> 20)).ToString() + " MiB for the hypervisor: " + EFI_STATUS.Name(status));
                return 0;
            }
            peError = PeImage.Load(fileSpan, new System.Span<byte>((void*)reserved, (int)imageBytes), reserved, out info);
            bs->FreePool(file);
            if (peError != PeLoadError.None)
            {
                BootLog.Error("placing the hypervisor image failed: " + PeImage.Describe(peError));
                return 0;
            }

            var p = (LaunchParameters*)handover;
            for (ulong i = 0; i < (ulong)sizeof(LaunchParameters); i++) ((byte*)p)[i] = 0;
            p->Signature = LaunchParameters.ExpectedSignature;
            p->Version = LaunchParameters.CurrentVersion;
            p->Size = (uint)sizeof(LaunchParameters);
            p->ReservedBase = reserved;
            p->ReservedSize = totalBytes;
            p->ImageBase = reserved;
            p->ImageSize = imageBytes;
            p->HeapBase = reserved + imageBytes;
            p->HeapSize = HeapBytes;
            p->LogPort = logPort;
            p->CpuCount = cpuCount;
            p->BspIndex = bspIndex;
            for (int i = 0; i < (int)cpuCount; i++) p->ApicIds[i] = apicIds[i];

            ranges = CopyMemoryMap(bs, mapArea, (int)(MapAreaBytes / (ulong)sizeof(PhysicalRange)));
            if (ranges == 0) return 0;
            p->MemoryMap = mapArea;
            p->MemoryMapCount = ranges;
            p->PoolBase = reserved + imageBytes + HeapBytes;
            p->PoolSize = poolBytes;
            policy.HandOver(p);
            s_parameters = p;

            BootLog.Info("hypervisor image placed at 0x" + Platform.Hex.Format(reserved) + " (" + ((long)(imageBytes >> 10)).ToString() + " KiB), "
                + ((long)(totalBytes >> 10)).ToString() + " KiB reserved for " + cpuCount.ToString() + (cpuCount == 1 ? " CPU" : " CPUs"));

            var entry = (delegate* unmanaged<LaunchParameters*, LaunchStatus>)(reserved + info.EntryPointRva);
            LaunchStatus prepared = entry(p);
            if (prepared != LaunchStatus.Virtualized || p->LaunchCpu == null)
            {
                BootLog.Error("the hypervisor cannot run on this machine: " + Message(p) + " (" + Describe(prepared) + ")");
                return 0;
            }

            // APs first, one at a time (the hypervisor's start-up code is not re-entrant), then the BSP.
            for (int i = 0; i < (int)cpuCount; i++) p->Results[i] = LaunchStatus.NotSupported;
            if (mp != null && cpuCount > 1)
            {
                status = mp->StartupAllAPs(mp, &LaunchOnAp, 1, null, 0, null, null);
                if (EFI_STATUS.IsError(status)) BootLog.Error("StartupAllAPs failed: " + EFI_STATUS.Name(status) + "; the APs stay unprotected");
            }
            p->Results[(int)bspIndex] = p->LaunchCpu(bspIndex);

            uint virtualized = 0;
            for (int i = 0; i < (int)cpuCount; i++)
            {
                LaunchStatus result = p->Results[i];
                if (result == LaunchStatus.Virtualized) virtualized++;
                else BootLog.Error("CPU " + i.ToString() + " (APIC ID " + p->ApicIds[i].ToString() + ") is NOT protected: " + Describe(result));
            }
            string vendor = p->Vendor == Vendor.IntelVmx ? "Intel VMX + EPT" : p->Vendor == Vendor.AmdSvm ? "AMD SVM + NPT" : "unknown";
            if (virtualized == cpuCount) BootLog.Info("all " + cpuCount.ToString() + " CPUs run under the hypervisor (" + vendor + ")");
            else BootLog.Warn(virtualized.ToString() + " of " + cpuCount.ToString() + " CPUs run under the hypervisor (" + vendor + ")");
            return virtualized;
        }

        [System.Runtime.InteropServices.UnmanagedCallersOnly]
        private static void LaunchOnAp(void* argument)
        {
            ulong index;
            if (EFI_STATUS.IsError(s_mp->WhoAmI(s_mp, &index)) || index >= s_parameters->CpuCount) return;
            s_parameters->Results[(int)index] = s_parameters->LaunchCpu((uint)index);
        }

        private static uint CopyMemoryMap(EFI_BOOT_SERVICES* bs, PhysicalRange* ranges, int capacity)
        {
            ulong size = 0, key, descriptorSize;
            uint version;
            bs->GetMemoryMap(&size, null, &key, &descriptorSize, &version);
            size += 8 * descriptorSize;   // the pool allocation below may add entries
            byte* buffer;
            if (EFI_STATUS.IsError(bs->AllocatePool(EFI_MEMORY_TYPE.EfiLoaderData, size, (void**)&buffer)))
            {
                BootLog.Error("cannot allocate the memory map buffer");
                return 0;
            }
            ulong status = bs->GetMemoryMap(&size, buffer, &key, &descriptorSize, &version);
            if (EFI_STATUS.IsError(status) || descriptorSize < (ulong)sizeof(EFI_MEMORY_DESCRIPTOR))
            {
                BootLog.Error("GetMemoryMap failed: " + EFI_STATUS.Name(status));
                bs->FreePool(buffer);
                return 0;
            }
            uint count = 0;
            for (ulong offset = 0; offset + descriptorSize <= size && count < capacity; offset += descriptorSize)
            {
                var d = (EFI_MEMORY_DESCRIPTOR*)(buffer + offset);
                ranges[count].Base = d->PhysicalStart;
                ranges[count].Pages = d->NumberOfPages;
                ranges[count].Type = d->Type;
                ranges[count].Attributes = d->Attribute;
                count++;
            }
            bs->FreePool(buffer);
            return count;
        }

        private static string Message(LaunchParameters* p)
        {
            int n = 0;
            while (n < LaunchParameters.MessageLength && p->Message[n] != '\0') n++;
            char* copy = stackalloc char[LaunchParameters.MessageLength];
            for (int i = 0; i < n; i++) copy[i] = p->Message[i];
            return n == 0 ? "no reason given" : string.Concat(new System.ReadOnlySpan<char>(copy, n), System.ReadOnlySpan<char>.Empty);
        }

        public static string Describe(LaunchStatus status) => status switch
        {
            LaunchStatus.Virtualized => "virtualized",
            LaunchStatus.NotSupported => "no hardware virtualization support",
            LaunchStatus.DisabledByFirmware => "virtualization disabled by the firmware",
            LaunchStatus.AlreadyInUse => "virtualization already in use",
            LaunchStatus.LaunchFailed => "the launch failed",
            LaunchStatus.OutOfMemory => "out of hypervisor memory",
            LaunchStatus.BadParameters => "bad launch parameters",
            _ => "status " + ((uint)status).ToString(),
        };
    }
}
