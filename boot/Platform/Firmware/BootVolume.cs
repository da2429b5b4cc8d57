// The FAT volume vigil.efi was started from (its EFI_LOADED_IMAGE_PROTOCOL.DeviceHandle):
// reading files and naming them with device paths for LoadImage.
using Vigil.Platform.Uefi;

namespace Vigil.Platform.Firmware
{
    public unsafe struct BootVolume
    {
        private EFI_BOOT_SERVICES* _bs;
        private void* _device;
        private EFI_FILE_PROTOCOL* _root;

        public readonly void* DeviceHandle => _device;

        /// <summary>Opens the volume holding <paramref name="imageHandle"/>'s file.</summary>
        public static ulong Open(void* imageHandle, EFI_SYSTEM_TABLE* st, out BootVolume volume)
        {
            volume = default;
            volume._bs = st->BootServices;
            EFI_LOADED_IMAGE_PROTOCOL* self;
            EFI_GUID loadedImageGuid = EFI_LOADED_IMAGE_PROTOCOL.Guid;
            ulong status = st->BootServices->HandleProtocol(imageHandle, &loadedImageGuid, (void**)&self);
            if (EFI_STATUS.IsError(status)) return status;
            volume._device = self->DeviceHandle;

            EFI_SIMPLE_FILE_SYSTEM_PROTOCOL* fs;
            EFI_GUID fsGuid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL.Guid;
            status = st->BootServices->HandleProtocol(volume._device, &fsGuid, (void**)&fs);
            if (EFI_STATUS.IsError(status)) return status;
            EFI_FILE_PROTOCOL* root;
            status = fs->OpenVolume(fs, &root);
            if (EFI_STATUS.IsError(status)) return status;
            volume._root = root;
            return EFI_STATUS.EFI_SUCCESS;
        }

        public readonly bool Exists(string path)
        {
            EFI_FILE_PROTOCOL* file;
            fixed (char* p = path)
            {
                if (EFI_STATUS.IsError(_root->Open(_root, &file, p, EFI_FILE_PROTOCOL.EFI_FILE_MODE_READ, 0))) return false;
            }
            file->Close(file);
            return true;
        }

        /// <summary>
        /// Reads a whole file of at most <paramref name="maxSize"/> bytes into pool memory. Returns
        /// EFI_NOT_FOUND when it does not exist and EFI_BAD_BUFFER_SIZE when it is larger.
        /// </summary>
        public readonly ulong ReadFile(string path, int maxSize, out byte* data, out int size)
        {
            data = null;
            size = 0;
            EFI_FILE_PROTOCOL* file;
            ulong status;
            fixed (char* p = path) status = _root->Open(_root, &file, p, EFI_FILE_PROTOCOL.EFI_FILE_MODE_READ, 0);
            if (EFI_STATUS.IsError(status)) return status;

            byte* buffer;
            status = _bs->AllocatePool(EFI_MEMORY_TYPE.EfiLoaderData, (ulong)maxSize + 1, (void**)&buffer);
            if (EFI_STATUS.IsError(status))
            {
                file->Close(file);
                return status;
            }
            int total = 0;
            while (true)
            {
                // Ask for one byte more than allowed so an oversized file is noticed.
                ulong chunk = (ulong)(maxSize + 1 - total);
                if (chunk == 0) break;
                status = file->Read(file, &chunk, buffer + total);
                if (EFI_STATUS.IsError(status) || chunk == 0) break;
                total += (int)chunk;
            }
            file->Close(file);
            if (EFI_STATUS.IsError(status))
            {
                _bs->FreePool(buffer);
                return status;
            }
            if (total > maxSize)
            {
                _bs->FreePool(buffer);
                return EFI_STATUS.EFI_BAD_BUFFER_SIZE;
            }
            data = buffer;
            size = total;
            return EFI_STATUS.EFI_SUCCESS;
        }

        /// <summary>
        /// The full device path of a file on this volume: the volume's own device path, a media
        /// file-path node (UEFI 2.10 §10.3.5.4) and the end node. Pool memory; null on failure.
        /// </summary>
        public readonly EFI_DEVICE_PATH_PROTOCOL* FilePath(string path)
        {
            EFI_DEVICE_PATH_PROTOCOL* device;
            EFI_GUID dpGuid = EFI_DEVICE_PATH_PROTOCOL.Guid;
            if (EFI_STATUS.IsError(_bs->HandleProtocol(_device, &dpGuid, (void**)&device))) return null;
            int deviceLength = 0;
            for (EFI_DEVICE_PATH_PROTOCOL* node = device; !node->IsEnd; node = (EFI_DEVICE_PATH_PROTOCOL*)((byte*)node + node->Length))
            {
                if (node->Length < 4) return null;    // malformed: would loop forever
                deviceLength += node->Length;
            }
            int fileNodeLength = 4 + ((path.Length + 1) * 2);
            if (fileNodeLength > 0xFFFF) return null;
            byte* result;
            if (EFI_STATUS.IsError(_bs->AllocatePool(EFI_MEMORY_TYPE.EfiLoaderData, (ulong)(deviceLength + fileNodeLength + 4), (void**)&result))) return null;
            for (int i = 0; i < deviceLength; i++) result[i] = ((byte*)device)[i];

            var fileNode = (EFI_DEVICE_PATH_PROTOCOL*)(result + deviceLength);
            fileNode->Type = EFI_DEVICE_PATH_PROTOCOL.MEDIA_DEVICE_PATH;
            fileNode->SubType = EFI_DEVICE_PATH_PROTOCOL.MEDIA_FILEPATH_DP;
            fileNode->Length0 = (byte)fileNodeLength;
            fileNode->Length1 = (byte)(fileNodeLength >> 8);
            char* name = (char*)((byte*)fileNode + 4);
            for (int i = 0; i < path.Length; i++) name[i] = path[i];
            name[path.Length] = '\0';

            var end = (EFI_DEVICE_PATH_PROTOCOL*)((byte*)fileNode + fileNodeLength);
            end->Type = EFI_DEVICE_PATH_PROTOCOL.END_DEVICE_PATH_TYPE;
            end->SubType = EFI_DEVICE_PATH_PROTOCOL.END_ENTIRE_DEVICE_PATH_SUBTYPE;
            end->Length0 = 4;
            end->Length1 = 0;
            return (EFI_DEVICE_PATH_PROTOCOL*)result;
        }
    }
}
