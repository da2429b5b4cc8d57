// Judges one decoded write to guarded kernel text: is it a step of the kernel's own patching? Linux
// 6.1 changes its text after boot only through text_poke (docs/GUARD.md): single-byte INT3 for
// kprobes (and its removal), and text_poke_bp's protocol for everything else — (1) INT3 over the
// site's first byte, (2) the tail bytes, (3) the new first byte — turning one patch shape into
// another (NOP ↔ JMP/CALL, CALL ↔ CALL, RET, ...). The judge allows a write because of what the site
// holds before and after it, never because of who wrote it (an attacker can call text_poke too):
//   - the site must hold a patch shape before (a patch site: a jump label, static call, fentry NOP,
//     BPF NOP, or an INT3 step of one), and a patch shape of the same length after;
//   - every multi-byte change happens under an INT3 on the site's first byte: the kernel never writes
//     a patch directly after boot, so a write to a site whose first byte is not INT3 is refused (this
//     also refuses the first of the several stores an attacker's memcpy makes of a JMP);
//   - a JMP's destination must be code the kernel had at Protect (jump labels and static calls jump
//     within the kernel); a CALL's may also be code that appeared since (JumpIntoNewCode: ftrace and
//     BPF trampolines in the module area, and also the way ftrace-based hooks of a later module call
//     in — a rule decides); anything else is refused. (An optimized kprobe — a JMP over arbitrary
//     code into a detour slot — is therefore refused: kprobes at function entries use ftrace.)
// While an INT3 sits on the first byte the new first byte is unknown, so a tail is judged against every
// first byte that could complete it; the completing write is judged on the whole instruction. The
// tracker remembers what each armed site held, so a refused patch can be put back whole (first byte
// included) instead of leaving a half-written instruction. Only a site the tracker saw armed can be
// patched further: text_poke_bp batches at most a page of sites (TP_VEC_MAX, ~170 in 6.1) and
// completes each batch before the next, so the tracker's capacity covers the kernel's own patching;
// a site it had to forget (thousands of kprobes armed at once) is refused rather than guessed at,
// since padding and code bytes next to a site can make a guess look like a patch. Compiled twice; no
// allocation.
using System;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>What a JMP/CALL destination is.</summary>
    public enum CodeKind : byte
    {
        /// <summary>Not code of the kernel (data, unmapped, user space).</summary>
        NotCode = 0,

        /// <summary>Code the kernel had at Protect (core text; module text present then).</summary>
        KnownCode = 1,

        /// <summary>Executable kernel memory that appeared after Protect (module area).</summary>
        NewCode = 2,
    }

    /// <summary>The hypervisor's view of the guest for the judge: bytes by physical address, and code by linear address.</summary>
    public interface ITextView
    {
        /// <summary>The byte at guest-physical <paramref name="gpa"/> as it is now (before the write being judged).</summary>
        byte Read(ulong gpa);

        /// <summary>The linear address the kernel executes guest-physical <paramref name="gpa"/> at (its text mapping).</summary>
        ulong ExecutionAddress(ulong gpa);

        CodeKind Classify(ulong linear);
    }

    /// <summary>The judgement of one write.</summary>
    public struct PatchJudgement
    {
        /// <summary><see cref="GuardContent.KernelPatch"/>, <see cref="GuardContent.JumpIntoNewCode"/>, <see cref="GuardContent.Unchanged"/>, or none (not a patch).</summary>
        public GuardContent Content;

        /// <summary>Where the site starts (guest-physical).</summary>
        public ulong Site;

        /// <summary>If the write is refused: bytes to put back at <see cref="Site"/> so no half-written instruction stays (0 = none).</summary>
        public int RestoreLength;

        public unsafe fixed byte Restore[TextPatchTracker.SiteBytes];
    }

    /// <summary>Sites with an INT3 armed by the judge's allowed writes, and what they held before.</summary>
    public unsafe struct TextPatchTracker
    {
        public const int Capacity = 1024;
        public const int SiteBytes = 16;

        private fixed ulong _sites[Capacity];           // guest-physical site address + 1 (0 = free)
        private fixed byte _original[Capacity * SiteBytes];
        private int _nextVictim;

        // Slots ever used (every armed site is below it): the searches scan these, not all of Capacity. A guarded write
        // the judge allows searches the tracker on its exit; scanning all 1024 slots (16 times for Covering) was most of
        // that exit's cost.
        private int _used;

        public int Find(ulong site)
        {
            for (int i = 0; i < _used; i++)
            {
                if (_sites[i] == site + 1) return i;
            }
            return -1;
        }

        /// <summary>The armed site whose first byte is at or before <paramref name="gpa"/> within one site's bytes (the nearest one).</summary>
        public int Covering(ulong gpa, out ulong site)
        {
            // One pass: the site at the smallest distance back from gpa (0..SiteBytes-1), the first slot on a tie.
            int found = -1;
            ulong best = SiteBytes;
            for (int i = 0; i < _used; i++)
            {
                ulong stored = _sites[i];
                if (stored == 0 || stored - 1 > gpa) continue;
                ulong back = gpa - (stored - 1);
                if (back < best)
                {
                    best = back;
                    found = i;
                }
            }
            site = found >= 0 ? gpa - best : 0;
            return found;
        }

        public void Arm(ulong site, ReadOnlySpan<byte> original)
        {
            int i = Find(site);
            if (i < 0)
            {
                for (int j = 0; j < Capacity && i < 0; j++)
                {
                    if (_sites[j] == 0) i = j;
                }
                if (i < 0)
                {
                    i = _nextVictim;   // full: the oldest arming is forgotten (judging falls back to the bytes)
                    _nextVictim = (_nextVictim + 1) % Capacity;
                }
            }
            _sites[i] = site + 1;
            if (i >= _used) _used = i + 1;
            for (int k = 0; k < SiteBytes; k++) _original[(i * SiteBytes) + k] = k < original.Length ? original[k] : (byte)0xCC;
        }

        public void Forget(int index) => _sites[index] = 0;

        public byte Original(int index, int offset) => _original[(index * SiteBytes) + offset];

        public int Armed
        {
            get
            {
                int n = 0;
                for (int i = 0; i < _used; i++)
                {
                    if (_sites[i] != 0) n++;
                }
                return n;
            }
        }
    }

    public static class TextPatchJudge
    {
        private const byte Int3 = 0xCC;

        // First bytes that can complete a tail written under an INT3: JMP/CALL/Jcc/NOP prefixes, RET, NOP2/NOP6.
        private static ReadOnlySpan<byte> FirstBytes => [0xE8, 0xE9, 0xEB, 0x0F, 0x66, 0xC3, 0x90];

        /// <summary>
        /// Judges a write of <paramref name="data"/> at guest-physical <paramref name="gpa"/> into guarded text and
        /// updates <paramref name="tracker"/> as if the write is done when it is judged a patch (the caller then
        /// performs it, or refuses it and puts back <see cref="PatchJudgement.Restore"/>).
        /// </summary>
        public static unsafe PatchJudgement Judge<TView>(ulong gpa, ReadOnlySpan<byte> data, ref TView view, ref TextPatchTracker tracker)
            where TView : struct, ITextView
        {
            var result = default(PatchJudgement);
            if (data.Length == 0 || data.Length > TextPatchTracker.SiteBytes) return result;

            bool unchanged = true;
            for (int i = 0; i < data.Length; i++) unchanged &= view.Read(gpa + (ulong)i) == data[i];
            if (unchanged)
            {
                result.Content = GuardContent.Unchanged;
                result.Site = gpa;
                return result;
            }

            // A kprobe, or step 1 of text_poke_bp: INT3 over the first byte of an instruction. Arming never
            // changes what the CPU executes beyond a trap the kernel handles.
            if (data.Length == 1 && data[0] == Int3)
            {
                Span<byte> current = stackalloc byte[TextPatchTracker.SiteBytes];
                for (int i = 0; i < TextPatchTracker.SiteBytes; i++) current[i] = view.Read(gpa + (ulong)i);
                tracker.Arm(gpa, current);
                result.Content = GuardContent.KernelPatch;
                result.Site = gpa;
                return result;
            }

            // Every other step belongs to a site armed by step 1 (the tail at site + 1, the first byte at the site);
            // the kernel never writes its text directly after boot.
            int armed = tracker.Covering(gpa, out ulong site);
            if (armed < 0)
            {
                result.Site = gpa;
                return result;
            }
            result.Site = site;
            int offset = (int)(gpa - site);

            Span<byte> before = stackalloc byte[TextPatchTracker.SiteBytes];
            Span<byte> after = stackalloc byte[TextPatchTracker.SiteBytes];
            Span<byte> original = stackalloc byte[TextPatchTracker.SiteBytes];
            for (int i = 0; i < TextPatchTracker.SiteBytes; i++)
            {
                before[i] = view.Read(site + (ulong)i);
                after[i] = i >= offset && i < offset + data.Length ? data[i - offset] : before[i];
                original[i] = tracker.Original(armed, i);
            }
            int extent = offset + data.Length;   // the write reaches this many bytes into the site
            if (extent > TextPatchTracker.SiteBytes) return Refuse(ref result, armed, ref tracker);

            // The INT3 of step 1 must still be on the site's first byte.
            if (before[0] != Int3) return Refuse(ref result, armed, ref tracker);

            if (after[0] == Int3)
            {
                // Step 2: a tail under the INT3. Allowed if some first byte completes it into a patch shape of the
                // site's length, at a site that held a patch shape of that length.
                GuardContent best = 0;
                for (int f = 0; f < FirstBytes.Length; f++)
                {
                    after[0] = FirstBytes[f];
                    GuardContent c = Candidate(site, after, extent, original, ref view);
                    if (c == GuardContent.KernelPatch) { best = c; break; }
                    if (c != 0) best = c;
                }
                after[0] = Int3;
                if (best == 0) return Refuse(ref result, armed, ref tracker);
                result.Content = best;
                return result;
            }

            // Step 3 (or a kprobe's removal, or a direct write): judge the whole instruction now at the site.
            if (SameInstruction(after, original))
            {
                tracker.Forget(armed);   // put back as it was
                result.Content = GuardContent.KernelPatch;
                return result;
            }
            GuardContent content = Candidate(site, after, extent, original, ref view);
            if (content == 0) return Refuse(ref result, armed, ref tracker);
            tracker.Forget(armed);
            result.Content = content;
            return result;
        }

        // The content flag for `after` at the site: a patch shape at least as long as the write reaches, at a site that held a
        // patch shape of the same length, leading into kernel code. 0 when it is none of those.
        private static GuardContent Candidate<TView>(ulong site, ReadOnlySpan<byte> after, int extent, ReadOnlySpan<byte> original, ref TView view)
            where TView : struct, ITextView
        {
            PatchShape shape = PatchShape.At(after);
            if (!shape.IsSiteContent || shape.Length < extent) return 0;
            PatchShape old = PatchShape.Exactly(original, shape.Length);
            if (!old.IsSiteContent) return 0;
            if (old.HasDestination && view.Classify(old.Destination(view.ExecutionAddress(site))) == CodeKind.NotCode) return 0;
            if (!shape.HasDestination) return GuardContent.KernelPatch;
            return view.Classify(shape.Destination(view.ExecutionAddress(site))) switch
            {
                CodeKind.KnownCode => GuardContent.KernelPatch,
                CodeKind.NewCode when shape.Kind == PatchKind.Call => GuardContent.JumpIntoNewCode,
                _ => 0,
            };
        }

        // The site holds again exactly what it held before it was armed (a kprobe removed, a patch reverted).
        private static bool SameInstruction(ReadOnlySpan<byte> after, ReadOnlySpan<byte> original)
        {
            for (int i = 0; i < after.Length; i++)
            {
                if (after[i] != original[i]) return false;
            }
            return true;
        }

        // Not a patch. If the site was armed, what it held goes back (first byte included): a refused text_poke_bp must not
        // leave an INT3 or a half-written instruction behind.
        private static unsafe PatchJudgement Refuse(ref PatchJudgement result, int armed, ref TextPatchTracker tracker)
        {
            result.Content = 0;
            if (armed < 0) return result;
            Span<byte> original = stackalloc byte[TextPatchTracker.SiteBytes];
            for (int i = 0; i < TextPatchTracker.SiteBytes; i++)
            {
                original[i] = tracker.Original(armed, i);
                result.Restore[i] = original[i];
            }
            PatchShape shape = PatchShape.At(original);
            result.RestoreLength = shape.IsSiteContent ? shape.Length : 1;   // a kprobe's site: only the first byte changed
            tracker.Forget(armed);
            return result;
        }
    }
}
