// A write fault on a guarded guest-physical page (EPT violation / #NPF on a page the Protect
// hypercall write-protected in the nested map: GuardState.ObjectAt(gpa) != None), handled the same
// way on both vendors. The store is decoded from the guest's bytes at CS:RIP (Decoding/MemoryWrite:
// MOV, MOVNTI, XCHG, CMPXCHG, STOS/MOVS with REP), never guessed; its destination is translated through
// the guest's own page tables (whatever alias it uses: the direct map, a vmap, text_poke's poking_mm);
// old and new bytes are read and computed; a write to core kernel text is shown to the text-patch judge
// (is it a step of the kernel's own patching? TextPatchJudge); the rules give the verdict and the event
// is recorded (all under the guard's lock, GuardAttempts).
//   Allow / Audit: the hypervisor performs the write itself through host physical memory (the page stays
//     read-only for the guest: no window in which another CPU could write it), then steps over the
//     instruction. REP MOVS/STOS is performed whole when every destination page is unguarded or its
//     attempt allowed (RCX/RSI/RDI updated as the CPU would); stores crossing a page are split.
//   Block: memory unchanged, the instruction is stepped over (REP forms: registers advanced as if done;
//     XCHG/CMPXCHG: registers unchanged). A refused text patch puts the site back whole (the judge's
//     Restore bytes: no half-written instruction, no INT3 left behind).
//   BlockAndFault: #PF (error code P|W, U when CPL 3; CR2 = the linear address), the instruction not done.
//   Undecodable (not 64-bit code, unknown instruction, a destination that does not match the fault):
//     content Undecodable, recorded with the instruction bytes (New) and the page's bytes (Old); it is
//     never performed: blocked (stepped over when its length can be decoded) or faulted.
// Registers are written back as the CPU would: XCHG loads the old value, CMPXCHG compares with the
// accumulator and sets the arithmetic flags. Writes are done byte by byte in ascending order (other CPUs
// cannot write the page meanwhile; they fault and wait for the lock).
// The hypervisor's own memory (the reservation: VMX maps it to a read-only decoy page, SVM to nothing or a
// read-only blank page) is handled here too, on both vendors the same way: a write there is an attempt on
// HypervisorMemory (the built-in rules block it), recorded with old bytes 0 (nothing of the hypervisor is
// read for the guest), and never performed whatever the verdict (host physical writes there are refused).
// Root mode (VMX root / SVM host), on the CPU that faulted, interrupts off. Compiled twice; no allocation.
using System;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Decoding;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>The guest's memory as the text-patch judge sees it: bytes by guest-physical address, code by linear address.</summary>
    public struct GuestTextView<TMemory> : ITextView where TMemory : struct, IPhysicalMemory
    {
        public TMemory Memory;

        public GuestTextView(TMemory memory) => Memory = memory;

        public readonly byte Read(ulong gpa)
            => Memory.Bounds.Check(gpa, 1) == WalkResult.Ok ? (byte)(Memory.ReadUInt64(gpa & ~7UL) >> (int)((gpa & 7) * 8)) : (byte)0;

        /// <summary>Core text executes at GuardState.TextLinear + (gpa - TextGpa); anything else has no known execution address (0).</summary>
        public readonly ulong ExecutionAddress(ulong gpa)
            => GuardState.TextSize != 0 && gpa - GuardState.TextGpa < GuardState.TextSize ? GuardState.TextLinear + (gpa - GuardState.TextGpa) : 0;

        /// <summary>Core text is the code the kernel had at Protect; the module area holds code that may have appeared since.</summary>
        public readonly CodeKind Classify(ulong linear)
        {
            if (GuardState.TextSize != 0 && linear - GuardState.TextLinear < GuardState.TextSize) return CodeKind.KnownCode;
            if (linear >= GuardAttempts.ModuleAreaStart && linear < GuardAttempts.ModuleAreaEnd) return CodeKind.NewCode;
            return CodeKind.NotCode;
        }
    }

    public static unsafe class GuardWrite
    {
        /// <summary>A REP MOVS/STOS writing more than this is not emulated (undecodable): nothing the kernel does to guarded pages is that large.</summary>
        public const ulong MaxStringBytes = 1UL << 20;

        private const ulong PfPresent = 1, PfWrite = 2, PfUser = 4;
        private const ulong Accessed = 1UL << 5, Dirty = 1UL << 6;   // paging-structure entries (SDM Vol 3A 4.8)   // #PF error code (SDM Vol 3A 6.15, Figure 6-11)
        private const ulong FlagsCf = 1UL << 0, FlagsPf = 1UL << 2, FlagsAf = 1UL << 4, FlagsZf = 1UL << 6, FlagsSf = 1UL << 7, FlagsOf = 1UL << 11;

        private static TextPatchTracker s_tracker;

        /// <summary>The sites the text-patch judge saw armed (tests reset it).</summary>
        public static ref TextPatchTracker Tracker => ref s_tracker;

        /// <summary>
        /// Handles a write fault at guest-physical <paramref name="gpa"/>. False when the page is not guarded (the caller
        /// keeps its own handling). Else <paramref name="action"/> says what to do with the guest: Skip over
        /// <paramref name="length"/> bytes (the decoder's length; the CPU gives none for nested faults), or Resume (a fault
        /// was injected, or the lock was busy and the instruction runs again).
        /// </summary>
        public static bool Handle<T, TMemory, TCpus>(ref T vcpu, ref TMemory memory, ref TCpus cpus, ulong gpa, out VcpuAction action, out int length)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TCpus : struct, INestedMapCpus
        {
            action = VcpuAction.Resume;
            length = 0;
            GuardObject o = ObjectOf(ref vcpu, gpa);
            if (o == GuardObject.None) return false;
            if (!GuardLock.TryEnter(ref cpus)) return true;
            action = Locked(ref vcpu, ref memory, gpa, o, out length);
            GuardLock.Exit(ref cpus);
            return true;
        }

        /// <summary>
        /// The guest's page walker setting an accessed or dirty bit in a paging-structure entry at guest-physical
        /// <paramref name="gpa"/> (SVM #NPF EXITINFO1 bit 33; VMX EPT violation qualification bit 7 set, bit 8 clear). False
        /// when the page is not guarded. Linux never keeps page tables in its text or read-only data, so an entry there is
        /// odd but not a store by an instruction: it is an attempt with content PageWalkUpdate (old the entry, new the entry
        /// with A set, or D when A already is: at most two exits per walk) that the rules judge (the built-in ones audit
        /// it: allowed and recorded). Allowed, the hypervisor sets the bit and the walk is retried; blocked, #PF(P|W) at the
        /// linear address the CPU reported (0 when it reported none) — without the bit the walk could never complete.
        /// The hypervisor's memory is never written.
        /// </summary>
        public static bool PageWalk<T, TMemory, TCpus>(ref T vcpu, ref TMemory memory, ref TCpus cpus, ulong gpa)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TCpus : struct, INestedMapCpus
        {
            GuardObject o = ObjectOf(ref vcpu, gpa);
            if (o == GuardObject.None) return false;
            if (!GuardLock.TryEnter(ref cpus)) return true;
            ulong slot = gpa & ~7UL;
            bool readable = o != GuardObject.HypervisorMemory && memory.Bounds.Check(slot, 8) == WalkResult.Ok;
            ulong entry = readable ? memory.ReadUInt64(slot) : 0;
            ulong updated = (entry & Accessed) == 0 ? entry | Accessed : entry | Dirty;
            var a = new GuardAttempt { Object = o, Access = GuardAccess.Write, Content = GuardContent.PageWalkUpdate };
            var e = new GuardEvent { Gpa = slot, ContentLength = 8 };
            for (int i = 0; i < 8; i++)
            {
                e.Old[i] = (byte)(entry >> (8 * i));
                e.New[i] = (byte)(updated >> (8 * i));
            }
            GuardVerdict verdict = GuardAttempts.Judge(ref vcpu, ref a, ref e);
            bool perform = verdict <= GuardVerdict.Audit && readable && updated != entry;
            if (perform) WriteByte(ref memory, slot, (byte)updated);   // A and D are bits 5 and 6 of the entry's first byte
            GuardLock.Exit(ref cpus);
            if (!perform)
            {
                ulong linear = vcpu.ExitGuestLinear;
                PageFault(ref vcpu, linear == VcpuConstants.NoLinearAddress ? 0 : linear);
            }
            return true;
        }

        private static VcpuAction Locked<T, TMemory>(ref T vcpu, ref TMemory memory, ulong gpa, GuardObject o, out int length)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            length = 0;
            GuestPaging paging = VcpuState.Paging(ref vcpu);
            byte* codeBytes = stackalloc byte[InstructionLength.MaxLength];
            var code = new Span<byte>(codeBytes, InstructionLength.MaxLength);
            int fetched = 0;
            MemoryWrite w = default;
            bool decoded = false;
            if (vcpu.Mode == CpuMode.Bits64)
            {
                fetched = GuestCode.Fetch(ref memory, paging, vcpu.Rip, true, code, vcpu.ReservedBase, vcpu.ReservedSize);
                ulong* regs = stackalloc ulong[16];
                for (int i = 0; i < 16; i++) regs[i] = i == 4 ? vcpu.Rsp : vcpu.Registers.Get(i);
                var context = new WriteContext
                {
                    Registers = new ReadOnlySpan<ulong>(regs, 16),
                    Rip = vcpu.Rip,
                    Rflags = vcpu.Rflags,
                    FsBase = vcpu.FsBase,
                    GsBase = vcpu.GsBase,
                };
                decoded = fetched > 0 && MemoryWriteDecoder.Decode(code.Slice(0, fetched), in context, out w);
            }
            if (decoded && w.Form is WriteForm.StoreString or WriteForm.MoveString)
            {
                if (w.Count == 0) { length = w.Length; return VcpuAction.Skip; }   // REP with RCX = 0 writes nothing (it would not fault)
                if (w.TotalBytes <= MaxStringBytes && w.Count <= MaxStringBytes) return String(ref vcpu, ref memory, paging, gpa, in w, out length);
            }
            else if (decoded)
            {
                return Single(ref vcpu, ref memory, paging, gpa, o, in w, code.Slice(0, fetched), out length);
            }
            return Undecodable(ref vcpu, ref memory, gpa, o, code.Slice(0, fetched), out length);
        }

        // ---- MOV, MOVNTI, XCHG, CMPXCHG: one element of 1-8 bytes, possibly across a page boundary ----

        private static VcpuAction Single<T, TMemory>(ref T vcpu, ref TMemory memory, in GuestPaging paging, ulong gpa, GuardObject o, in MemoryWrite w,
            ReadOnlySpan<byte> code, out int length)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            length = 0;
            int size = w.Size;
            ulong* physical = stackalloc ulong[8];
            if (!TranslateRange(ref memory, paging, w.Destination, (ulong)size, physical, gpa)) return Undecodable(ref vcpu, ref memory, gpa, o, code, out length);
            byte* old = stackalloc byte[8];
            byte* data = stackalloc byte[8];
            ulong oldValue = 0;
            for (int i = 0; i < size; i++)
            {
                old[i] = ReadByte(ref memory, physical[i]);
                oldValue |= (ulong)old[i] << (8 * i);
            }
            // CMPXCHG writes its source only when memory equals the accumulator; otherwise memory keeps its value.
            bool compareFails = w.Form == WriteForm.CompareExchange && oldValue != Truncate(vcpu.Registers.Rax, size);
            for (int i = 0; i < size; i++) data[i] = compareFails ? old[i] : (byte)(w.Value >> (8 * i));

            var a = new GuardAttempt { Object = o, Access = GuardAccess.Write };
            var e = new GuardEvent { Gpa = physical[0], Linear = w.Destination, ContentLength = (byte)size };
            for (int i = 0; i < size; i++)
            {
                e.Old[i] = old[i];
                e.New[i] = data[i];
            }
            PatchJudgement judgement = default;
            a.Content = ContentOf(ref memory, o, physical, new ReadOnlySpan<byte>(old, size), new ReadOnlySpan<byte>(data, size), ref judgement);
            GuardVerdict verdict = GuardAttempts.Judge(ref vcpu, ref a, ref e);
            if (verdict >= GuardVerdict.Block)
            {
                Restore(ref memory, in judgement);
                if (verdict == GuardVerdict.BlockAndFault) return PageFault(ref vcpu, w.Destination);
                length = w.Length;
                return VcpuAction.Skip;
            }
            for (int i = 0; i < size; i++) WriteByte(ref memory, physical[i], data[i]);
            if (w.Form == WriteForm.Exchange)
            {
                SetOperand(ref vcpu, w.Register, w.HighByte, size, oldValue);
            }
            else if (w.Form == WriteForm.CompareExchange)
            {
                ulong accumulator = Truncate(vcpu.Registers.Rax, size);
                vcpu.Rflags = (vcpu.Rflags & ~(FlagsCf | FlagsPf | FlagsAf | FlagsZf | FlagsSf | FlagsOf)) | CompareFlags(accumulator, oldValue, size);
                if (compareFails) SetOperand(ref vcpu, 0, false, size, oldValue);   // the accumulator gets what memory holds
            }
            length = w.Length;
            return VcpuAction.Skip;
        }

        // ---- STOS / MOVS, with or without REP: the remaining elements, performed whole or not at all ----

        private static VcpuAction String<T, TMemory>(ref T vcpu, ref TMemory memory, in GuestPaging paging, ulong gpa, in MemoryWrite w, out int length)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            length = 0;
            ulong total = w.TotalBytes;
            ulong size = (ulong)w.Size;
            ulong low = w.Down ? w.Destination - (total - size) : w.Destination;   // lowest byte written
            ulong sourceLow = w.Down ? w.Source - (total - size) : w.Source;

            // Every destination page must translate for a write and every source page for a read; the faulting page must be
            // among the destinations (else the decode does not explain the fault). The first guarded page names the object.
            GuardObject o = GuardObject.None;
            ulong guardedGpa = 0;
            bool faultExplained = false;
            for (ulong page = low & ~0xFFFUL; page < low + total; page += 0x1000)
            {
                ulong va = page < low ? low : page;
                if (!TranslatePage(ref memory, paging, va, write: true, gpa, out ulong pa)) return Undecodable(ref vcpu, ref memory, gpa, ObjectOf(ref vcpu, gpa), default, out length);
                if ((pa & ~0xFFFUL) == (gpa & ~0xFFFUL)) faultExplained = true;
                GuardObject here = ObjectOf(ref vcpu, pa);
                if (here != GuardObject.None && o == GuardObject.None)
                {
                    o = here;
                    guardedGpa = pa;
                }
            }
            if (w.Form == WriteForm.MoveString)
            {
                for (ulong page = sourceLow & ~0xFFFUL; page < sourceLow + total; page += 0x1000)
                {
                    ulong va = page < sourceLow ? sourceLow : page;
                    if (GuestMemory.Translate(ref memory, paging, va, write: false, out ulong sourcePage) != WalkResult.Ok || !Reachable(ref memory, sourcePage & ~0xFFFUL)) return Undecodable(ref vcpu, ref memory, gpa, ObjectOf(ref vcpu, gpa), default, out length);
                }
            }
            if (!faultExplained || o == GuardObject.None) return Undecodable(ref vcpu, ref memory, gpa, ObjectOf(ref vcpu, gpa), default, out length);

            // The bytes as they will be: the first 16 (the event's), and all of them for the judge when the write is that short.
            int shown = (int)Math.Min(total, (ulong)GuardEvent.ContentBytes);
            byte* old = stackalloc byte[GuardEvent.ContentBytes];
            byte* data = stackalloc byte[GuardEvent.ContentBytes];
            ulong* physical = stackalloc ulong[GuardEvent.ContentBytes];
            TranslateRange(ref memory, paging, low, (ulong)shown, physical, gpa);   // translated above (every page); the result only says whether the fault's page is among the first 16 bytes
            for (int i = 0; i < shown; i++) old[i] = data[i] = ReadByte(ref memory, physical[i]);
            var image = new Span<byte>(data, shown);
            Simulate(ref memory, paging, in w, low, image);

            var a = new GuardAttempt { Object = o, Access = GuardAccess.Write };
            var e = new GuardEvent { Gpa = physical[0], Linear = low, ContentLength = (byte)shown, Detail = total > GuardEvent.ContentBytes ? total : 0 };
            for (int i = 0; i < shown; i++)
            {
                e.Old[i] = old[i];
                e.New[i] = data[i];
            }
            PatchJudgement judgement = default;
            if (total <= GuardEvent.ContentBytes)
            {
                // Only the guarded bytes count for "changes nothing" (the rest of the write is not the guard's business).
                bool unchanged = true;
                for (int i = 0; i < shown; i++) unchanged &= old[i] == data[i] || ObjectOf(ref vcpu, physical[i]) == GuardObject.None;
                a.Content = unchanged ? GuardContent.Unchanged : ContentOf(ref memory, o, physical, new ReadOnlySpan<byte>(old, shown), image, ref judgement);
            }
            GuardVerdict verdict = GuardAttempts.Judge(ref vcpu, ref a, ref e);
            if (verdict == GuardVerdict.BlockAndFault)
            {
                Restore(ref memory, in judgement);
                return PageFault(ref vcpu, guardedGpa == physical[0] ? low : w.Destination);
            }
            if (verdict == GuardVerdict.Block) Restore(ref memory, in judgement);
            else Perform(ref memory, paging, in w);
            AdvanceStringRegisters(ref vcpu, in w, total);
            length = w.Length;
            return VcpuAction.Skip;
        }

        /// <summary>What the string instruction leaves in [<paramref name="low"/>, + image length): its elements applied in order to <paramref name="image"/> (sources inside the image read from it).</summary>
        private static void Simulate<TMemory>(ref TMemory memory, in GuestPaging paging, in MemoryWrite w, ulong low, Span<byte> image)
            where TMemory : struct, IPhysicalMemory
        {
            ulong size = (ulong)w.Size;
            ulong end = low + (ulong)image.Length;
            for (ulong n = 0; n < w.Count; n++)
            {
                ulong offset = n * size;
                ulong destination = w.Down ? w.Destination - offset : w.Destination + offset;
                if (destination + size <= low || destination >= end) continue;
                for (ulong k = 0; k < size; k++)
                {
                    ulong at = destination + k;
                    if (at < low || at >= end) continue;
                    byte value;
                    if (w.Form == WriteForm.StoreString)
                    {
                        value = (byte)(w.Value >> (int)(8 * k));
                    }
                    else
                    {
                        ulong source = (w.Down ? w.Source - offset : w.Source + offset) + k;
                        value = source >= low && source < end ? image[(int)(source - low)] : ReadLinear(ref memory, paging, source);
                    }
                    image[(int)(at - low)] = value;
                }
            }
        }

        /// <summary>Every element of the string instruction, in the CPU's order (overlapping MOVS reads what earlier elements wrote).</summary>
        private static void Perform<TMemory>(ref TMemory memory, in GuestPaging paging, in MemoryWrite w)
            where TMemory : struct, IPhysicalMemory
        {
            ulong size = (ulong)w.Size;
            ulong destinationPage = ulong.MaxValue, destinationPhysical = 0, sourcePage = ulong.MaxValue, sourcePhysical = 0;
            bool destinationOk = false, sourceOk = false;   // a page that does not translate (the reservation) is never written or read
            for (ulong n = 0; n < w.Count; n++)
            {
                ulong offset = n * size;
                ulong destination = w.Down ? w.Destination - offset : w.Destination + offset;
                ulong source = w.Down ? w.Source - offset : w.Source + offset;
                for (ulong k = 0; k < size; k++)
                {
                    byte value;
                    if (w.Form == WriteForm.StoreString)
                    {
                        value = (byte)(w.Value >> (int)(8 * k));
                    }
                    else
                    {
                        ulong s = source + k;
                        if ((s & ~0xFFFUL) != sourcePage)
                        {
                            sourcePage = s & ~0xFFFUL;
                            sourceOk = GuestMemory.Translate(ref memory, paging, sourcePage, write: false, out sourcePhysical) == WalkResult.Ok;
                        }
                        value = sourceOk ? ReadByte(ref memory, (sourcePhysical & ~0xFFFUL) | (s & 0xFFF)) : (byte)0;
                    }
                    ulong d = destination + k;
                    if ((d & ~0xFFFUL) != destinationPage)
                    {
                        destinationPage = d & ~0xFFFUL;
                        destinationOk = GuestMemory.Translate(ref memory, paging, destinationPage, write: true, out destinationPhysical) == WalkResult.Ok;
                    }
                    if (destinationOk) WriteByte(ref memory, (destinationPhysical & ~0xFFFUL) | (d & 0xFFF), value);
                }
            }
        }

        /// <summary>RDI (and RSI for MOVS) move past every element, RCX counts down to 0 with REP (32-bit registers with a 67 prefix, zero-extended).</summary>
        private static void AdvanceStringRegisters<T>(ref T vcpu, in MemoryWrite w, ulong total) where T : struct, IVcpu
        {
            ref GuestRegisters r = ref vcpu.Registers;
            ulong mask = w.Address32 ? 0xFFFF_FFFFUL : ulong.MaxValue;
            r.Rdi = (w.Down ? r.Rdi - total : r.Rdi + total) & mask;
            if (w.Form == WriteForm.MoveString) r.Rsi = (w.Down ? r.Rsi - total : r.Rsi + total) & mask;
            if (w.Repeat) r.Rcx = 0;
        }

        // ---- what cannot be decoded ----

        private static VcpuAction Undecodable<T, TMemory>(ref T vcpu, ref TMemory memory, ulong gpa, GuardObject o, ReadOnlySpan<byte> code, out int length)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            if (o == GuardObject.None) o = ObjectOf(ref vcpu, gpa);
            var a = new GuardAttempt { Object = o, Access = GuardAccess.Write, Content = GuardContent.Undecodable };
            ulong linear = vcpu.ExitGuestLinear;
            var e = new GuardEvent { Gpa = gpa, Linear = linear == VcpuConstants.NoLinearAddress ? 0 : linear };
            int shown = Math.Min(code.Length, GuardEvent.ContentBytes);
            e.ContentLength = (byte)shown;
            for (int i = 0; i < shown; i++)
            {
                e.Old[i] = ReadByte(ref memory, gpa + (ulong)i);
                e.New[i] = code[i];
            }
            GuardVerdict verdict = GuardAttempts.Judge(ref vcpu, ref a, ref e);
            length = verdict == GuardVerdict.BlockAndFault || code.Length == 0 ? 0 : InstructionLength.Decode(code, vcpu.Mode, vcpu.Vendor);
            if (length == 0) return PageFault(ref vcpu, e.Linear);   // neither performed nor steppable: the actor gets the fault
            return VcpuAction.Skip;
        }

        // ---- shared pieces ----

        /// <summary>The hypervisor's reservation (always guarded: nothing is ever written there for the guest), else the guarded range's class.</summary>
        private static GuardObject ObjectOf<T>(ref T vcpu, ulong gpa) where T : struct, IVcpu
            => gpa - vcpu.ReservedBase < vcpu.ReservedSize ? GuardObject.HypervisorMemory : GuardState.ObjectAt(gpa);

        /// <summary>Whether a page the walk found may hold a write's destination: inside the host's reach, or the reservation (whose bytes read as 0 and are never written).</summary>
        private static bool Reachable<TMemory>(ref TMemory memory, ulong page) where TMemory : struct, IPhysicalMemory
        {
            WalkResult r = memory.Bounds.Check(page, 0x1000);
            return r == WalkResult.Ok || r == WalkResult.Forbidden;
        }

        /// <summary>
        /// Content flags of a write of <paramref name="data"/> over <paramref name="old"/>: Unchanged, or what the text-patch
        /// judge says for core text (its judgement kept for a restore).
        /// </summary>
        private static GuardContent ContentOf<TMemory>(ref TMemory memory, GuardObject o, ulong* physical, ReadOnlySpan<byte> old, ReadOnlySpan<byte> data, ref PatchJudgement judgement)
            where TMemory : struct, IPhysicalMemory
        {
            bool unchanged = true;
            for (int i = 0; i < data.Length; i++) unchanged &= old[i] == data[i];
            if (unchanged) return GuardContent.Unchanged;
            if (o != GuardObject.KernelText) return GuardContent.None;
            for (int i = 1; i < data.Length; i++)
            {
                if (physical[i] != physical[0] + (ulong)i) return GuardContent.None;   // not one physical run: not a patch of one site
            }
            var view = new GuestTextView<TMemory>(memory);
            judgement = TextPatchJudge.Judge(physical[0], data, ref view, ref s_tracker);
            return judgement.Content;
        }

        /// <summary>A refused patch: the site's bytes as they were before it was armed (first byte included).</summary>
        private static void Restore<TMemory>(ref TMemory memory, in PatchJudgement judgement) where TMemory : struct, IPhysicalMemory
        {
            for (int i = 0; i < judgement.RestoreLength; i++) WriteByte(ref memory, judgement.Site + (ulong)i, judgement.Restore[i]);
        }

        /// <summary>
        /// Physical address of each of <paramref name="count"/> bytes from <paramref name="linear"/> (a page at a time, for a
        /// write). False when a page does not translate or lies outside the host's reach, or when <paramref name="mustHit"/>'s
        /// page (the fault's; MaxValue: any) is not one of them.
        /// </summary>
        private static bool TranslateRange<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, ulong count, ulong* physical, ulong mustHit)
            where TMemory : struct, IPhysicalMemory
        {
            bool hit = mustHit == ulong.MaxValue;
            ulong page = ulong.MaxValue, pagePhysical = 0;
            for (ulong i = 0; i < count; i++)
            {
                ulong va = linear + i;
                if ((va & ~0xFFFUL) != page)
                {
                    page = va & ~0xFFFUL;
                    WalkResult r = GuestMemory.Translate(ref memory, paging, va, write: true, out pagePhysical);
                    // The hypervisor's reservation: the walk reports no address there; the fault's page stands for it in the record
                    // (its bytes are never read or written: ReadByte/WriteByte refuse them).
                    if (r == WalkResult.Forbidden && mustHit != ulong.MaxValue && memory.Bounds.Check(mustHit & ~0xFFFUL, 0x1000) == WalkResult.Forbidden) pagePhysical = mustHit;
                    else if (r != WalkResult.Ok) return false;
                    pagePhysical &= ~0xFFFUL;
                    if (!Reachable(ref memory, pagePhysical)) return false;
                    hit |= pagePhysical == (mustHit & ~0xFFFUL);
                }
                physical[i] = pagePhysical | (va & 0xFFF);
            }
            return hit;
        }

        /// <summary>A page of a string instruction's range; the reservation (Forbidden: the walk gives no address) stands as <paramref name="fault"/>'s page.</summary>
        private static bool TranslatePage<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, bool write, ulong fault, out ulong physical) where TMemory : struct, IPhysicalMemory
        {
            WalkResult r = GuestMemory.Translate(ref memory, paging, linear, write, out physical);
            if (r == WalkResult.Forbidden && memory.Bounds.Check(fault & ~0xFFFUL, 0x1000) == WalkResult.Forbidden)
            {
                physical = (fault & ~0xFFFUL) | (linear & 0xFFF);
                return true;
            }
            return r == WalkResult.Ok && Reachable(ref memory, physical & ~0xFFFUL);
        }

        private static byte ReadLinear<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear) where TMemory : struct, IPhysicalMemory
            => GuestMemory.Translate(ref memory, paging, linear, write: false, out ulong pa) == WalkResult.Ok ? ReadByte(ref memory, pa) : (byte)0;

        private static byte ReadByte<TMemory>(ref TMemory memory, ulong physical) where TMemory : struct, IPhysicalMemory
            => memory.Bounds.Check(physical, 1) == WalkResult.Ok ? (byte)(memory.ReadUInt64(physical & ~7UL) >> (int)((physical & 7) * 8)) : (byte)0;

        private static void WriteByte<TMemory>(ref TMemory memory, ulong physical, byte value) where TMemory : struct, IPhysicalMemory
        {
            if (memory.Bounds.Check(physical, 1) == WalkResult.Ok) memory.WriteByte(physical, value);
        }

        /// <summary>#PF for a write the guard refused with a fault: present, write, user when CPL 3; CR2 = the linear address.</summary>
        public static VcpuAction PageFault<T>(ref T vcpu, ulong linear) where T : struct, IVcpu
        {
            uint error = (uint)(PfPresent | PfWrite | (vcpu.Cpl == 3 ? PfUser : 0));
            vcpu.LoadCr2(linear);
            vcpu.Injected = VcpuEvent.Exception(VcpuEvent.PageFault, error);
            return VcpuAction.Resume;
        }

        /// <summary>A register operand of <paramref name="size"/> bytes (AH-BH with <paramref name="high"/>; 4 bytes zero-extend, SDM Vol 1 3.4.1.1).</summary>
        private static void SetOperand<T>(ref T vcpu, int register, bool high, int size, ulong value) where T : struct, IVcpu
        {
            ulong current = register == 4 ? vcpu.Rsp : vcpu.Registers.Get(register);
            ulong result = size switch
            {
                1 when high => (current & ~0xFF00UL) | ((value & 0xFF) << 8),
                1 => (current & ~0xFFUL) | (value & 0xFF),
                2 => (current & ~0xFFFFUL) | (value & 0xFFFF),
                4 => value & 0xFFFF_FFFF,
                _ => value,
            };
            if (register == 4) vcpu.Rsp = result;
            else vcpu.Registers.Set(register, result);
        }

        /// <summary>The flags CMP accumulator, memory sets (CMPXCHG, SDM Vol 2A CMPXCHG and CMP).</summary>
        public static ulong CompareFlags(ulong accumulator, ulong memoryValue, int size)
        {
            int bits = size * 8;
            ulong result = Truncate(accumulator - memoryValue, size);
            ulong sign = 1UL << (bits - 1);
            ulong flags = 0;
            if (accumulator < memoryValue) flags |= FlagsCf;
            if (result == 0) flags |= FlagsZf;
            if ((result & sign) != 0) flags |= FlagsSf;
            if (((accumulator ^ memoryValue) & (accumulator ^ result) & sign) != 0) flags |= FlagsOf;
            if (((accumulator ^ memoryValue ^ result) & 0x10) != 0) flags |= FlagsAf;
            ulong parity = result & 0xFF;
            parity ^= parity >> 4;
            parity ^= parity >> 2;
            parity ^= parity >> 1;
            if ((parity & 1) == 0) flags |= FlagsPf;   // PF: an even number of set bits in the low byte
            return flags;
        }

        private static ulong Truncate(ulong value, int size) => size >= 8 ? value : value & ((1UL << (8 * size)) - 1);
    }
}
