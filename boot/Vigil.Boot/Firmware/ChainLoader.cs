// Loads and starts the OS loader with LoadImage/StartImage (UEFI 2.10 §7.4), handing it its
// load options (the kernel command line for a Linux EFI stub).
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
            EFI_BOOT_SERVICES* bs = st->BootServices;
            EFI_DEVICE_PATH_PROTOCOL* devicePath = volume.FilePath(path);
            if (devicePath == null)
            {
                BootLog.Error("cannot build a device path for " + path);
                return EFI_STATUS.EFI_OUT_OF_RESOURCES;
            }
            void* child;
            ulong status = bs->LoadImage(0, parentImage, devicePath, null, 0, &child);
            bs->FreePool(devicePath);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("LoadImage(" + path + ") failed: " + EFI_STATUS.Name(status));
                return status;
            }

            EFI_LOADED_IMAGE_PROTOCOL* loaded;
            EFI_GUID loadedImageGuid = EFI_LOADED_IMAGE_PROTOCOL.Guid;
            status = bs->HandleProtocol(child, &loadedImageGuid, (void**)&loaded);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("the loaded image has no EFI_LOADED_IMAGE_PROTOCOL: " + EFI_STATUS.Name(status));
                bs->UnloadImage(child);
                return status;
            }
            // LoadOptions: NUL-terminated UCS-2; the size counts the terminator. Pool memory the
            // loader may keep referring to, so it is never freed.
            ulong bytes = (ulong)(options.Length + 1) * 2;
            char* text;
            status = bs->AllocatePool(EFI_MEMORY_TYPE.EfiLoaderData, bytes, (void**)&text);
            if (EFI_STATUS.IsError(status))
            {
                BootLog.Error("cannot allocate the load options: " + EFI_STATUS.Name(status));
                bs->UnloadImage(child);
                return status;
            }
            for (int i = 0; i < options.Length; i++) text[i] = options[i];
            text[options.Length] = '\0';
            loaded->LoadOptions = text;
            loaded->LoadOptionsSize = (uint)bytes;

            BootLog.Info("starting " + path + " with options \"" + options + "\"");
            ulong exitDataSize = 0;
            char* exitData = null;
            status = bs->StartImage(child, &exitDataSize, &exitData);
            BootLog.Error("the OS loader " + path + " returned " + EFI_STATUS.Name(status));
            return status;
        }
    }
}
