// The guard's register pins, judged where the writes exit (both vendors, one place): CR0/CR4 bits
// (MOV to CR, CLTS, LMSW: ControlRegisterExit), EFER bits and the syscall MSRs (WRMSR: MsrExit), and
// the descriptor-table registers (LIDT, LGDT: DescriptorTableExit).
//
// When pins apply (the rule for CPUs that go offline and come back, docs/GUARD.md): a CPU brought up
// again passes through real mode, 32-bit protected mode and an early long mode with WP/SMEP/SMAP clear,
// rewrites EFER, the syscall MSRs, GDTR and IDTR as it goes, and only then runs the kernel code that
// matters. So:
//   - pins are judged only while the guest is in long mode with paging (EFER.LMA and CR0.PG) before the
//     write; the real-mode and 32-bit steps of start-up are never attempts;
//   - a pinned CR0/CR4/EFER bit is an attempt only when the write CLEARS it (set before, clear after): a
//     CPU that has not set it yet (secondary_startup_64 loads CR4 without SMEP/SMAP, cr4_init sets them)
//     is not refused, and from the moment it sets the bit the pin holds on that CPU;
//   - a syscall MSR write is always an attempt; ExpectedValue when the value is the one pinned at Protect
//     (syscall_init on every bring-up writes the same values), and for SYSENTER_ESP any value in the CPU
//     entry area (it is per CPU: each CPU's entry stack; seen on QEMU SVM when CPU 1 came back online);
//   - LIDT is ExpectedValue for the pinned IDT (base and limit) and for a null IDT (limit 0: before
//     reboot/kexec; it cannot point anywhere); LGDT for this CPU's GDT (GuardState.GdtBase(cpu), limit
//     Pins.GdtLimit);
//   - the bring-up window: a CPU seen outside long-mode paging (at an exit or before an entry) is starting
//     up; until it loads its known GDT again (or, when its GDT is not known yet, until it first runs user
//     code), LIDT/LGDT of a kernel (upper-half) address are ExpectedValue too: Linux loads the early
//     per-CPU GDT (early_gdt_descr) and, with AMD_MEM_ENCRYPT, the bring-up IDT before its final tables.
//     A CPU whose GDT base is not known (0: offline at Protect) gets it recorded the first time it is
//     armed outside the window in long-mode paging with a kernel GDTR of the pinned limit.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off. Compiled twice; no allocation.
using System.Runtime.CompilerServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>EFER and the syscall MSRs (SDM Vol 4 Table 2-2; APM Vol 2 6.1.1, A.2), and what the guard pins of them.</summary>
    public static class GuardMsrs
    {
        public const uint SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176;
        public const uint Efer = 0xC000_0080, Star = 0xC000_0081, Lstar = 0xC000_0082, Cstar = 0xC000_0083, Sfmask = 0xC000_0084;

        public const ulong EferSce = 1UL << 0, EferLme = 1UL << 8, EferLma = 1UL << 10, EferNxe = 1UL << 11;

        /// <summary>EFER bits a guest may write: SCE, LME, LMA (ignored), NXE, FFXSR, TCE (SDM Vol 3A 2.2.1; APM Vol 2 3.1.7).</summary>
        public const ulong EferWritable = EferSce | EferLme | EferLma | EferNxe | (1UL << 14) | (1UL << 15);

        /// <summary>The syscall MSRs the guard pins (their writes exit while armed).</summary>
        public static bool IsSyscallMsr(uint msr) => msr is SysenterCs or SysenterEsp or SysenterEip or Star or Lstar or Cstar or Sfmask;

        /// <summary>The MSRs whose writes the guard intercepts while armed.</summary>
        public static bool IsGuarded(uint msr) => msr == Efer || IsSyscallMsr(msr);

        /// <summary>The MSR with index <paramref name="i"/> (0-7) of <see cref="IsGuarded"/>, for building maps.</summary>
        public static uint Guarded(int i) => i switch
        {
            0 => Efer, 1 => Star, 2 => Lstar, 3 => Cstar, 4 => Sfmask, 5 => SysenterCs, 6 => SysenterEsp, _ => SysenterEip,
        };

        public const int GuardedCount = 8;

        /// <summary>
        /// The CPU entry area (Documentation/x86/x86_64/mm.rst: 0xfffffe0000000000, 0.5 TiB, with 4- and 5-level paging). SYSENTER_ESP
        /// is per CPU in Linux (syscall_init: the top of that CPU's entry stack, inside its part of the area), so a CPU coming back
        /// online writes its own value, not the one pinned on the CPU that called Protect: any value inside the area is expected.
        /// </summary>
        public static bool InCpuEntryArea(ulong value) => value - 0xFFFF_FE00_0000_0000UL < 0x80_0000_0000UL;

        /// <summary>The value pinned at Protect.</summary>
        public static ulong Pinned(uint msr) => msr switch
        {
            Star => GuardState.Pins.Star,
            Lstar => GuardState.Pins.Lstar,
            Cstar => GuardState.Pins.Cstar,
            Sfmask => GuardState.Pins.Sfmask,
            SysenterCs => GuardState.Pins.SysenterCs,
            SysenterEsp => GuardState.Pins.SysenterEsp,
            SysenterEip => GuardState.Pins.SysenterEip,
            _ => 0,
        };

        /// <summary>WRMSR EFER's #GP conditions: reserved bits, LME changed while paging is on (SDM Vol 3A 10.8.5, APM Vol 2 14.6).</summary>
        public static bool ValidEfer(ulong old, ulong value, bool paging)
        {
            if ((value & ~EferWritable) != 0) return false;
            if (paging && ((old ^ value) & EferLme) != 0) return false;
            return true;
        }
    }

    /// <summary>What the handler does with a write the guard judged.</summary>
    public enum PinOutcome
    {
        /// <summary>Not an attempt, or allowed/audited: the write takes effect as the guest asked.</summary>
        Load,

        /// <summary>Blocked: the pinned bits stay set (registers: the rest of the value loads; MSRs, LIDT/LGDT: nothing loads); the instruction is skipped.</summary>
        Block,

        /// <summary>Blocked with #GP(0) (the instruction is not done).</summary>
        Fault,

        /// <summary>The guard's lock was busy: resume the guest at the same instruction (it exits again).</summary>
        Retry,
    }

    public static unsafe class GuardRegisters
    {
        private const ulong Cr0Pg = 1UL << 31;

        /// <summary>Long mode with paging on (the only state in which pins are judged).</summary>
        public static bool PinsApply<T>(ref T vcpu) where T : struct, IVcpu
            => (GuardState.Protected || LaunchPins.Armed) && (vcpu.Efer & GuardMsrs.EferLma) != 0 && (vcpu.Cr0 & Cr0Pg) != 0;

        /// <summary>
        /// MOV to CR0 (<paramref name="cr"/> 0) or CR4 (4) with <paramref name="value"/> already validated: an attempt when it clears
        /// a pinned bit that is set. <paramref name="keep"/> are the bits a Block keeps set.
        /// </summary>
        public static PinOutcome ControlRegister<T, TCpus>(ref T vcpu, ref TCpus cpus, int cr, ulong value, out ulong keep)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            keep = 0;
            if (!PinsApply(ref vcpu)) return PinOutcome.Load;
            ulong old = cr == 0 ? vcpu.Cr0 : vcpu.Cr4;
            ulong pinned = cr == 0 ? GuardState.Pins.Cr0Set : GuardState.Pins.Cr4Set;
            ulong cleared = pinned & old & ~value;
            if (cleared == 0) return PinOutcome.Load;
            keep = cleared;
            return JudgeRegister(ref vcpu, ref cpus, cr == 0 ? GuardObject.ControlRegister0 : GuardObject.ControlRegister4, GuardContent.PinnedBitCleared, cleared, old, value, 0);
        }

        /// <summary>WRMSR of a guarded MSR (<see cref="GuardMsrs.IsGuarded"/>). <paramref name="keep"/>: EFER bits a Block keeps set.</summary>
        public static PinOutcome Msr<T, TCpus>(ref T vcpu, ref TCpus cpus, uint msr, ulong value, out ulong keep)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            keep = 0;
            if (!PinsApply(ref vcpu)) return PinOutcome.Load;
            ulong old = vcpu.ReadGuardedMsr(msr);
            if (msr == GuardMsrs.Efer)
            {
                ulong cleared = GuardState.Pins.EferSet & old & ~value;
                if (cleared == 0) return PinOutcome.Load;
                keep = cleared;
                return JudgeRegister(ref vcpu, ref cpus, GuardObject.Efer, GuardContent.PinnedBitCleared, cleared, old, value, 0);
            }
            bool expected = value == GuardMsrs.Pinned(msr) || (msr == GuardMsrs.SysenterEsp && GuardMsrs.InCpuEntryArea(value));
            if (!GuardState.Protected)
            {
                // Before Protect (LaunchPins): the first value the OS writes becomes the expected one.
                if (!GuardLock.TryEnter(ref cpus)) return PinOutcome.Retry;
                expected |= LaunchPins.Learn(msr, value);
                GuardLock.Exit(ref cpus);
            }
            GuardContent content = expected ? GuardContent.ExpectedValue : GuardContent.None;
            return JudgeRegister(ref vcpu, ref cpus, GuardObject.SyscallMsr, content, msr, old, value, 0);
        }

        /// <summary>
        /// LIDT (<paramref name="idt"/>) or LGDT of <paramref name="baseAddress"/>/<paramref name="limit"/>. The event's old/new
        /// are the bases, its Linear the new base, Detail the new limit.
        /// </summary>
        public static PinOutcome DescriptorTable<T, TCpus>(ref T vcpu, ref TCpus cpus, bool idt, ulong baseAddress, uint limit)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            if (!PinsApply(ref vcpu) || !GuardState.Protected) return PinOutcome.Load;   // LIDT/LGDT: from Protect on (LaunchPins)
            uint cpu = vcpu.Index;
            vcpu.ReadDescriptorTables(out ulong gdtBase, out _, out ulong idtBase, out _);
            bool kernelAddress = (long)baseAddress < 0;
            bool bringUp = GuardArming.InBringUp(cpu);
            bool expected;
            if (idt)
            {
                expected = (baseAddress == GuardState.Pins.IdtBase && limit == GuardState.Pins.IdtLimit) || limit == 0 || (bringUp && kernelAddress);
            }
            else
            {
                ulong known = GuardState.GdtBase(cpu);
                bool isKnown = known != 0 && baseAddress == known && limit == GuardState.Pins.GdtLimit;
                expected = isKnown || (bringUp && kernelAddress && limit == GuardState.Pins.GdtLimit);
                if (isKnown) GuardArming.EndBringUp(cpu);
            }
            var o = idt ? GuardObject.InterruptTableRegister : GuardObject.GlobalTableRegister;
            return JudgeRegister(ref vcpu, ref cpus, o, expected ? GuardContent.ExpectedValue : GuardContent.None, limit, idt ? idtBase : gdtBase, baseAddress, baseAddress);
        }

        private static PinOutcome JudgeRegister<T, TCpus>(ref T vcpu, ref TCpus cpus, GuardObject o, GuardContent content, ulong detail, ulong old, ulong value, ulong linear)
            where T : struct, IVcpu
            where TCpus : struct, INestedMapCpus
        {
            if (old == value && o != GuardObject.ControlRegister0 && o != GuardObject.ControlRegister4 && o != GuardObject.Efer) content |= GuardContent.Unchanged;
            if (!GuardLock.TryEnter(ref cpus)) return PinOutcome.Retry;
            GuardVerdict verdict = GuardAttempts.JudgeRegister(ref vcpu, o, content, detail, old, value, linear);
            GuardLock.Exit(ref cpus);
            return verdict switch
            {
                GuardVerdict.Block => PinOutcome.Block,
                GuardVerdict.BlockAndFault => PinOutcome.Fault,
                _ => PinOutcome.Load,
            };
        }
    }

    /// <summary>
    /// Per-CPU arming (both back ends): the generation of GuardState each CPU armed its interception for, whether it
    /// armed for long-mode paging, and the bring-up window of a CPU that passed through real mode (see the top of this
    /// file). The back end calls <see cref="BeforeEntry"/> before every entry; when it returns true the back end re-arms
    /// its CPU-local interception: <paramref name="protect"/> says whether the guard is in force, <paramref name="longPaging"/>
    /// whether the CPU runs with long-mode paging (the mode-dependent parts: SVM's CR and LIDT/LGDT intercepts and VMX's
    /// descriptor-table exiting are armed only then, so the real-mode and 32-bit steps of a CPU's start-up never need
    /// decoding; SVM: a MOV to CR0 that leaves long mode exits while armed, which re-arms; VMX reports the operands of
    /// descriptor-table exits in every mode).
    /// </summary>
    public static unsafe class GuardArming
    {
        private static Storage s_storage;

        private struct Storage
        {
            public fixed uint Armed[GuardState.MaxCpus];      // generation armed + 1 (0: never)
            public fixed byte ArmedLong[GuardState.MaxCpus];
            public fixed byte BringUp[GuardState.MaxCpus];
        }

        public static bool InBringUp(uint cpu) => s_storage.BringUp[cpu % GuardState.MaxCpus] != 0;

        public static void EndBringUp(uint cpu) => s_storage.BringUp[cpu % GuardState.MaxCpus] = 0;

        /// <summary>The generation CPU <paramref name="cpu"/> last armed for (0 also when it never armed).</summary>
        public static uint ArmedGeneration(uint cpu) => s_storage.Armed[cpu % GuardState.MaxCpus] - 1;

        /// <summary>
        /// Before an entry on <paramref name="vcpu"/>'s CPU: follows the bring-up window, records the CPU's GDT base when it
        /// is not known yet, and returns true when the CPU must (re-)arm (it is then counted as armed).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool BeforeEntry<T>(ref T vcpu, out bool protect, out bool longPaging) where T : struct, IVcpu
        {
            uint cpu = vcpu.Index % GuardState.MaxCpus;
            bool guarded = GuardState.Protected;   // read once (volatile), as is Armed
            bool armed = LaunchPins.Armed;
            if (!guarded && !armed)
            {
                LaunchPins.Observe(ref vcpu);
                armed = LaunchPins.Armed;
            }
            protect = guarded || armed;
            // Unprotected, the mode does not matter (nothing mode-dependent is armed): no guest state is read at all.
            longPaging = protect && (vcpu.Efer & GuardMsrs.EferLma) != 0;   // LMA is set only with CR0.PG (SDM Vol 3A 10.8.5): no CR0 read
            if (guarded && (!longPaging || s_storage.BringUp[cpu] != 0 || GuardState.GdtBase(cpu) == 0)) FollowBringUp(ref vcpu, cpu, longPaging);
            return Rearm(cpu, longPaging);
        }

        /// <summary>While protected: the bring-up window of a CPU that left long-mode paging, and its GDT base once it is back.</summary>
        private static void FollowBringUp<T>(ref T vcpu, uint cpu, bool longPaging) where T : struct, IVcpu
        {
            if (!longPaging)
            {
                s_storage.BringUp[cpu] = 1;
                return;
            }
            if (s_storage.BringUp[cpu] != 0 && vcpu.Cpl == 3) s_storage.BringUp[cpu] = 0;   // user code runs: bring-up is over
            if (s_storage.BringUp[cpu] == 0 && GuardState.GdtBase(cpu) == 0)
            {
                vcpu.ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out _, out _);
                if ((long)gdtBase < 0 && gdtLimit == GuardState.Pins.GdtLimit) GuardState.GdtBase(cpu) = gdtBase;
            }
        }

        /// <summary>True when CPU <paramref name="cpu"/> must (re-)arm for the current generation and mode (it is then counted as armed).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static bool Rearm(uint cpu, bool longPaging)
        {
            uint generation = GuardState.Generation;
            byte armedLong = (byte)(longPaging ? 1 : 0);
            if (s_storage.Armed[cpu] == generation + 1 && s_storage.ArmedLong[cpu] == armedLong) return false;
            s_storage.Armed[cpu] = generation + 1;
            s_storage.ArmedLong[cpu] = armedLong;
            return true;
        }

        /// <summary>Back to launch state (tests).</summary>
        public static void Reset()
        {
            s_storage = default;
            LaunchPins.Reset();
        }
    }
}
