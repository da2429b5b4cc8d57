// Intel VMX back end (SDM Vol 3C ch. 24-29): not written yet. Reports itself as unavailable, so
// vigil.efi boots the OS unprotected with that message.
using Vigil.Abi;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxBackEnd
    {
        public static LaunchStatus Prepare(LaunchParameters* p)
            => HvMain.Fail(p, LaunchStatus.NotSupported, "the Intel VMX back end is not written yet");

        public static LaunchStatus Launch(uint index) => LaunchStatus.NotSupported;
    }
}
