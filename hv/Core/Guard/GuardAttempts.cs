// What every guard handler shares (guarded-page writes, pinned control registers, syscall MSRs,
// LIDT/LGDT): the actor's region from its RIP, and judging one attempt and recording its event, under
// the guard's lock (GuardLock.TryEnter: a bounded spin, see IGuardPlatform.cs).
// Root mode (VMX root / SVM host), interrupts off. Compiled twice; no allocation.
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core.Guard
{
    public static unsafe class GuardAttempts
    {
        /// <summary>The module area (Documentation/x86/x86_64/mm.rst: MODULES_VADDR to MODULES_END): modules, ftrace and BPF trampolines.</summary>
        public const ulong ModuleAreaStart = 0xFFFF_FFFF_C000_0000, ModuleAreaEnd = 0xFFFF_FFFF_FF00_0000;

        /// <summary>Where an instruction at <paramref name="rip"/> lies: core kernel text (GuardState.Text*), the module area, other kernel, user.</summary>
        public static ActorRegion Region(ulong rip)
        {
            if ((long)rip >= 0) return ActorRegion.User;
            if (GuardState.TextSize != 0 && rip - GuardState.TextLinear < GuardState.TextSize) return ActorRegion.KernelText;
            if (rip >= ModuleAreaStart && rip < ModuleAreaEnd) return ActorRegion.ModuleArea;
            return ActorRegion.KernelOther;
        }

        /// <summary>
        /// An attempt by the instruction at the vCPU's RIP: fills the actor (region, CPL, RIP, CR3) and the lock state
        /// into <paramref name="a"/> and the event, judges it, and records the event (its verdict and rule written in).
        /// The caller holds the lock and has filled the object, access, content, detail and the event's addresses and bytes.
        /// </summary>
        public static GuardVerdict Judge<T>(ref T vcpu, ref GuardAttempt a, ref GuardEvent e) where T : struct, IVcpu
        {
            ulong rip = vcpu.Rip;
            a.Rip = rip;
            a.Cr3 = vcpu.Cr3;
            a.Cpl = (byte)vcpu.Cpl;
            a.Region = Region(rip);
            a.Locked = GuardState.Locked;
            GuardVerdict verdict = GuardState.Judge(a, out ushort rule);
            e.Tsc = LogRings.Timestamp();
            e.Cpu = (ushort)vcpu.Index;
            e.Object = a.Object;
            e.Access = a.Access;
            e.Verdict = verdict;
            e.Region = a.Region;
            e.Cpl = a.Cpl;
            e.Rule = rule;
            e.Content = a.Content;
            e.Rip = rip;
            e.Cr3 = a.Cr3;
            if (e.Detail == 0) e.Detail = a.Detail;
            GuardState.Record(ref e);
            return verdict;
        }

        /// <summary>A register attempt (CR, MSR, LIDT/LGDT) with its old and new values as 8 bytes each, judged and recorded under the lock.</summary>
        public static GuardVerdict JudgeRegister<T>(ref T vcpu, GuardObject o, GuardContent content, ulong detail, ulong oldValue, ulong newValue, ulong linear)
            where T : struct, IVcpu
        {
            var a = new GuardAttempt { Object = o, Access = GuardAccess.RegisterWrite, Content = content, Detail = detail };
            var e = new GuardEvent { Linear = linear, ContentLength = 8 };
            for (int i = 0; i < 8; i++)
            {
                e.Old[i] = (byte)(oldValue >> (8 * i));
                e.New[i] = (byte)(newValue >> (8 * i));
            }
            return Judge(ref vcpu, ref a, ref e);
        }
    }
}
