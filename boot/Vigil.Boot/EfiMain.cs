// vigil.efi entry point. UEFI boot services, BSP only, interrupts as the firmware has them.
//   1. runtime start-up (heap, statics), banner on console and serial;
//   2. \EFI\vigil\vigil.conf: settings, with a message for every line that cannot be used;
//   3. the compiled policy named by vigil.conf (Hypervisor/PolicyFile.cs), checked, or the built-in rules (said loudly);
//      the hypervisor on every CPU (Hypervisor/HypervisorLauncher.cs) with that policy, or a loud unprotected boot (also
//      the fail-safe one after 3 unconfirmed starts: BootCounterVariable.cs);
//   4. LoadImage/StartImage of the configured OS loader with its load options.
using System.Runtime.InteropServices;
using Internal.Runtime;
using Vigil.Abi;
using Vigil.Boot.Config;
using Vigil.Boot.Firmware;
using Vigil.Platform.Firmware;
using Vigil.Platform.Uefi;

namespace Vigil.Boot
{
    internal static unsafe class EfiMain
    {
        /// <summary>Boot-time heap: configuration, messages, paths. Boot services memory, freed by the OS.</summary>
        private const ulong HeapPages = 256;

        [UnmanagedCallersOnly(EntryPoint = "EfiMain")]
        private static ulong Main(void* imageHandle, EFI_SYSTEM_TABLE* st)
        {
            EFI_BOOT_SERVICES* bs = st->BootServices;
            ulong heap;
            ulong status = bs->AllocatePages(EFI_ALLOCATE_TYPE.AllocateAnyPages, EFI_MEMORY_TYPE.EfiLoaderData, HeapPages, &heap);
            if (EFI_STATUS.IsError(status))
            {
                fixed (char* m = "vigil: ERROR: cannot allocate the boot heap; starting nothing\r\n") st->ConOut->OutputString(st->ConOut, m);
                return status;
            }
            Startup.Initialize((void*)heap, HeapPages * 4096);
            BootLog.AttachConsole(st->ConOut);
            bool serialPresent = BootLog.AttachSerial(VigilConfig.DefaultLogPort);

            // Boot managers arm a 5-minute watchdog before starting a boot option; under emulation
            // the way to the OS can take longer, and the OS loader re-arms it if it wants one.
            bs->SetWatchdogTimer(0, 0, 0, null);

            BootLog.Info("Vigil " + BuildInfo.Version + " - thin security hypervisor (C#, NativeAOT, no runtime)");
            if (!serialPresent) BootLog.Warn("no UART at the default log port " + VigilConfig.PortName(VigilConfig.DefaultLogPort) + "; logging to the console only");

            status = BootVolume.Open(imageHandle, st, out BootVolume volume);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("cannot open the volume vigil.efi was started from: " + EFI_STATUS.Name(status) + "; starting nothing");
                return status;
            }

            VigilConfig config = LoadConfig(in volume);
            if (config.LogPort != BootLog.SerialPort)
            {
                if (BootLog.AttachSerial(config.LogPort)) BootLog.Info("log port is now " + VigilConfig.PortName(config.LogPort));
                else BootLog.Warn("no UART answers at log_port " + VigilConfig.PortName(config.LogPort) + "; logging to the console only");
            }

            if (config.Hypervisor && !BootCounterVariable.AllowLaunch(st, out string failSafeReason))
            {
                BootLog.Warn("fail-safe boot: the OS boots UNPROTECTED");
                BootStateVariable.Publish(st, BootState.Unprotected(failSafeReason));
            }
            else if (config.Hypervisor)
            {
                // The policy before the hypervisor starts: its rules are in force from launch (a bad file: the built-in ones, said loudly).
                Hypervisor.PolicyFile policy = Hypervisor.PolicyFile.Load(in volume, config.Policy);
                uint protectedCpus = Hypervisor.HypervisorLauncher.Start(st, in volume, BootLog.SerialPort, in policy);
                if (protectedCpus == 0)
                {
                    BootCounterVariable.UndoBump(st);
                    BootLog.Warn("no CPU runs under the hypervisor: the OS boots UNPROTECTED");
                    BootStateVariable.Publish(st, BootState.Unprotected(BootLog.LastError ?? "no CPU runs under the hypervisor"));
                }
                else
                {
                    BootStateVariable.Publish(st, BootState.WithPolicy(BootState.Protected(protectedCpus, Hypervisor.HypervisorLauncher.CpuCount), policy.Summary));
                }
            }
            else
            {
                BootLog.Warn("hypervisor = off in vigil.conf: the OS boots UNPROTECTED");
                BootStateVariable.Publish(st, BootState.Unprotected("hypervisor = off in vigil.conf"));
            }

            string? loader = ChainLoader.Find(in volume, config.Loader);
            if (loader == null)
            {
                BootLog.Error("nothing to start; returning to the firmware boot manager");
                bs->Stall(3 * 1000 * 1000);   // long enough to read on a screen
                return EFI_STATUS.EFI_NOT_FOUND;
            }
            return ChainLoader.Start(imageHandle, st, in volume, loader, config.Options);
        }

        private static VigilConfig LoadConfig(in BootVolume volume)
        {
            ulong status = volume.ReadFile(VigilConfig.Path, ConfigParser.MaxFileSize, out byte* data, out int size);
            if (status == EFI_STATUS.EFI_NOT_FOUND)
            {
                var defaults = new VigilConfig();
                BootLog.Info("no " + VigilConfig.Path + "; using the defaults");
                Report(defaults);
                return defaults;
            }
            if (status == EFI_STATUS.EFI_BAD_BUFFER_SIZE)
            {
                BootLog.Warn("vigil.conf: the file is larger than " + ConfigParser.MaxFileSize.ToString() + " bytes; ignoring all of it and using the defaults");
                var defaults = new VigilConfig();
                Report(defaults);
                return defaults;
            }
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Warn("cannot read " + VigilConfig.Path + ": " + EFI_STATUS.Name(status) + "; using the defaults");
                var defaults = new VigilConfig();
                Report(defaults);
                return defaults;
            }
            ConfigParseResult result = ConfigParser.Parse(new System.ReadOnlySpan<byte>(data, size));
            BootLog.Info("read " + VigilConfig.Path);
            for (int i = 0; i < result.DiagnosticCount; i++) BootLog.Warn(result.Diagnostic(i).ToString());
            if (result.DroppedDiagnostics > 0)
            {
                BootLog.Warn("vigil.conf: " + result.DroppedDiagnostics.ToString() + " more problems not shown");
            }
            Report(result.Config);
            return result.Config;
        }

        private static void Report(VigilConfig config)
        {
            BootLog.Info("loader   = " + config.Loader);
            BootLog.Info("options  = " + config.Options);
            BootLog.Info("log_port = " + VigilConfig.PortName(config.LogPort));
            BootLog.Info("hypervisor = " + (config.Hypervisor ? "on" : "off"));
            BootLog.Info("policy   = " + (config.Policy ?? "built-in"));
        }

        /// <summary>The core library's fail-fast hook: report on every sink we have.</summary>
        [UnmanagedCallersOnly(EntryPoint = "vigil_report_fatal")]
        private static void ReportFatal(char* line) => BootLog.WriteFatal(line);
    }
}
