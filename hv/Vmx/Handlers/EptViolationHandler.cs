// VMX root, interrupts off. EPT violation (SDM Vol 3C 29.3.3.2); the guest-physical address is in the
// VMCS, the qualification says the access (bit 0 read, bit 1 write, bit 2 fetch).
//   - the xAPIC page (read-only in the EPT): the write is emulated (hv/Core/ApicPage), to catch INIT and
//     start-up IPIs to virtualized APs; the VM-exit instruction length is not valid for EPT violations
//     (SDM Vol 3C 28.2.5), so the length comes from the decoder. An instruction it does not know stops
//     the guest on this CPU (never a wrong emulation).
//   - a violation that a change of the map in flight explains (a large page being split, or access given
//     since: hv/Core/NestedMapService) is resumed: the access is retried;
//   - anything else: the identity map grants every other access (the hypervisor's pages point at a decoy
//     page), so the map is wrong: full state to the log, then stop.
using Vigil.Hypervisor.Core;

namespace Vigil.Hypervisor.Vmx.Handlers
{
    internal static unsafe class EptViolationHandler
    {
        private const ulong CsLongMode = 1UL << 13;   // access rights bit 13: L (SDM Vol 3C 25.4.1)

        public static ExitAction Handle(ref VmxExit e)
        {
            ulong gpa = e.Read(VmcsField.GuestPhysicalAddress);
            if (ApicPage.Contains(gpa))
            {
                int length = EmulateApicAccess(ref e, gpa);
                if (length != 0)
                {
                    e.Skip((ulong)length);
                    return ExitAction.Resume;
                }
                VmxFatal.Report(ref e, "xAPIC access by an instruction the MMIO decoder does not know");
            }
            // Qualification bits 0-2: the access was a read, a write, an instruction fetch (SDM Vol 3C Table 28-7).
            PageAccess needed = (e.Qualification & 2) != 0 ? PageAccess.Write : (e.Qualification & 4) != 0 ? PageAccess.Execute : PageAccess.Read;
            if (VmxNestedMapChanges.IsSpurious(gpa, needed)) return ExitAction.Resume;
            VmxLog.NestedFault(ref e);
            VmxFatal.Report(ref e, "EPT violation");
            return ExitAction.Resume;
        }

        private static int EmulateApicAccess(ref VmxExit e, ulong gpa)
        {
            ulong efer = e.Read(VmcsField.GuestIa32Efer);
            int cpl = (int)((e.Read(VmcsField.GuestSsAccessRights) >> 5) & 3);
            var paging = new GuestPaging(e.Read(VmcsField.GuestCr0), e.Read(VmcsField.GuestCr3), e.Read(VmcsField.GuestCr4), efer, cpl);
            bool is64 = (efer & (1UL << 10)) != 0 && (e.Read(VmcsField.GuestCsAccessRights) & CsLongMode) != 0;
            ulong rip = e.Read(VmcsField.GuestRip);
            ulong linear = is64 ? rip : e.Read(VmcsField.GuestCsBase) + rip;
            byte* code = stackalloc byte[15];
            var memory = new HostPhysicalMemory();
            int read = GuestCode.Fetch(ref memory, paging, linear, is64, new System.Span<byte>(code, 15), VmxBackEnd.ReservedBase, VmxBackEnd.ReservedSize);
            if (read == 0 || !is64) return 0;   // the MMIO decoder knows 64-bit code only
            for (int i = read; i < 15; i++) code[i] = 0;
            ulong rsp = e.Read(VmcsField.GuestRsp);
            int length = ApicPage.Emulate((byte*)ApicPage.Base, (uint)(gpa & 0xFFF), new System.ReadOnlySpan<byte>(code, 15), ref *e.Registers, ref rsp, e.Cpu->Index);
            if (length != 0) e.Write(VmcsField.GuestRsp, rsp);
            return length;
        }
    }
}
