// Publishes hv/Abi/BootState: what this boot did, as a volatile UEFI variable the OS reads through
// efivarfs (vigild status), so an unprotected boot is visible from inside the OS, not only on the
// console. Boot services, BSP only.
using Vigil.Abi;
using Vigil.Platform.Uefi;

namespace Vigil.Boot
{
    internal static unsafe class BootStateVariable
    {
        public static void Publish(EFI_SYSTEM_TABLE* st, string text)
        {
            int length = text.Length < BootState.MaxTextBytes ? text.Length : BootState.MaxTextBytes;
            byte* data = stackalloc byte[BootState.MaxTextBytes];
            for (int i = 0; i < length; i++) data[i] = text[i] < 0x80 ? (byte)text[i] : (byte)'?';
            var guid = new EFI_GUID(BootState.GuidData1, BootState.GuidData2, BootState.GuidData3,
                BootState.GuidData4Byte(0), BootState.GuidData4Byte(1), BootState.GuidData4Byte(2), BootState.GuidData4Byte(3),
                BootState.GuidData4Byte(4), BootState.GuidData4Byte(5), BootState.GuidData4Byte(6), BootState.GuidData4Byte(7));
            var setVariable = (delegate* unmanaged<char*, EFI_GUID*, uint, ulong, void*, ulong>)st->RuntimeServices->SetVariable;
            ulong status;
            fixed (char* name = BootState.VariableName) status = setVariable(name, &guid, BootState.Attributes, (ulong)length, data);
            if (EFI_STATUS.IsError(status)) BootLog.Warn("cannot publish the boot state for the OS (SetVariable " + BootState.VariableName + "): " + EFI_STATUS.Name(status));
            else BootLog.Info("boot state for the OS (" + BootState.VariableName + "): " + text);
        }
    }
}
