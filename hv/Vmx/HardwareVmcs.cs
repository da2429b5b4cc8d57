// VMX root. The current VMCS through the VMREAD/VMWRITE stubs (SDM Vol 3C 31.3). Counts failed
// writes so VMCS set-up can report the first one instead of launching with a half-written VMCS.
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx
{
    internal unsafe struct HardwareVmcs : IVmcsAccess
    {
        public int Failures;
        public VmcsField FirstFailure;

        public bool Read(VmcsField field, out ulong value)
        {
            ulong v;
            bool ok = HvStubs.VmRead((uint)field, &v) == (ulong)VmxResult.Success;
            value = ok ? v : 0;
            return ok;
        }

        public bool Write(VmcsField field, ulong value)
        {
            if (HvStubs.VmWrite((uint)field, value) == (ulong)VmxResult.Success) return true;
            if (Failures++ == 0) FirstFailure = field;
            return false;
        }

        public void WidthMismatch(VmcsField field, VmcsWidth accessorWidth)
            => System.Environment.FailFast("VMCS field 0x" + HvMain.Hex((uint)field) + " accessed with the wrong width");
    }

    /// <summary>What a VMX instruction stub returns (SDM Vol 3C 31.2 conventions).</summary>
    internal enum VmxResult : ulong
    {
        Success = 0,
        FailInvalid = 1,
        FailValid = 2,
    }
}
