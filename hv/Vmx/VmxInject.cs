// VMX root, interrupts off. Event injection on the next VM entry (SDM Vol 3C 25.8.3, 27.6).
namespace Vigil.Hypervisor.Vmx
{
    internal static class VmxInject
    {
        public const uint InvalidOpcode = 6;
        public const uint GeneralProtection = 13;

        private const uint Valid = 1u << 31;
        private const uint DeliverErrorCode = 1u << 11;
        private const uint HardwareException = 3u << 8;
        private const uint NmiType = 2u << 8;

        public static ExitAction UndefinedOpcode(ref VmxExit e)
        {
            e.Write(VmcsField.VmEntryInterruptionInformation, Valid | HardwareException | InvalidOpcode);
            return ExitAction.Resume;
        }

        public static ExitAction GeneralProtectionFault(ref VmxExit e)
        {
            e.Write(VmcsField.VmEntryExceptionErrorCode, 0);
            e.Write(VmcsField.VmEntryInterruptionInformation, Valid | HardwareException | DeliverErrorCode | GeneralProtection);
            return ExitAction.Resume;
        }

        public static void Nmi(ref VmxExit e) => e.Write(VmcsField.VmEntryInterruptionInformation, Valid | NmiType | 2);
    }
}
