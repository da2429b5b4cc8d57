// Per-CPU VMX state: one page-aligned block per CPU, found from the host stack (the qword at HOST_RSP,
// on hv/Host's stack for this CPU, points here). Written at launch (boot services, one CPU at a time) and then only by its own CPU in
// VMX root with interrupts off.
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Vmx
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct VmxCpu
    {
        /// <summary>Pages per CPU: this block, the VMXON region, the VMCS (the host stack is hv/Host's).</summary>
        public const int Pages = 3;

        public uint Index;
        public uint ApicId;
        public ulong VmxonPhysical;
        public ulong VmcsPhysical;
        public ulong HostStackTop;

        /// <summary>CR0/CR4 FIXED0 and FIXED1 (SDM Vol 3C A.7, A.8), for the CR handlers.</summary>
        public ulong Cr0Fixed0, Cr0Fixed1, Cr4Fixed0, Cr4Fixed1;

        /// <summary>The CR0/CR4 guest/host masks written at launch: the bits the guest reads from the shadows (VmxVcpu).</summary>
        public ulong Cr0Mask, Cr4Mask;

        /// <summary>An interrupt or NMI held back behind an exception a handler raised (hv/Core/Vcpu/VcpuEvents).</summary>
        public Vigil.Hypervisor.Core.Vcpu.VcpuEvent Deferred;

        /// <summary>1 after the first exit was handled (the launch took).</summary>
        public uint Running;


        /// <summary>Unexpected events already reported in full (later ones are counted only).</summary>
        public uint Reports;
    }
}
