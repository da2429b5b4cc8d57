// Per-CPU SVM state (SVM host, GIF=0 while the guest is stopped): one page-aligned block from the
// pool, found by index or from the host frame the VMRUN loop hands to the exit handler. Data shared
// by all CPUs (MSR permission map, nested page tables) lives in SvmBackEnd.
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Svm
{
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct SvmCpu
    {
        public uint Index;
        public uint ApicId;

        /// <summary>The guest VMCB (identity-mapped: the pointer is its physical address).</summary>
        public Vmcb* Vmcb;

        /// <summary>VMCB for the host's FS/GS/TR/LDTR hidden state (VMSAVE at launch, VMLOAD after each exit).</summary>
        public ulong HostVmcb;

        /// <summary>VM_HSAVE_PA: where VMRUN saves the host state (APM Vol 2 15.30.4).</summary>
        public ulong HostSave;

        public SvmHostFrame* Frame;

        /// <summary>RFLAGS of the firmware at launch (to restore IF on a failed launch).</summary>
        public ulong LaunchFlags;

        /// <summary>1 once the first VMRUN succeeded.</summary>
        public uint Launched;

        /// <summary>1 while the handler of an NMI injected into the guest runs (IRET intercepted: SvmNmi).</summary>
        public uint NmiInService;

        /// <summary>Length of the instruction the last nested page fault emulated (SvmInstructionLength reads it).</summary>
        public int EmulatedLength;

        /// <summary>Firmware GDTR/IDTR captured at launch (a failed launch restores them).</summary>
        public ulong FirmwareGdtBase;
        public ulong FirmwareIdtBase;
        public ushort FirmwareGdtLimit;
        public ushort FirmwareIdtLimit;
        public ushort FirmwareCs;
        public ushort FirmwareDs;
        public ushort FirmwareSs;
        public ushort Padding0;
        public ulong FirmwareCr3;

        /// <summary>An interrupt or NMI held back behind an exception a handler raised (hv/Core/Vcpu/VcpuEvents).</summary>
        public Vigil.Hypervisor.Core.Vcpu.VcpuEvent Deferred;
    }
}
