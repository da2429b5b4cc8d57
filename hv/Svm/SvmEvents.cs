// SVM host, GIF=0: event injection into the guest (APM Vol 2 15.20): EVENTINJ is delivered on the
// next VMRUN as if the guest had raised it at the current RIP.
namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmEvents
    {
        private const ulong Valid = 1UL << 31;
        private const ulong ErrorCodeValid = 1UL << 11;
        private const ulong TypeException = 3UL << 8;

        public const byte InvalidOpcode = 6;
        public const byte GeneralProtection = 13;

        public static ulong Exception(byte vector) => vector | TypeException | Valid;

        public static ulong Exception(byte vector, uint errorCode) => vector | TypeException | ErrorCodeValid | Valid | ((ulong)errorCode << 32);

        /// <summary>#UD: what the guest would get for an instruction the CPU does not offer it.</summary>
        public static ExitAction InjectUndefined(SvmCpu* cpu)
        {
            cpu->Vmcb->EventInjection = Exception(InvalidOpcode);
            return ExitAction.Resume;
        }

        public static ExitAction InjectGeneralProtection(SvmCpu* cpu)
        {
            cpu->Vmcb->EventInjection = Exception(GeneralProtection, 0);
            return ExitAction.Resume;
        }
    }
}
