// The hypervisor's entry points, called by vigil.efi while boot services still run:
//   VigilHvMain(LaunchParameters*) once on the BSP: runtime start-up, log, CPU checks, shared state;
//   LaunchCpu(index) on every CPU, one at a time: the back end's generated entry, set by its Prepare.
// The back end is chosen once by CPU vendor; dispatch is a switch, never an interface call.
using System.Runtime.InteropServices;
using Internal.Runtime;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Platform;

namespace Vigil.Hypervisor
{
    internal static unsafe class HvMain
    {
        [UnmanagedCallersOnly(EntryPoint = "VigilHvMain")]
        private static LaunchStatus Main(LaunchParameters* p)
        {
            if (p == null || p->Signature != LaunchParameters.ExpectedSignature || p->Version != LaunchParameters.CurrentVersion
                || p->Size != (uint)sizeof(LaunchParameters) || p->CpuCount == 0 || p->CpuCount > LaunchParameters.MaxCpus)
            {
                return LaunchStatus.BadParameters;
            }
            Startup.Initialize((void*)p->HeapBase, p->HeapSize);
            Hv.Initialize(p);
            Hv.Log.Info("hypervisor " + BuildInfo.Version + " starting: " + p->CpuCount.ToString() + " CPUs, "
                + ((long)(p->ReservedSize >> 10)).ToString() + " KiB reserved at 0x" + Hex(p->ReservedBase));

            p->Vendor = CpuVendor.Detect();
            if (!InitializeSharedState(p)) return Fail(p, LaunchStatus.OutOfMemory, "the page pool is too small for the log rings, the exit statistics, the AP start-up table and the guard's event log");
            LaunchStatus status = p->Vendor switch
            {
                Vendor.AmdSvm => Svm.SvmBackEnd.Prepare(p),
                Vendor.IntelVmx => Vmx.VmxBackEnd.Prepare(p),
                _ => Fail(p, LaunchStatus.NotSupported, "the CPU is neither Intel nor AMD"),
            };
            // Each back end's Prepare points LaunchCpu at its generated launch entry, so the guest resumes in
            // vigil.efi (the caller) and never runs hypervisor code.
            if (status == LaunchStatus.Virtualized && p->LaunchCpu == null)
            {
                return Fail(p, LaunchStatus.LaunchFailed, "the back end did not provide a launch entry");
            }
            // Guest memory the exit handlers read for the guest (page walks, instruction bytes, hypercall
            // buffers): only what the host's identity map reaches, never the reservation (HostPhysicalMemory).
            if (status == LaunchStatus.Virtualized) HostPhysicalMemory.Initialize(Host.HostEnvironment.Map.Limit, p->ReservedBase, p->ReservedSize);
            return status;
        }

        /// <summary>Vendor-neutral state every back end uses: log rings, exit statistics, the hypercall scratch areas, the AP start-up table.</summary>
        private static bool InitializeSharedState(LaunchParameters* p)
        {
            ulong rings = Hv.AllocatePages(LogRings.StorageBytes(p->CpuCount) / 4096);
            if (rings == 0 || !LogRings.Initialize((byte*)rings, p->CpuCount, p->Vendor)) return false;
            LogRings.Write(p->BspIndex, LogEvent.HypervisorStarted, p->CpuCount, p->ReservedSize, p->ReservedBase);
            ulong statistics = Hv.AllocatePages((ExitStatistics.StorageBytes(p->CpuCount) + 4095) / 4096);
            ulong scratch = Hv.AllocatePages(Hypercalls.ScratchBytesPerCpu / 4096 * p->CpuCount);
            var startup = (StartupSignal*)Hv.AllocatePages((ApStartup.BytesFor(p->CpuCount) + 4095) / 4096);
            if (statistics == 0 || scratch == 0 || startup == null) return false;
            for (uint i = 0; i < p->CpuCount; i++) startup[i] = new StartupSignal { ApicId = p->ApicIds[(int)i] };
            ApStartup.Initialize(startup, p->CpuCount);
            var marks = (uint*)Hv.AllocatePages(((p->CpuCount * 4UL) + 4095) / 4096);
            if (marks == null) return false;
            ApicTrap.Initialize(marks, p->CpuCount, p->BspIndex);   // the back end enables lifting it (WBINVD intercepted)
            uint* apicIds = stackalloc uint[(int)p->CpuCount];
            for (int i = 0; i < (int)p->CpuCount; i++) apicIds[i] = p->ApicIds[i];
            ExitStatistics.Initialize((CpuStatus*)statistics, p->CpuCount, apicIds);
            Hypercalls.Initialize(p->Vendor, p->ReservedBase, p->ReservedSize, (byte*)scratch, p->CpuCount);
            // The guard's event log, from launch: attempts on the hypervisor's own memory are recorded before any Protect.
            ulong events = Hv.AllocatePages(PoolSize.GuardEventLogBytes / 4096);
            if (events == 0) return false;
            Core.Guard.GuardState.Events = Core.Guard.GuardEventLog.Initialize((void*)events, PoolSize.GuardEventLogBytes);
            if (Core.Guard.GuardState.Events == null) return false;
            return InitializePolicy(p);
        }

