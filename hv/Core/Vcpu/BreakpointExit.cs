// A software-interrupt exit while the guard protects the kernel: INT3 on both back ends (VMX: #BP in the
// exception bitmap, SDM Vol 3C 25.6.3, exit reason 0 with a software exception; SVM: the #BP exception
// intercept, APM Vol 2 15.12, and the INTn intercept, because QEMU's TCG checks INT3, INTO and INTn all
// against the INTn intercept, never the #BP one), and under QEMU any INTn.
//   Why: the hypervisor performs the kernel's allowed text writes itself (hv/Core/Guard/GuardWrite), among them
//   text_poke_bp's last write, which replaces its INT3 with the new instruction's first byte. A CPU of QEMU's TCG
//   that was translating that code while another CPU's write replaced it keeps the translation it made (the write
//   invalidated what existed before): the stale INT3 runs again and again, the kernel's int3 handler finds no INT3
//   in memory and returns to it (poke_int3_handler: not a patch site any more; kprobe_int3_handler: "the
//   breakpoint was removed", run the instruction again), with interrupts off in __schedule: the CPU hangs (seen
//   once in 13 guard boots on 2 CPUs, and at once under tests/guest/scenarios/patchstress.sh).
//   What: the instruction at CS:RIP is read from memory. An INT3/INTO/INTn there is delivered as the CPU would
//   (the back end injects a software event with its length: VMX with the instruction length, SVM with RIP past
//   it). Anything else means the breakpoint the CPU executed is no longer in memory (on hardware: the benign race
//   of cross-modifying code, the other CPU's write landed after the fetch): the guest resumes at RIP without the
//   event, which is what the kernel itself does for such a breakpoint, and the back end writes the byte atomically
//   with its own value (LOCK OR 0) so that an emulator drops its stale translation of it. A byte that cannot be
//   read is delivered as an INT3 (what the exit says happened).
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off. Compiled twice; no allocation.
using System;
using Vigil.Hypervisor.Core.Decoding;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public enum BreakpointOutcome
    {
        /// <summary>The instruction is in memory: its event is injected.</summary>
        Delivered,

        /// <summary>No software interrupt at RIP any more: resumed at RIP, the byte at the physical address to be touched.</summary>
        Stale,
    }

    public static class BreakpointExit
    {
        public const byte Int3 = 0xCC, IntN = 0xCD, Into = 0xCE;

        /// <summary>
        /// Reads the instruction at the guest's RIP: Delivered (the event is in <see cref="IVcpu.Injected"/>) or Stale
        /// (nothing injected, logged; <paramref name="stalePhysical"/> is the byte at RIP, for the back end's atomic touch).
        /// </summary>
        public static BreakpointOutcome Handle<T, TMemory>(ref T vcpu, ref TMemory memory, out ulong stalePhysical)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            stalePhysical = 0;
            Span<byte> code = stackalloc byte[InstructionLength.MaxLength];
            bool is64 = vcpu.Mode == CpuMode.Bits64;
            ulong linear = is64 ? vcpu.Rip : (vcpu.CsBase + vcpu.Rip) & 0xFFFF_FFFF;
            GuestPaging paging = VcpuState.Paging(ref vcpu);
            int fetched = GuestCode.Fetch(ref memory, paging, linear, is64, code, vcpu.ReservedBase, vcpu.ReservedSize);
            VcpuEvent e = fetched == 0 ? VcpuEvent.None : Decode(code.Slice(0, fetched), is64);
            bool stale = fetched != 0 && !e.Valid
                && GuestMemory.Translate(ref memory, paging, linear, write: false, out stalePhysical) == WalkResult.Ok
                && memory.Bounds.Check(stalePhysical, 1) == WalkResult.Ok;
            if (stale)
            {
                LogRings.Write(vcpu.Index, LogEvent.StaleBreakpoint, vcpu.Rip, stalePhysical);
                return BreakpointOutcome.Stale;
            }
            stalePhysical = 0;
            // What cannot be read is the INT3 the exit reports.
            vcpu.Injected = e.Valid ? e : Software(EventType.SoftwareException, VcpuEvent.BreakpointVector, 1);
            return BreakpointOutcome.Delivered;
        }

        /// <summary>
        /// The software interrupt <paramref name="code"/> starts with (after legacy prefixes, and REX in 64-bit mode): INT3
        /// and INTO as software exceptions 3 and 4 (INTO only outside 64-bit mode, where it is invalid), INTn as software
        /// interrupt n, each with its length; None for anything else.
        /// </summary>
        public static VcpuEvent Decode(ReadOnlySpan<byte> code, bool is64)
        {
            int i = 0;
            while (i < code.Length && i < InstructionLength.MaxLength - 1 && IsPrefix(code[i], is64)) i++;
            if (i >= code.Length) return VcpuEvent.None;
            switch (code[i])
            {
                case Int3:
                    return Software(EventType.SoftwareException, VcpuEvent.BreakpointVector, i + 1);
                case Into when !is64:
                    return Software(EventType.SoftwareException, VcpuEvent.OverflowVector, i + 1);
                case IntN when i + 1 < code.Length:
                    return Software(EventType.SoftwareInterrupt, code[i + 1], i + 2);
                default:
                    return VcpuEvent.None;
            }
        }

        private static bool IsPrefix(byte b, bool is64)
            => b is 0x26 or 0x2E or 0x36 or 0x3E or 0x64 or 0x65 or 0x66 or 0x67 or 0xF0 or 0xF2 or 0xF3 || (is64 && (b & 0xF0) == 0x40);

        private static VcpuEvent Software(EventType type, byte vector, int length)
            => new VcpuEvent { Info = VcpuEvent.ValidBit | ((uint)type << 8) | vector, InstructionLength = length };
    }
}
