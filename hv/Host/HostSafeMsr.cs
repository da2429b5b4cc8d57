// SVM host (GIF=0) or VMX root, interrupts off. RDMSR/WRMSR of an MSR the guest chose, through the
// generated safe stubs (tools/Vigil.Tool/Stubs/StubCatalog.Host.cs): a #GP the CPU raises is caught by
// the host #GP fix-up (HostExceptions) and comes back as false, for the caller to reflect to the guest
// (hv/Core/Msr/GuestMsrAccess.cs). Exceptions are delivered with GIF=0 too (APM Vol 2 15.17 holds
// interrupts only), so the fix-up works under both back ends.
using Vigil.Hypervisor.Core.Msr;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Host
{
    public unsafe struct HostSafeMsr : IMsrInstructions
    {
        public bool TryRead(uint msr, out ulong value)
        {
            ulong result;
            bool ok = HvStubs.SafeReadMsr(msr, &result) == 0;
            value = ok ? result : 0;
            return ok;
        }

        public bool TryWrite(uint msr, ulong value) => HvStubs.SafeWriteMsr(msr, value) == 0;
    }
}
