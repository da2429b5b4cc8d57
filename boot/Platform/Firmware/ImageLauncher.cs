// Loads and starts a UEFI image from a file with LoadImage/StartImage (UEFI 2.10 §7.4), handing
// it its load options (for a Linux EFI stub: the kernel command line). Reports, does not log.
using Vigil.Platform.Uefi;

namespace Vigil.Platform.Firmware
{
    public static unsafe class ImageLauncher
    {
        /// <summary>
        /// Returns the status of the step that failed (naming it in <paramref name="failedStep"/>),
        /// or, once started, the image's exit status with <paramref name="failedStep"/> null.
        /// </summary>
        public static ulong Start(void* parentImage, EFI_SYSTEM_TABLE* st, in BootVolume volume, string path, string options, out string? failedStep)
        {
            EFI_BOOT_SERVICES* bs = st->BootServices;
            failedStep = "building the device path";
            EFI_DEVICE_PATH_PROTOCOL* devicePath = volume.FilePath(path);
            if (devicePath == null) return EFI_STATUS.EFI_OUT_OF_RESOURCES;

            failedStep = "LoadImage";
            void* child;
            ulong status = bs->LoadImage(0, parentImage, devicePath, null, 0, &child);
            bs->FreePool(devicePath);
            if (EFI_STATUS.IsError(status)) return status;

            failedStep = "EFI_LOADED_IMAGE_PROTOCOL of the loaded image";
            EFI_LOADED_IMAGE_PROTOCOL* loaded;
            EFI_GUID loadedImageGuid = EFI_LOADED_IMAGE_PROTOCOL.Guid;
            status = bs->HandleProtocol(child, &loadedImageGuid, (void**)&loaded);
            if (EFI_STATUS.IsError(status))
            {
                bs->UnloadImage(child);
                return status;
            }

            // LoadOptions: NUL-terminated UCS-2, the size counting the terminator. Pool memory the
            // image may keep referring to, so it is never freed.
            failedStep = "allocating the load options";
            ulong bytes = (ulong)(options.Length + 1) * 2;
            char* text;
            status = bs->AllocatePool(EFI_MEMORY_TYPE.EfiLoaderData, bytes, (void**)&text);
            if (EFI_STATUS.IsError(status))
            {
                bs->UnloadImage(child);
                return status;
            }
            for (int i = 0; i < options.Length; i++) text[i] = options[i];
            text[options.Length] = '\0';
            loaded->LoadOptions = text;
            loaded->LoadOptionsSize = (uint)bytes;

            failedStep = null;
            ulong exitDataSize = 0;
            char* exitData = null;
            return bs->StartImage(child, &exitDataSize, &exitData);
        }
    }
}