        /// <summary>
        /// The policy, from launch: the compiled policy vigil.efi read from the ESP, copied into the hypervisor's memory and
        /// validated again here (the loader's check is not trusted), else the built-in rules; said on the log port either way.
        /// </summary>
        private static bool InitializePolicy(LaunchParameters* p)
        {
            ulong storage = Hv.AllocatePages(Core.Guard.PolicyStore.StorageBytes / 4096);
            if (storage == 0) return false;
            int nameLength = 0;
            while (nameLength < LaunchParameters.PolicyNameLength && p->PolicyName[nameLength] != '\0') nameLength++;
            int messageLength = 0;
            while (messageLength < LaunchParameters.MessageLength && p->PolicyMessage[messageLength] != '\0') messageLength++;
            char* name = stackalloc char[LaunchParameters.PolicyNameLength];
            char* message = stackalloc char[LaunchParameters.MessageLength];
            for (int i = 0; i < nameLength; i++) name[i] = p->PolicyName[i];
            for (int i = 0; i < messageLength; i++) message[i] = p->PolicyMessage[i];
            // Never read past what the hypervisor would keep: a larger size is refused without reading it.
            uint size = p->PolicyImageSize > (uint)PolicyStatus.MaxImageBytes ? (uint)PolicyStatus.MaxImageBytes + 1 : p->PolicyImageSize;
            var image = p->PolicyImage == 0 ? default : new System.ReadOnlySpan<byte>((void*)p->PolicyImage, (int)size);
            var nameSpan = new System.ReadOnlySpan<char>(name, nameLength);
            string? problem = Core.Guard.PolicyStore.Launch((byte*)storage, image, p->PolicyState, nameSpan, new System.ReadOnlySpan<char>(message, messageLength));
            string shown = string.Concat(nameSpan, System.ReadOnlySpan<char>.Empty);
            if (p->PolicyState == LaunchPolicyState.NotConfigured) Hv.Log.Info("policy: the built-in rules (vigil.conf says policy = built-in)");
            else if (problem == null) Hv.Log.Info("policy " + shown + " in force from launch: " + Core.Guard.GuardState.RuleHeader.Count.ToString() + " rules");
            else Hv.Log.Warn("policy file " + shown + " not used (" + problem + "): the built-in rules are in force");
            return true;
        }

        /// <summary>Records why the hypervisor cannot run (vigil.efi prints it) and returns <paramref name="status"/>.</summary>
        public static LaunchStatus Fail(LaunchParameters* p, LaunchStatus status, string message)
        {
            int n = message.Length < LaunchParameters.MessageLength - 1 ? message.Length : LaunchParameters.MessageLength - 1;
            for (int i = 0; i < n; i++) p->Message[i] = message[i];
            p->Message[n] = '\0';
            Hv.Log.Error(message);
            return status;
        }

        public static string Hex(ulong value) => Platform.Hex.Format(value);

        [UnmanagedCallersOnly(EntryPoint = "vigil_report_fatal")]
        private static void ReportFatal(char* line)
        {
            int n = 0;
            while (line[n] != '\0') n++;
            Hv.Log.Raw(new System.ReadOnlySpan<char>(line, n));
        }
    }

    /// <summary>Which back end this CPU needs (CPUID leaf 0 vendor string).</summary>
    internal static unsafe class CpuVendor
    {
        public static Vendor Detect()
        {
            uint* r = stackalloc uint[4];
            Cpu.Cpuid(0, 0, r);
            // "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel"; "AuthenticAMD": EBX "Auth", EDX "enti", ECX "cAMD".
            if (r[1] == 0x756E6547 && r[3] == 0x49656E69 && r[2] == 0x6C65746E) return Vendor.IntelVmx;
            if (r[1] == 0x68747541 && r[3] == 0x69746E65 && r[2] == 0x444D4163) return Vendor.AmdSvm;
            return Vendor.None;
        }
    }
}
