// The fail-safe boot counter (issue 13): a non-volatile UEFI variable of vigil.efi's own, so a hypervisor
// build that hangs or crashes the machine cannot lock its owner out.
//   vigil.efi, before it launches the hypervisor: reads the count, and if fewer than MaxUnconfirmedStarts
//   starts are still unconfirmed, stores count + 1 (SetVariable of a non-volatile variable returns once
//   the firmware has written it) and launches; otherwise starts the OS without the hypervisor, says why
//   on the console and the log port, and publishes the reason in VigilBootState (BootState.cs). A launch that
//   comes back with no CPU protected (no SVM/VMX, too many CPUs) did not hang: the count goes back, so that
//   boot's own reason is the one shown, not a fail-safe one three boots later.
//   vigild, once the OS is up and protected (`vigild protect` succeeding, or `vigild confirm`): writes 0.
//   After a fail-safe boot the count stays where it is (every boot stays unprotected) until
//   `vigild confirm --retry` lets the next boot try the hypervisor again.
// Linux shows it as /sys/firmware/efi/efivars/VigilBootCount-<guid>: 4 bytes of attributes, then the count
// (UINT32, little-endian). Same vendor GUID as VigilBootState.
namespace Vigil.Abi
{
    /// <summary>What vigil.efi found when it read the counter.</summary>
    public enum BootCounterRead
    {
        /// <summary>No such variable: nothing unconfirmed (a first boot, or vigild reset it by deleting it).</summary>
        NotFound,

        /// <summary>A 4-byte count.</summary>
        Found,

        /// <summary>A variable of another size: not one vigil.efi wrote.</summary>
        Malformed,

        /// <summary>GetVariable failed otherwise: the firmware cannot keep the counter.</summary>
        Unreadable,
    }

    /// <summary>What vigil.efi does with the count it read.</summary>
    public enum BootCounterAction
    {
        /// <summary>Store the next count, then launch the hypervisor.</summary>
        Launch,

        /// <summary>Launch the hypervisor although the counter cannot be kept (said as a warning).</summary>
        LaunchWithoutCounter,

        /// <summary>Start the OS without the hypervisor (the fail-safe boot).</summary>
        FailSafe,
    }

    public static class BootCounter
    {
        public const string VariableName = "VigilBootCount";

        /// <summary>EFI_VARIABLE_NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS: kept across resets, writable by the OS.</summary>
        public const uint Attributes = 0x7;

        /// <summary>Bytes of data: one UINT32.</summary>
        public const int DataBytes = 4;

        /// <summary>Starts through the hypervisor without a confirmation after which the next boot is a fail-safe one.</summary>
        public const uint MaxUnconfirmedStarts = 3;

        /// <summary>The file name under /sys/firmware/efi/efivars.</summary>
        public const string EfivarsName = VariableName + "-" + BootState.VendorGuidText;

        /// <summary>The words every fail-safe reason starts with (vigild and the tests look for them).</summary>
        public const string FailSafePrefix = "fail-safe: ";

        /// <summary>
        /// The pure decision: what to do with what was read (<paramref name="stored"/> counts only when
        /// <paramref name="read"/> is Found), and the count to store before launching (<paramref name="next"/>;
        /// for FailSafe, what the variable should hold: unchanged, or the limit in place of a malformed one).
        /// </summary>
        public static BootCounterAction Decide(BootCounterRead read, uint stored, out uint next)
        {
            switch (read)
            {
                case BootCounterRead.NotFound:
                    next = 1;
                    return BootCounterAction.Launch;
                case BootCounterRead.Found when stored < MaxUnconfirmedStarts:
                    next = stored + 1;
                    return BootCounterAction.Launch;
                case BootCounterRead.Found:
                    next = stored;
                    return BootCounterAction.FailSafe;
                case BootCounterRead.Malformed:
                    // Not knowing how many starts failed is treated like too many: the safe side for the owner.
                    next = MaxUnconfirmedStarts;
                    return BootCounterAction.FailSafe;
                default:
                    next = 1;
                    return BootCounterAction.LaunchWithoutCounter;
            }
        }

        /// <summary>Why a fail-safe boot is unprotected, for the console, the log port and VigilBootState.</summary>
        public static string FailSafeReason(BootCounterRead read, uint stored) => read == BootCounterRead.Malformed
            ? FailSafePrefix + "the boot counter " + VariableName + " is malformed; the hypervisor is not started until `vigild confirm --retry`"
            : FailSafePrefix + stored.ToString() + " starts through the hypervisor in a row never reached a confirmed, protected OS (no `vigild confirm`); the hypervisor is not started until `vigild confirm --retry`";

        /// <summary>The count's bytes as stored (little-endian).</summary>
        public static uint Decode(byte b0, byte b1, byte b2, byte b3) => b0 | ((uint)b1 << 8) | ((uint)b2 << 16) | ((uint)b3 << 24);
    }
}
