// AMD SVM back end (APM Vol 2 ch. 15): not written yet. Reports itself as unavailable, so
// vigil.efi boots the OS unprotected with that message.
using Vigil.Abi;

namespace Vigil.Hypervisor.Svm
{
    internal static unsafe class SvmBackEnd
    {
        public static LaunchStatus Prepare(LaunchParameters* p)
            => HvMain.Fail(p, LaunchStatus.NotSupported, "the AMD SVM back end is not written yet");

        public static LaunchStatus Launch(uint index) => LaunchStatus.NotSupported;
    }
}
