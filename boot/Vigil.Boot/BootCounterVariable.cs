// The fail-safe boot counter (hv/Abi/BootCounter.cs) in the firmware's variable store: read it, and store
// the next count before the hypervisor is launched. Boot services, BSP only.
using Vigil.Abi;
using Vigil.Platform.Uefi;

namespace Vigil.Boot
{
    internal static unsafe class BootCounterVariable
    {
        /// <summary>The count before this boot's bump, and whether a bump was stored (for <see cref="UndoBump"/>).</summary>
        private static uint s_before;
        private static bool s_bumped;

        /// <summary>
        /// Whether the hypervisor may be launched on this boot. When it may not, <paramref name="reason"/> says
        /// why (already reported on the console and the log port).
        /// </summary>
        public static bool AllowLaunch(EFI_SYSTEM_TABLE* st, out string reason)
        {
            reason = "";
            var guid = Guid();
            var getVariable = (delegate* unmanaged<char*, EFI_GUID*, uint*, ulong*, void*, ulong>)st->RuntimeServices->GetVariable;
            var setVariable = (delegate* unmanaged<char*, EFI_GUID*, uint, ulong, void*, ulong>)st->RuntimeServices->SetVariable;
            byte* data = stackalloc byte[8];
            ulong size = 8;
            uint attributes;
            ulong status;
            fixed (char* name = BootCounter.VariableName) status = getVariable(name, &guid, &attributes, &size, data);
            BootCounterRead read;
            uint stored = 0;
            if (status == EFI_STATUS.EFI_NOT_FOUND) read = BootCounterRead.NotFound;
            else if (status == EFI_STATUS.EFI_BUFFER_TOO_SMALL) read = BootCounterRead.Malformed;
            else if (EFI_STATUS.IsError(status)) read = BootCounterRead.Unreadable;
            else if (size != BootCounter.DataBytes) read = BootCounterRead.Malformed;
            else
            {
                read = BootCounterRead.Found;
                stored = BootCounter.Decode(data[0], data[1], data[2], data[3]);
            }

            BootCounterAction action = BootCounter.Decide(read, stored, out uint next);
            if (action == BootCounterAction.FailSafe)
            {
                reason = BootCounter.FailSafeReason(read, stored);
                BootLog.Error(reason);
                if (read == BootCounterRead.Malformed) Store(setVariable, &guid, next);
                return false;
            }
            if (action == BootCounterAction.LaunchWithoutCounter)
            {
                BootLog.Warn("cannot read the boot counter " + BootCounter.VariableName + " (GetVariable: " + EFI_STATUS.Name(status)
                    + "): no fail-safe on this boot if the hypervisor hangs the machine");
            }
            ulong stored2 = Store(setVariable, &guid, next);
            s_before = next - 1;
            s_bumped = !EFI_STATUS.IsError(stored2);
            if (EFI_STATUS.IsError(stored2))
            {
                BootLog.Warn("cannot store the boot counter " + BootCounter.VariableName + " (SetVariable: " + EFI_STATUS.Name(stored2)
                    + "): no fail-safe on this boot if the hypervisor hangs the machine");
            }
            else
            {
                BootLog.Info("boot counter: start " + next.ToString() + " of " + BootCounter.MaxUnconfirmedStarts.ToString()
                    + " without confirmation (vigild resets it once the OS is up and protected)");
            }
            return true;
        }

        /// <summary>
        /// The launch came back without protecting any CPU (no SVM/VMX, too many CPUs...): it did not hang, and the
        /// reason it gave is the one to show, so this start does not count towards the fail-safe boot.
        /// </summary>
        public static void UndoBump(EFI_SYSTEM_TABLE* st)
        {
            if (!s_bumped) return;
            s_bumped = false;
            var guid = Guid();
            var setVariable = (delegate* unmanaged<char*, EFI_GUID*, uint, ulong, void*, ulong>)st->RuntimeServices->SetVariable;
            ulong status = Store(setVariable, &guid, s_before);
            if (EFI_STATUS.IsError(status)) BootLog.Warn("cannot put the boot counter back to " + s_before.ToString() + " (SetVariable: " + EFI_STATUS.Name(status) + ")");
            else BootLog.Info("boot counter back to " + s_before.ToString() + ": the hypervisor did not start, so this start does not count");
        }

        private static ulong Store(delegate* unmanaged<char*, EFI_GUID*, uint, ulong, void*, ulong> setVariable, EFI_GUID* guid, uint count)
        {
            byte* data = stackalloc byte[BootCounter.DataBytes];
            for (int i = 0; i < BootCounter.DataBytes; i++) data[i] = (byte)(count >> (8 * i));
            // A non-volatile SetVariable returns once the variable is in flash (UEFI 2.10 §8.2): nothing to flush.
            fixed (char* name = BootCounter.VariableName) return setVariable(name, guid, BootCounter.Attributes, BootCounter.DataBytes, data);
        }

        private static EFI_GUID Guid() => new EFI_GUID(BootState.GuidData1, BootState.GuidData2, BootState.GuidData3,
            BootState.GuidData4Byte(0), BootState.GuidData4Byte(1), BootState.GuidData4Byte(2), BootState.GuidData4Byte(3),
            BootState.GuidData4Byte(4), BootState.GuidData4Byte(5), BootState.GuidData4Byte(6), BootState.GuidData4Byte(7));
    }
}
