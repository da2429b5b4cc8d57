// Loads and starts the OS loader with LoadImage/StartImage (UEFI 2.10 §7.4), handing it its
// load options (the kernel command line for a Linux EFI stub).
using Vigil.Platform.Firmware;
using Vigil.Platform.Uefi;

namespace Vigil.Boot.Firmware
{
    internal static unsafe class ChainLoader
    {
        /// <summary>Well-known OS loaders tried, in order, when the configured one is missing.</summary>
        public static readonly string[] Fallbacks =
        [
            Config.VigilConfig.DefaultLoader,
            "\\EFI\\debian\\shimx64.efi",
            "\\EFI\\debian\\grubx64.efi",
            "\\EFI\\systemd\\systemd-bootx64.efi",
        ];

        /// <summary>The configured loader if it exists, else the first fallback that does; null if none.</summary>
        public static string? Find(in BootVolume volume, string configured)
        {
            if (volume.Exists(configured)) return configured;
            string? found = null;
            for (int i = 0; i < Fallbacks.Length && found == null; i++)
            {
                if (Fallbacks[i] != configured && volume.Exists(Fallbacks[i])) found = Fallbacks[i];
            }
            string tried = "  " + configured + " (configured)";
            for (int i = 0; i < Fallbacks.Length; i++)
            {
                if (Fallbacks[i] != configured) tried = tried + "\n  " + Fallbacks[i];
            }
            if (found == null)
            {
                BootLog.Error("no OS loader found on the boot volume. Looked for:\n" + tried);
            }
            else
            {
                BootLog.Warn("the configured OS loader " + configured + " does not exist; starting " + found + " instead. Looked for:\n" + tried);
            }
            return found;
        }

        /// <summary>Loads, passes the options and starts; returns only if the loader fails or exits.</summary>
        public static ulong Start(void* parentImage, EFI_SYSTEM_TABLE* st, in BootVolume volume, string path, string options)
        {
            BootLog.Info("starting " + path + " with options \"" + options + "\"");
            ulong status = ImageLauncher.Start(parentImage, st, in volume, path, options, out string? failedStep);
            if (failedStep != null) BootLog.Error(failedStep + " for " + path + " failed: " + EFI_STATUS.Name(status));
            else BootLog.Error("the OS loader " + path + " returned " + EFI_STATUS.Name(status));
            return status;
        }
    }
}
