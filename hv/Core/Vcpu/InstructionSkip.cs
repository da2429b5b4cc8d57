// Stepping over an instruction an exit emulated, the one place for both back ends: the length the CPU
// measured (VMX VM-exit instruction length, SDM Vol 3C 28.2.5; SVM next RIP with NRIP save, APM Vol 2
// 15.7.1), else the decoder's (InstructionLength over the guest's bytes at CS:RIP, GuestCode). Then what
// the CPU itself does when an instruction completes: STI/MOV SS blocking ends (SDM Vol 3C 25.4.2), RF is
// cleared, and with RFLAGS.TF set a single-step trap is taken before the next instruction (SDM Vol 3A
// 18.3.1.4: #DB with DR6.BS) — without it a debugger single-stepping over CPUID would step two instructions.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class InstructionSkip
    {
        public const ulong TrapFlag = 1UL << 8;
        public const ulong ResumeFlag = 1UL << 16;

        /// <summary>
        /// Advances RIP over the instruction: <paramref name="knownLength"/> when the handler decoded it (MMIO emulation),
        /// else the CPU's length, else the decoder's. False when it cannot be sized (nothing changed): the caller stops
        /// the guest on this CPU (replaying the instruction would repeat its effect forever).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Skip<T, TMemory>(ref T vcpu, ref TMemory memory, int knownLength)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            int length = knownLength != 0 ? knownLength : vcpu.ExitInstructionLength;
            ulong rip;
            if (length == 0)
            {
                // The decoder sizes it: it needs the mode (the back ends derive it from several fields).
                CpuMode mode = vcpu.Mode;
                length = Decode(ref vcpu, ref memory, mode);
                if (length == 0) return false;
                rip = vcpu.Rip + (ulong)length;
                if (mode != CpuMode.Bits64) rip &= 0xFFFF_FFFF;
            }
            else
            {
                // Outside 64-bit mode RIP is 32 bits wide: only a step from below 4 GiB to or past it asks for the mode.
                ulong current = vcpu.Rip;
                rip = current + (ulong)length;
                if ((current >> 32) == 0 && (rip >> 32) != 0 && vcpu.Mode != CpuMode.Bits64) rip &= 0xFFFF_FFFF;
            }
            vcpu.Rip = rip;
            if (vcpu.InterruptShadow) vcpu.InterruptShadow = false;
            ulong rflags = vcpu.Rflags;
            if ((rflags & ResumeFlag) != 0) vcpu.Rflags = rflags & ~ResumeFlag;
            if ((rflags & TrapFlag) != 0) vcpu.RaiseSingleStep();
            return true;
        }

        /// <summary>The decoder's length for the instruction at CS:RIP; 0 when its bytes cannot be read or it cannot be sized.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Decode<T, TMemory>(ref T vcpu, ref TMemory memory, CpuMode mode)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            bool is64 = mode == CpuMode.Bits64;
            ulong linear = is64 ? vcpu.Rip : vcpu.CsBase + vcpu.Rip;   // 64-bit mode: CS.base is 0
            ulong reservedBase = vcpu.ReservedBase, reservedSize = vcpu.ReservedSize;
            // The instructions that exit most (CPUID, RDMSR/WRMSR, VMCALL/VMMCALL, XSETBV) have one fixed encoding:
            // 3 bytes size them (InstructionLength.Fixed); anything else is fetched in full and decoded. In 64-bit code the
            // CPU's kept translation of its code page gives them without a walk (GuestCode.FetchHead) when it still holds.
            if (is64)
            {
                int count = GuestCode.FetchHead(ref memory, vcpu.Index, vcpu.Cr3, vcpu.Cr4, vcpu.Efer, vcpu.Cpl, linear, reservedBase, reservedSize, out ulong head);
                int fixedLength = InstructionLength.Fixed(head, count);
                if (fixedLength != 0) return fixedLength;
            }
            return DecodeFetched(ref vcpu, ref memory, mode, linear, reservedBase, reservedSize);
        }

        /// <summary><see cref="Decode"/> by a fetch that walks the guest's tables (and keeps the translation for the next exit).</summary>
        private static unsafe int DecodeFetched<T, TMemory>(ref T vcpu, ref TMemory memory, CpuMode mode, ulong linear, ulong reservedBase, ulong reservedSize)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            bool is64 = mode == CpuMode.Bits64;
            byte* code = stackalloc byte[InstructionLength.MaxLength];
            GuestPaging paging = VcpuState.Paging(ref vcpu);
            var first = new System.Span<byte>(code, InstructionLength.FixedPrefixBytes);
            int got = GuestCode.FetchOnCpu(ref memory, vcpu.Index, paging, linear, is64, first, reservedBase, reservedSize);
            int known = InstructionLength.Fixed(first.Slice(0, got));
            if (known != 0) return known;
            var bytes = new System.Span<byte>(code, InstructionLength.MaxLength);
            int read = GuestCode.FetchOnCpu(ref memory, vcpu.Index, paging, linear, is64, bytes, reservedBase, reservedSize);
            if (read == 0) return 0;
            return InstructionLength.Decode(bytes.Slice(0, read), mode, vcpu.Vendor);
        }
    }
}
