// The guard's control plane: the Protect, Lock and ReadEvents hypercalls (hv/Abi/Hypercall.cs documents
// the registers). Protect finds the kernel itself (KernelDiscovery: the kernel's page tables, this CPU's
// IDTR and syscall MSRs), fills GuardState (ranges, pins, rules), write-protects every range in the
// nested map through the platform seam (NestedMapService.Protect, read + execute) and publishes, so each
// CPU re-arms its interception before its next entry. The first Protect hands out a 64-bit secret (RDRAND
// where the CPU has it, else a mix of time-stamp counter reads); every later Protect, Lock and ReadEvents
// must present it. Lock is one way until reset. Nothing here trusts a guest pointer: buffers are read and
// written through the caller's own page walk with its rights, bounds-checked, never in the hypervisor's
// memory or a guarded page. Every refusal is a status, never a crash.
// Root mode, the CPU that made the call, interrupts off. No allocation (stack and per-CPU scratch).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core.Guard
{
    public static unsafe class GuardHypercalls
    {
        private const ulong Cr0Wp = 1UL << 16;                                        // SDM Vol 3A 2.5
        private const ulong Cr4Umip = 1UL << 11, Cr4Smep = 1UL << 20, Cr4Smap = 1UL << 21;
        private const ulong EferSce = 1UL << 0, EferNxe = 1UL << 11;                  // SDM Vol 3A 2.2.1, APM Vol 2 3.1.7
        private const int RandomTries = 10;                                           // Intel's DRNG guide: retry RDRAND up to 10 times

        private static ulong s_secret;
        private static bool s_secretIssued;

        /// <summary>What the handlers can be asked: Protect, Lock, ReadEvents.</summary>
        public static bool Handles(HypercallFunction function)
            => function is HypercallFunction.Protect or HypercallFunction.Lock or HypercallFunction.ReadEvents;

        /// <summary>Whether the secret was handed out (the first Protect succeeded).</summary>
        public static bool SecretIssued => s_secretIssued;

        /// <summary>Back to the state at launch (tests).</summary>
        public static void Reset()
        {
            s_secret = 0;
            s_secretIssued = false;
        }

        public static HypercallStatus Dispatch<T, TMemory, TPlatform>(HypercallFunction function, ref T vcpu, ref TMemory memory, ref TPlatform platform)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TPlatform : struct, IGuardPlatform
        {
            uint cpu = vcpu.Index;
            if (function == HypercallFunction.ReadEvents) return ReadEvents(ref vcpu, ref memory, ref platform);
            // No try/finally in root mode (no exceptions there): the handlers return, they do not throw.
            GuardLock.Enter(ref platform, cpu);
            HypercallStatus status = function switch
            {
                HypercallFunction.Protect => Protect(ref vcpu, ref memory, ref platform),
                HypercallFunction.Lock => Lock(ref vcpu),
                _ => HypercallStatus.UnknownFunction,
            };
            GuardLock.Exit(ref platform);
            return status;
        }

        /// <summary>The secret check: issued, and equal (every bit compared).</summary>
        public static bool SecretMatches(ulong presented) => s_secretIssued && (presented ^ s_secret) == 0;

        private static HypercallStatus Protect<T, TMemory, TPlatform>(ref T vcpu, ref TMemory memory, ref TPlatform platform)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TPlatform : struct, IGuardPlatform
        {
            ref GuestRegisters regs = ref vcpu.Registers;
            uint cpu = vcpu.Index;
            if (GuardState.Locked) return HypercallStatus.NotPermitted;
            if (s_secretIssued && !SecretMatches(regs.Rdx)) return HypercallStatus.NotPermitted;
            if (GuardState.Events == null) return HypercallStatus.Unsupported;
            GuestPaging caller = VcpuState.Paging(ref vcpu);

            // The request: flags, hints, an optional rule set.
            GuardProtectRequest request = GuardProtectRequest.Create(GuardProtectFlags.None);
            if (regs.Rbx != 0)
            {
                if (regs.Rcx < (ulong)sizeof(GuardProtectRequest) || regs.Rcx > 4096) return HypercallStatus.BadBufferSize;
                if (GuestMemory.CopyFromGuest(ref memory, caller, regs.Rbx, new Span<byte>(&request, sizeof(GuardProtectRequest))) != WalkResult.Ok)
                    return HypercallStatus.BadAddress;
                if (request.Signature != GuardProtectRequest.ExpectedSignature || request.Version != GuardProtectRequest.CurrentVersion
                    || request.Size != (uint)sizeof(GuardProtectRequest) || !request.ReservedClear
                    || (request.Flags & ~(GuardProtectFlags.Lock | GuardProtectFlags.StrictRules | GuardProtectFlags.AuditOnly)) != 0)
                    return HypercallStatus.BadRequest;
            }
            GuardRule* rules = stackalloc GuardRule[GuardRuleSetHeader.MaxRules];
            var ruleSpan = new Span<GuardRule>(rules, GuardRuleSetHeader.MaxRules);
            GuardRuleSetHeader header;
            GuardRuleSource source;
            bool staged = request.PolicyImage != 0;
            if (staged)
            {
                // A compiled policy (vigild protect --policy): copied into the hypervisor's memory and validated there (PolicyStore).
                if (request.RuleSet != 0 || (request.Flags & GuardProtectFlags.StrictRules) != 0) return HypercallStatus.BadRequest;
                HypercallStatus read = PolicyStore.Stage(ref memory, caller, request.PolicyImage, request.PolicyImageSize, ruleSpan, out header);
                if (read != HypercallStatus.Success) return read;
                source = GuardRuleSource.Policy;
            }
            else if (request.RuleSet != 0)
            {
                HypercallStatus read = ReadRuleSet(ref memory, caller, request.RuleSet, request.RuleSetSize, rules, out header);
                if (read != HypercallStatus.Success) return read;
                source = GuardRuleSource.HandedOver;
            }
            else if ((request.Flags & GuardProtectFlags.StrictRules) == 0 && PolicyStore.PolicyInForce)
            {
                // No rules asked for: the compiled policy in force (the ESP's, from launch, or one handed over before) stays.
                header = GuardState.RuleHeader;
                ReadOnlySpan<GuardRule> inForce = GuardState.Rules;
                for (int i = 0; i < inForce.Length; i++) rules[i] = inForce[i];
                header.Count = (uint)inForce.Length;
                source = GuardRuleSource.Policy;
            }
            else
            {
                bool strict = (request.Flags & GuardProtectFlags.StrictRules) != 0;
                header = DefaultRules.Write(ruleSpan, strict);
                source = strict ? GuardRuleSource.BuiltInStrict : GuardRuleSource.BuiltIn;
            }
            if ((request.Flags & GuardProtectFlags.AuditOnly) != 0) header.AuditOnly = 1;

            // The kernel's tables, checked with LSTAR (kernel code in them).
            ulong lstar = vcpu.ReadGuardedMsr(GuardMsrs.Lstar);
            if (!caller.LongModePaging) return Failed(cpu, caller.Cr3, 1, 0, 0);
            if (!KernelDiscovery.FindKernelPaging(ref memory, caller, lstar, out GuestPaging kernel)) return Failed(cpu, caller.Cr3, 2, lstar, 0);

            // The pages with a class of their own: this CPU's IDT, sys_call_table from the hint when it checks out.
            vcpu.ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out ulong idtBase, out uint idtLimit);
            var special = default(SpecialPages);
            special.Idt0 = PageOf(ref memory, kernel, idtBase);
            if (((idtBase + idtLimit) >> 12) != (idtBase >> 12)) special.Idt1 = PageOf(ref memory, kernel, idtBase + idtLimit);
            GuardHint accepted = 0, rejected = 0;
            if (request.SysCallTable != 0)
            {
                ulong last = request.SysCallTable + KernelDiscovery.SysCallTableBytes - 1;
                if (KernelDiscovery.ClassOf(ref memory, kernel, request.SysCallTable, out ulong first) == GuardObject.KernelReadOnlyData
                    && KernelDiscovery.ClassOf(ref memory, kernel, last, out ulong end) == GuardObject.KernelReadOnlyData)
                {
                    special.SysCallTable0 = first & ~0xFFFUL;
                    special.SysCallTable1 = end & ~0xFFFUL;
                    accepted |= GuardHint.SysCallTable;
                }
                else
                {
                    rejected |= GuardHint.SysCallTable;
                }
            }
            CheckRange(ref memory, kernel, request.TextStart, request.TextEnd, GuardObject.KernelText, GuardHint.KernelText, ref accepted, ref rejected);
            CheckRange(ref memory, kernel, request.ReadOnlyDataStart, request.ReadOnlyDataEnd, GuardObject.KernelReadOnlyData, GuardHint.ReadOnlyData, ref accepted, ref rejected);
            if (request.InterruptTable != 0)
            {
                if (special.Idt0 != 0 && PageOf(ref memory, kernel, request.InterruptTable) == special.Idt0) accepted |= GuardHint.InterruptTable;
                else rejected |= GuardHint.InterruptTable;
            }

            // Discovery into GuardState; a failure takes back what it added (nothing was write-protected yet).
            int before = GuardState.RangeCount;
            DiscoveryResult found = KernelDiscovery.Discover(ref memory, kernel, special, out ulong textBytes);
            if (found != DiscoveryResult.Ok)
            {
                GuardState.TruncateRanges(before);
                return Failed(cpu, kernel.Cr3, 3, (ulong)found, textBytes);
            }

            // Write-protect the new ranges on every CPU. A range the service cannot change stops here: what was
            // protected stays protected and guarded (the state says so), the rest is taken back.
            for (int i = before; i < GuardState.RangeCount; i++)
            {
                ref GuardedRange r = ref GuardState.Range(i);
                NestedMapResult done = platform.Protect(cpu, r.Gpa, r.Size, PageAccess.Read | PageAccess.Execute);
                if (done is NestedMapResult.Done or NestedMapResult.Unconfirmed) continue;
                ulong gpa = r.Gpa;
                GuardState.TruncateRanges(i);
                GuardState.Publish();
                return Failed(cpu, kernel.Cr3, 4, (ulong)done, gpa);
            }

            // Pins: what this CPU has set now (OR-only: a bit clear here is not pinned).
            GuardPins pins = default;
            pins.Cr0Set = vcpu.Cr0 & Cr0Wp;
            pins.Cr4Set = vcpu.Cr4 & (Cr4Smep | Cr4Smap | Cr4Umip);
            pins.EferSet = vcpu.Efer & (EferNxe | EferSce);
            pins.Lstar = lstar;
            pins.Star = vcpu.ReadGuardedMsr(GuardMsrs.Star);
            pins.Cstar = vcpu.ReadGuardedMsr(GuardMsrs.Cstar);
            pins.Sfmask = vcpu.ReadGuardedMsr(GuardMsrs.Sfmask);
            pins.SysenterCs = vcpu.ReadGuardedMsr(GuardMsrs.SysenterCs);
            pins.SysenterEsp = vcpu.ReadGuardedMsr(GuardMsrs.SysenterEsp);
            pins.SysenterEip = vcpu.ReadGuardedMsr(GuardMsrs.SysenterEip);
            pins.IdtBase = idtBase;
            pins.IdtLimit = (ushort)idtLimit;
            pins.GdtLimit = (ushort)gdtLimit;
            GuardState.Pins = pins;
            GuardState.GdtBase(cpu) = gdtBase;

            GuardState.SetRules(header, ruleSpan.Slice(0, (int)Math.Min(header.Count, GuardRuleSetHeader.MaxRules)));
            GuardState.RuleSource = source;
            PolicyStore.Commit(source, staged);
            GuardState.Protected = true;
            if ((request.Flags & GuardProtectFlags.Lock) != 0) GuardState.Locked = true;
            GuardState.Publish();

            if (!s_secretIssued)
            {
                s_secret = NewSecret(ref platform, cpu);
                s_secretIssued = true;
                regs.Rdx = s_secret;
            }
            else
            {
                regs.Rdx = 0;
            }
            regs.Rcx = (ulong)GuardState.RangeCount;
            regs.Rsi = (ulong)accepted | ((ulong)rejected << 32);
            ulong bytes = 0;
            for (int i = 0; i < GuardState.RangeCount; i++) bytes += GuardState.Range(i).Size;
            LogRings.Write(cpu, LogEvent.GuardProtected, kernel.Cr3, (ulong)GuardState.RangeCount, bytes, regs.Rsi);
            if (GuardState.Locked) LogRings.Write(cpu, LogEvent.PolicyLocked, caller.Cr3);
            return HypercallStatus.Success;
        }

        private static HypercallStatus Failed(uint cpu, ulong cr3, ulong step, ulong detail, ulong at)
        {
            LogRings.Write(cpu, LogEvent.GuardProtectFailed, cr3, step, detail, at);
            return HypercallStatus.Unsupported;
        }

        /// <summary>The page <paramref name="va"/> lies in, in <paramref name="kernel"/> (0 when not mapped).</summary>
        private static ulong PageOf<TMemory>(ref TMemory memory, in GuestPaging kernel, ulong va)
            where TMemory : struct, IPhysicalMemory
            => GuestMemory.Lookup(ref memory, kernel, va, out GuestPage page) == WalkResult.Ok ? (page.Physical + (va & (page.Size - 1))) & ~0xFFFUL : 0;

        /// <summary>A [start, end) hint: accepted when both ends are of class <paramref name="expected"/>; both 0: no hint.</summary>
        private static void CheckRange<TMemory>(ref TMemory memory, in GuestPaging kernel, ulong start, ulong end, GuardObject expected, GuardHint hint, ref GuardHint accepted, ref GuardHint rejected)
            where TMemory : struct, IPhysicalMemory
        {
            if (start == 0 && end == 0) return;
            bool ok = end > start && KernelDiscovery.ClassOf(ref memory, kernel, start, out _) == expected && KernelDiscovery.ClassOf(ref memory, kernel, end - 1, out _) == expected;
            if (ok) accepted |= hint;
            else rejected |= hint;
        }

        /// <summary>A rule set from the guest: header, then its rules; validated whole (GuardRules.Validate).</summary>
        private static HypercallStatus ReadRuleSet<TMemory>(ref TMemory memory, in GuestPaging caller, ulong address, ulong size, GuardRule* rules, out GuardRuleSetHeader header)
            where TMemory : struct, IPhysicalMemory
        {
            header = default;
            ulong headerSize = (ulong)sizeof(GuardRuleSetHeader);
            if (size < headerSize || size > headerSize + ((ulong)GuardRuleSetHeader.MaxRules * (ulong)sizeof(GuardRule))) return HypercallStatus.BadBufferSize;
            GuardRuleSetHeader h;
            if (GuestMemory.CopyFromGuest(ref memory, caller, address, new Span<byte>(&h, (int)headerSize)) != WalkResult.Ok) return HypercallStatus.BadAddress;
            if (h.Count > GuardRuleSetHeader.MaxRules || size < headerSize + ((ulong)h.Count * (ulong)sizeof(GuardRule))) return HypercallStatus.BadRequest;
            if (GuestMemory.CopyFromGuest(ref memory, caller, address + headerSize, new Span<byte>(rules, (int)h.Count * sizeof(GuardRule))) != WalkResult.Ok) return HypercallStatus.BadAddress;
            if (GuardRules.Validate(h, new ReadOnlySpan<GuardRule>(rules, (int)h.Count)) != null) return HypercallStatus.BadRequest;
            header = h;
            return HypercallStatus.Success;
        }

        /// <summary>
        /// 64 bits from RDRAND (retried, as the DRNG guide advises); without it a SplitMix64 finalizer over time-stamp
        /// counter reads taken around the work so far (weaker: its entropy is the TSC's low bits). Never 0.
        /// </summary>
        private static ulong NewSecret<TPlatform>(ref TPlatform platform, uint cpu)
            where TPlatform : struct, IGuardPlatform
        {
            for (int i = 0; i < RandomTries; i++)
            {
                if (platform.TryRandom(out ulong value) && value != 0) return value;
            }
            ulong x = platform.Timestamp ^ ((ulong)cpu << 56);
            for (int i = 0; i < 4; i++)
            {
                x += 0x9E37_79B9_7F4A_7C15UL ^ platform.Timestamp;
                x = (x ^ (x >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
                x = (x ^ (x >> 27)) * 0x94D0_49BB_1331_11EBUL;
                x ^= x >> 31;
            }
            return x == 0 ? 0x5649_4749_4C5F_5345UL : x;
        }

        private static HypercallStatus Lock<T>(ref T vcpu)
            where T : struct, IVcpu
        {
            ref GuestRegisters regs = ref vcpu.Registers;
            if (GuardState.Locked || !GuardState.Protected || !SecretMatches(regs.Rdx)) return HypercallStatus.NotPermitted;
            if (regs.Rbx != 0) return HypercallStatus.BadRequest;
            GuardState.Locked = true;
            GuardState.Publish();
            LogRings.Write(vcpu.Index, LogEvent.PolicyLocked, vcpu.Cr3);
            return HypercallStatus.Success;
        }

        /// <summary>
        /// Copies of the events after RSI into the buffer at RBX (RCX bytes): taken under the lock into this CPU's
        /// scratch, then written through the caller's page walk (every page checked before any byte is written).
        /// </summary>
        private static HypercallStatus ReadEvents<T, TMemory, TPlatform>(ref T vcpu, ref TMemory memory, ref TPlatform platform)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TPlatform : struct, IGuardPlatform
        {
            ref GuestRegisters regs = ref vcpu.Registers;
            uint cpu = vcpu.Index;
            if (!SecretMatches(regs.Rdx)) return HypercallStatus.NotPermitted;
            ulong eventSize = (ulong)sizeof(GuardEvent);
            if (regs.Rcx < eventSize)
            {
                regs.Rcx = eventSize;
                return HypercallStatus.BadBufferSize;
            }
            byte* scratch = Hypercalls.Scratch(cpu);
            GuardEventLog* log = GuardState.Events;
            if (scratch == null || log == null) return HypercallStatus.Unsupported;
            ulong room = regs.Rcx / eventSize;
            ulong fits = Hypercalls.ScratchBytesPerCpu / eventSize;
            if (room > fits) room = fits;

            GuardLock.Enter(ref platform, cpu);
            GuardDescriptors.CheckAll(ref memory);   // every CPU's GDT before the reader sees the events (a change becomes one)
            int copied = log->ReadAfter(regs.Rsi, (GuardEvent*)scratch, (int)room, out ulong missed);
            ulong newest = log->Newest;
            GuardLock.Exit(ref platform);
            if (copied > 0)
            {
                WalkResult result = GuestMemory.CopyToGuest(ref memory, VcpuState.Paging(ref vcpu), regs.Rbx, new ReadOnlySpan<byte>(scratch, copied * (int)eventSize), vcpu.ReservedBase, vcpu.ReservedSize);
                if (result != WalkResult.Ok) return HypercallStatus.BadAddress;
            }
            regs.Rbx = (ulong)copied;
            regs.Rcx = newest;
            regs.Rsi = missed;
            return HypercallStatus.Success;
        }

        /// <summary>
        /// The guard's part of the status report: counts for everyone, the guarded ranges only for a caller that presents
        /// the secret (<paramref name="listRanges"/>).
        /// </summary>
        public static void FillStatus(GuardStatus* s, bool listRanges)
        {
            s->Protected = GuardState.Protected ? 1u : 0;
            s->Locked = GuardState.Locked ? 1u : 0;
            s->AuditOnly = GuardState.RuleHeader.AuditOnly;
            s->RangeCount = (uint)GuardState.RangeCount;
            s->RuleCount = GuardState.RuleHeader.Count;
            s->RuleVersion = GuardState.RuleHeader.Version;
            s->RuleSource = GuardState.RuleSource;
            s->Generation = GuardState.Generation;
            GuardPins pins = GuardState.Pins;
            s->PinnedCr0 = pins.Cr0Set;
            s->PinnedCr4 = pins.Cr4Set;
            s->PinnedEfer = pins.EferSet;
            s->PinnedMsrs = GuardState.Protected ? 7u : 0;
            s->PinnedTables = GuardState.Protected ? 1u : 0;
            for (int i = 0; i < GuardState.RangeCount; i++)
            {
                ref GuardedRange r = ref GuardState.Range(i);
                int o = (int)r.Object;
                if ((uint)o >= GuardStatus.ObjectSlots) continue;
                s->Ranges[o]++;
                s->Bytes[o] += r.Size;
                if (listRanges && s->ListedCount < GuardStatus.MaxListedRanges)
                {
                    ref GuardRangeStatus listed = ref s->Listed[(int)s->ListedCount++];
                    listed.Gpa = r.Gpa;
                    listed.Size = r.Size;
                    listed.Object = r.Object;
                }
            }
            s->RangesHidden = !listRanges && GuardState.RangeCount > 0 ? 1u : 0;
            for (uint cpu = 0; cpu < GuardState.MaxCpus; cpu++)
            {
                if (GuardDescriptors.Watched(cpu)) s->GdtWatched++;
            }
            GuardEventLog* log = GuardState.Events;
            if (log == null) return;
            s->EventCapacity = log->Capacity;
            s->NewestEvent = log->Newest;
            s->EventsLost = log->Overwritten;
            for (int o = 0; o < GuardStatus.ObjectSlots; o++)
            {
                for (int v = 0; v < GuardStatus.VerdictSlots; v++) s->Verdicts[(o * GuardStatus.VerdictSlots) + v] = log->Counted((GuardObject)o, (GuardVerdict)v);
            }
        }
    }
}
