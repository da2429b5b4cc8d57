// The compiled policy as the hypervisor (and vigil.efi) accepts it: GuardPolicyImage.Validate checks a
// blob (hv/Abi/GuardPolicy.cs) completely before anything uses it, and hands out a view of its rules,
// line table, name and source. Every way a blob can be wrong has its own error and reason: sizes,
// signature, version, the integrity hash, every section's range, alignment and overlap, padding,
// counts, every field of every rule, the line table against the source, the source hash. It reads
// only through bounds-checked spans (never out of bounds, whatever the header says), allocates
// nothing and runs in time linear in the blob's size (at most GuardPolicyHeader.MaxTotalSize).
// Compiled twice (tiny corelib: vigil.efi and the hypervisor; net10: the tests and `vigil policy`).
using System;
using System.Runtime.CompilerServices;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    /// <summary>Why a compiled policy was refused (<see cref="GuardPolicyImage.Describe"/> says it in words).</summary>
    public enum GuardPolicyError : byte
    {
        None = 0,
        TooSmall,
        TooLarge,
        BadSignature,
        UnsupportedVersion,
        BadHeaderSize,
        SizeMismatch,
        HeaderReservedSet,
        BlobHashMismatch,
        BadMode,
        BadDefaultVerdict,
        TooManyRules,
        RulesLengthMismatch,
        LinesLengthMismatch,
        NameLengthOutOfRange,
        SourceTooLarge,
        SectionOutOfRange,
        SectionMisaligned,
        SectionsOverlap,
        PaddingNotZero,
        SourceHashMismatch,
        SourceNotUtf8,
        NameNotPrintable,
        LineOutOfRange,
        LineOutOfOrder,
        LineNumberWrong,
        LineNotWholeLine,
        LineReservedSet,
        RuleUnknownObject,
        RuleUnknownAccess,
        RuleUnknownRegion,
        RuleCplOutOfRange,
        RuleLockOutOfRange,
        RuleUnknownContent,
        RuleContentContradiction,
        RuleVerdictOutOfRange,
        RuleRipRangeEmpty,
        RuleCr3NotAddress,
        RuleDetailMismatch,
        RuleReservedSet,
    }

    /// <summary>A validated compiled policy: views into the blob it came from (valid while the blob is).</summary>
    public readonly ref struct GuardPolicyView
    {
        public readonly GuardPolicyMode Mode;
        public readonly GuardVerdict Default;

        /// <summary>The rules, in order (first match wins).</summary>
        public readonly ReadOnlySpan<GuardRule> Rules;

        /// <summary>Per rule: its line in <see cref="Source"/>.</summary>
        public readonly ReadOnlySpan<GuardPolicyLine> Lines;

        /// <summary>The source file's name (UTF-8).</summary>
        public readonly ReadOnlySpan<byte> Name;

        /// <summary>The source text (UTF-8).</summary>
        public readonly ReadOnlySpan<byte> Source;

        /// <summary>SHA-256 of <see cref="Source"/> (checked).</summary>
        public readonly ReadOnlySpan<byte> SourceHash;

        public GuardPolicyView(GuardPolicyMode mode, GuardVerdict fallback, ReadOnlySpan<GuardRule> rules, ReadOnlySpan<GuardPolicyLine> lines,
            ReadOnlySpan<byte> name, ReadOnlySpan<byte> source, ReadOnlySpan<byte> sourceHash)
        {
            Mode = mode;
            Default = fallback;
            Rules = rules;
            Lines = lines;
            Name = name;
            Source = source;
            SourceHash = sourceHash;
        }

        /// <summary>The rules' header as the guard keeps it (GuardState.SetRules).</summary>
        public GuardRuleSetHeader RuleSetHeader => new GuardRuleSetHeader
        {
            Signature = GuardRuleSetHeader.ExpectedSignature,
            Version = GuardRuleSetHeader.CurrentVersion,
            Count = (uint)Rules.Length,
            Default = Default,
            AuditOnly = Mode == GuardPolicyMode.AuditOnly ? (byte)1 : (byte)0,
        };

        /// <summary>The source line rule <paramref name="rule"/> came from (UTF-8, without its line break).</summary>
        public ReadOnlySpan<byte> RuleText(int rule) => Source.Slice((int)Lines[rule].SourceOffset, (int)Lines[rule].SourceLength);
    }

    public static class GuardPolicyImage
    {
        // Header field offsets (hv/Abi/GuardPolicy.cs; the layout tests check them against the struct).
        private const int OffSignature = 0, OffVersion = 8, OffHeaderSize = 12, OffTotalSize = 16, OffMode = 20, OffDefault = 21, OffRuleCount = 22;
        private const int OffRules = 24, OffLines = 32, OffName = 40, OffSource = 48, OffReserved = 56, OffSourceHash = 64;

        private const int RuleSize = 64;

        /// <summary>Every object class a rule may name: bits 1..12.</summary>
        public const uint KnownObjects = (1u << ((int)GuardObject.GlobalTableDescriptor + 1)) - 2;

        public const byte KnownAccesses = (1 << ((int)GuardAccess.RegisterWrite + 1)) - 2;
        public const byte KnownRegions = (1 << ((int)ActorRegion.User + 1)) - 1;
        public const ushort KnownContent = (ushort)((((ushort)GuardContent.PageWalkUpdate) << 1) - 1);

        /// <summary>Checks <paramref name="blob"/> (exactly the compiled file) completely; on success <paramref name="view"/> shows into it.</summary>
        public static GuardPolicyError Validate(ReadOnlySpan<byte> blob, out GuardPolicyView view) => Validate(blob, out view, out _);

        /// <summary>As above; <paramref name="rule"/> is the index of the rule (or line-table entry) an error is about, else -1.</summary>
        public static GuardPolicyError Validate(ReadOnlySpan<byte> blob, out GuardPolicyView view, out int rule)
        {
            view = default;
            rule = -1;
            if (blob.Length < GuardPolicyHeader.Size) return GuardPolicyError.TooSmall;
            if (blob.Length > GuardPolicyHeader.MaxTotalSize) return GuardPolicyError.TooLarge;
            if (U64(blob, OffSignature) != GuardPolicyHeader.ExpectedSignature) return GuardPolicyError.BadSignature;
            if (U32(blob, OffVersion) != GuardPolicyHeader.CurrentVersion) return GuardPolicyError.UnsupportedVersion;
            if (U32(blob, OffHeaderSize) != GuardPolicyHeader.Size) return GuardPolicyError.BadHeaderSize;
            if (U32(blob, OffTotalSize) != (uint)blob.Length) return GuardPolicyError.SizeMismatch;
            if (U64(blob, OffReserved) != 0) return GuardPolicyError.HeaderReservedSet;

            // Integrity first: a damaged file says so, rather than whichever field the damage hit.
            if (!BlobHashMatches(blob)) return GuardPolicyError.BlobHashMismatch;

            byte mode = blob[OffMode];
            byte fallback = blob[OffDefault];
            int count = U16(blob, OffRuleCount);
            if (mode > (byte)GuardPolicyMode.AuditOnly) return GuardPolicyError.BadMode;
            if (fallback > (byte)GuardVerdict.BlockAndFault) return GuardPolicyError.BadDefaultVerdict;
            if (count > GuardRuleSetHeader.MaxRules) return GuardPolicyError.TooManyRules;

            uint rulesOffset = U32(blob, OffRules), rulesLength = U32(blob, OffRules + 4);
            uint linesOffset = U32(blob, OffLines), linesLength = U32(blob, OffLines + 4);
            uint nameOffset = U32(blob, OffName), nameLength = U32(blob, OffName + 4);
            uint sourceOffset = U32(blob, OffSource), sourceLength = U32(blob, OffSource + 4);
            if (rulesLength != (uint)(count * RuleSize)) return GuardPolicyError.RulesLengthMismatch;
            if (linesLength != (uint)(count * GuardPolicyLine.Size)) return GuardPolicyError.LinesLengthMismatch;
            if (nameLength == 0 || nameLength > GuardPolicyHeader.MaxNameBytes) return GuardPolicyError.NameLengthOutOfRange;
            if (sourceLength > GuardPolicyHeader.MaxSourceBytes) return GuardPolicyError.SourceTooLarge;

            uint total = (uint)blob.Length;
            if (!InBlob(rulesOffset, rulesLength, total) || !InBlob(linesOffset, linesLength, total)
                || !InBlob(nameOffset, nameLength, total) || !InBlob(sourceOffset, sourceLength, total)) return GuardPolicyError.SectionOutOfRange;
            if ((rulesOffset & 7) != 0 || (linesOffset & 3) != 0) return GuardPolicyError.SectionMisaligned;
            if (Overlap(rulesOffset, rulesLength, linesOffset, linesLength) || Overlap(rulesOffset, rulesLength, nameOffset, nameLength)
                || Overlap(rulesOffset, rulesLength, sourceOffset, sourceLength) || Overlap(linesOffset, linesLength, nameOffset, nameLength)
                || Overlap(linesOffset, linesLength, sourceOffset, sourceLength) || Overlap(nameOffset, nameLength, sourceOffset, sourceLength))
            {
                return GuardPolicyError.SectionsOverlap;
            }
            for (uint i = GuardPolicyHeader.Size; i < total; i++)
            {
                if (blob[(int)i] == 0) continue;
                if (i - rulesOffset < rulesLength || i - linesOffset < linesLength || i - nameOffset < nameLength || i - sourceOffset < sourceLength) continue;
                return GuardPolicyError.PaddingNotZero;
            }

            ReadOnlySpan<byte> source = blob.Slice((int)sourceOffset, (int)sourceLength);
            ReadOnlySpan<byte> name = blob.Slice((int)nameOffset, (int)nameLength);
            ReadOnlySpan<byte> sourceHash = blob.Slice(OffSourceHash, Sha256.DigestBytes);
            if (!SourceHashMatches(source, sourceHash)) return GuardPolicyError.SourceHashMismatch;
            if (!IsUtf8(source, allowControl: true)) return GuardPolicyError.SourceNotUtf8;
            if (!IsUtf8(name, allowControl: false)) return GuardPolicyError.NameNotPrintable;

            ReadOnlySpan<byte> rules = blob.Slice((int)rulesOffset, (int)rulesLength);
            for (int i = 0; i < count; i++)
            {
                GuardPolicyError e = CheckRule(rules.Slice(i * RuleSize, RuleSize));
                if (e == GuardPolicyError.None) continue;
                rule = i;
                return e;
            }

            ReadOnlySpan<byte> lines = blob.Slice((int)linesOffset, (int)linesLength);
            uint scanned = 0, lineNumber = 1, previous = 0;
            for (int i = 0; i < count; i++)
            {
                rule = i;
                ReadOnlySpan<byte> entry = lines.Slice(i * GuardPolicyLine.Size, GuardPolicyLine.Size);
                uint line = U32(entry, 0), offset = U32(entry, 4), length = U32(entry, 8);
                if (U32(entry, 12) != 0) return GuardPolicyError.LineReservedSet;
                if (offset > sourceLength || length > sourceLength - offset) return GuardPolicyError.LineOutOfRange;
                if (offset < previous) return GuardPolicyError.LineOutOfOrder;
                previous = offset;
                for (; scanned < offset; scanned++)
                {
                    if (source[(int)scanned] == (byte)'\n') lineNumber++;
                }
                if (line != lineNumber) return GuardPolicyError.LineNumberWrong;
                if (!WholeLine(source, offset, length)) return GuardPolicyError.LineNotWholeLine;
            }
            rule = -1;

            view = new GuardPolicyView((GuardPolicyMode)mode, (GuardVerdict)fallback, AsRules(rules, count), AsLines(lines, count), name, source, sourceHash);
            return GuardPolicyError.None;
        }

        /// <summary>Checks one rule's 64 bytes: every field in range, reserved bytes zero.</summary>
        public static GuardPolicyError CheckRule(ReadOnlySpan<byte> r)
        {
            uint objects = U32(r, 0);
            byte accesses = r[4], regions = r[5], cpls = r[6], lockCondition = r[7];
            ushort all = U16(r, 8), none = U16(r, 10);
            byte verdict = r[12];
            ulong ripFirst = U64(r, 16), ripLast = U64(r, 24), cr3 = U64(r, 32), detail = U64(r, 40);
            if (r[13] != 0 || U16(r, 14) != 0 || U64(r, 48) != 0 || U64(r, 56) != 0) return GuardPolicyError.RuleReservedSet;
            if ((objects & ~KnownObjects) != 0) return GuardPolicyError.RuleUnknownObject;
            if ((accesses & ~KnownAccesses) != 0) return GuardPolicyError.RuleUnknownAccess;
            if ((regions & ~KnownRegions) != 0) return GuardPolicyError.RuleUnknownRegion;
            if ((cpls & ~0xF) != 0) return GuardPolicyError.RuleCplOutOfRange;
            if (lockCondition > (byte)LockCondition.Locked) return GuardPolicyError.RuleLockOutOfRange;
            if ((all & ~KnownContent) != 0 || (none & ~KnownContent) != 0) return GuardPolicyError.RuleUnknownContent;
            if ((all & none) != 0) return GuardPolicyError.RuleContentContradiction;
            if (verdict > (byte)GuardVerdict.BlockAndFault) return GuardPolicyError.RuleVerdictOutOfRange;
            if (ripFirst > ripLast) return GuardPolicyError.RuleRipRangeEmpty;
            if ((cr3 & ~GuardRules.Cr3AddressMask) != 0) return GuardPolicyError.RuleCr3NotAddress;
            if (detail != 0 && !DetailFits(objects, detail)) return GuardPolicyError.RuleDetailMismatch;
            return GuardPolicyError.None;
        }

        // A detail belongs to exactly one register class: pinned bits of CR0, CR4 or EFER, or one syscall MSR's index.
        private static bool DetailFits(uint objects, ulong detail)
        {
            if (objects == GuardRules.Bit(GuardObject.ControlRegister0)) return (detail & ~GuardDetail.Cr0Pinnable) == 0;
            if (objects == GuardRules.Bit(GuardObject.ControlRegister4)) return (detail & ~GuardDetail.Cr4Pinnable) == 0;
            if (objects == GuardRules.Bit(GuardObject.Efer)) return (detail & ~GuardDetail.EferPinnable) == 0;
            if (objects == GuardRules.Bit(GuardObject.SyscallMsr)) return GuardDetail.IsSyscallMsr(detail);
            return false;
        }

        /// <summary>What <paramref name="e"/> means, for logs, the console and `vigil policy`.</summary>
        public static string Describe(GuardPolicyError e) => e switch
        {
            GuardPolicyError.None => "valid",
            GuardPolicyError.TooSmall => "too small for a policy header (truncated?)",
            GuardPolicyError.TooLarge => "larger than any policy can be",
            GuardPolicyError.BadSignature => "not a compiled policy (signature is not VIGILPOL)",
            GuardPolicyError.UnsupportedVersion => "policy format version not supported (recompile it with this Vigil's `vigil policy compile`)",
            GuardPolicyError.BadHeaderSize => "header size is not the one of this format version",
            GuardPolicyError.SizeMismatch => "size in the header differs from the file's size (truncated or padded?)",
            GuardPolicyError.HeaderReservedSet => "reserved header bytes are not zero",
            GuardPolicyError.BlobHashMismatch => "integrity hash mismatch: the file is damaged or was changed after compiling",
            GuardPolicyError.BadMode => "mode is neither enforce nor audit-only",
            GuardPolicyError.BadDefaultVerdict => "default verdict out of range",
            GuardPolicyError.TooManyRules => "more rules than the hypervisor holds (64)",
            GuardPolicyError.RulesLengthMismatch => "rule section length does not match the rule count",
            GuardPolicyError.LinesLengthMismatch => "line table length does not match the rule count",
            GuardPolicyError.NameLengthOutOfRange => "file name empty or longer than 255 bytes",
            GuardPolicyError.SourceTooLarge => "source text longer than 1 MiB",
            GuardPolicyError.SectionOutOfRange => "a section lies outside the file or inside the header",
            GuardPolicyError.SectionMisaligned => "rule or line section misaligned",
            GuardPolicyError.SectionsOverlap => "sections overlap",
            GuardPolicyError.PaddingNotZero => "bytes outside every section are not zero",
            GuardPolicyError.SourceHashMismatch => "source hash does not match the embedded source text",
            GuardPolicyError.SourceNotUtf8 => "source text is not UTF-8 (or holds a NUL)",
            GuardPolicyError.NameNotPrintable => "file name is not printable UTF-8",
            GuardPolicyError.LineOutOfRange => "a rule's source line lies outside the source text",
            GuardPolicyError.LineOutOfOrder => "rules' source lines are not in source order",
            GuardPolicyError.LineNumberWrong => "a rule's line number does not match its place in the source",
            GuardPolicyError.LineNotWholeLine => "a rule's source text is not one whole line",
            GuardPolicyError.LineReservedSet => "reserved bytes of a line-table entry are not zero",
            GuardPolicyError.RuleUnknownObject => "a rule names an unknown object class",
            GuardPolicyError.RuleUnknownAccess => "a rule names an unknown access",
            GuardPolicyError.RuleUnknownRegion => "a rule names an unknown actor region",
            GuardPolicyError.RuleCplOutOfRange => "a rule names a privilege level above 3",
            GuardPolicyError.RuleLockOutOfRange => "a rule's lock condition is out of range",
            GuardPolicyError.RuleUnknownContent => "a rule names unknown content flags",
            GuardPolicyError.RuleContentContradiction => "a rule requires content flags to be both present and absent (it can never match)",
            GuardPolicyError.RuleVerdictOutOfRange => "a rule's verdict is out of range",
            GuardPolicyError.RuleRipRangeEmpty => "a rule's RIP range is empty (first above last)",
            GuardPolicyError.RuleCr3NotAddress => "a rule's CR3 has bits outside the address (PCID or flags)",
            GuardPolicyError.RuleDetailMismatch => "a rule's detail does not fit its object (pinned bits of one register, or one syscall MSR)",
            GuardPolicyError.RuleReservedSet => "reserved bytes of a rule are not zero",
            _ => "unknown error",
        };

        private static bool InBlob(uint offset, uint length, uint total)
            => offset >= GuardPolicyHeader.Size && offset <= total && length <= total - offset;

        private static bool Overlap(uint a, uint aLength, uint b, uint bLength)
            => aLength != 0 && bLength != 0 && a < b + bLength && b < a + aLength;

        private static bool BlobHashMatches(ReadOnlySpan<byte> blob)
        {
            var h = default(Sha256);
            h.Append(blob.Slice(0, GuardPolicyHeader.BlobHashOffset));
            h.AppendZeros(Sha256.DigestBytes);
            h.Append(blob.Slice(GuardPolicyHeader.BlobHashOffset + Sha256.DigestBytes));
            return DigestEquals(ref h, blob.Slice(GuardPolicyHeader.BlobHashOffset, Sha256.DigestBytes));
        }

        private static bool SourceHashMatches(ReadOnlySpan<byte> source, ReadOnlySpan<byte> expected)
        {
            var h = default(Sha256);
            h.Append(source);
            return DigestEquals(ref h, expected);
        }

        private static unsafe bool DigestEquals(ref Sha256 h, ReadOnlySpan<byte> expected)
        {
            byte* digest = stackalloc byte[Sha256.DigestBytes];
            h.Finish(new Span<byte>(digest, Sha256.DigestBytes));
            int difference = 0;
            for (int i = 0; i < Sha256.DigestBytes; i++) difference |= digest[i] ^ expected[i];
            return difference == 0;
        }

        // The line starts at the beginning of a line and runs to its end (LF, CR LF or the end of the text), without a break inside.
        private static bool WholeLine(ReadOnlySpan<byte> source, uint offset, uint length)
        {
            if (offset != 0 && source[(int)offset - 1] != (byte)'\n') return false;
            for (uint i = offset; i < offset + length; i++)
            {
                if (source[(int)i] == (byte)'\n') return false;
            }
            uint end = offset + length;
            if (end == (uint)source.Length || source[(int)end] == (byte)'\n') return length == 0 || source[(int)end - 1] != (byte)'\r';
            return source[(int)end] == (byte)'\r' && end + 1 < (uint)source.Length && source[(int)end + 1] == (byte)'\n';
        }

        /// <summary>
        /// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF), no NUL; with
        /// <paramref name="allowControl"/> false also no other C0 control or DEL.
        /// </summary>
        public static bool IsUtf8(ReadOnlySpan<byte> text, bool allowControl)
        {
            int i = 0;
            while (i < text.Length)
            {
                byte b = text[i];
                if (b < 0x80)
                {
                    if (b == 0) return false;
                    if (!allowControl && (b < 0x20 || b == 0x7F)) return false;
                    i++;
                    continue;
                }
                int more;
                uint cp, min;
                if ((b & 0xE0) == 0xC0) { more = 1; cp = b & 0x1Fu; min = 0x80; }
                else if ((b & 0xF0) == 0xE0) { more = 2; cp = b & 0x0Fu; min = 0x800; }
                else if ((b & 0xF8) == 0xF0) { more = 3; cp = b & 0x07u; min = 0x1_0000; }
                else return false;
                if (text.Length - i <= more) return false;
                for (int k = 1; k <= more; k++)
                {
                    byte c = text[i + k];
                    if ((c & 0xC0) != 0x80) return false;
                    cp = (cp << 6) | (c & 0x3Fu);
                }
                if (cp < min || cp > 0x10_FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
                i += more + 1;
            }
            return true;
        }

        private static ReadOnlySpan<GuardRule> AsRules(ReadOnlySpan<byte> bytes, int count)
            => count == 0 ? default : MemoryMarshalCreate<GuardRule>(bytes, count);

        private static ReadOnlySpan<GuardPolicyLine> AsLines(ReadOnlySpan<byte> bytes, int count)
            => count == 0 ? default : MemoryMarshalCreate<GuardPolicyLine>(bytes, count);

        // The bytes seen as structs, without copying; the caller has checked that count structs fit.
        private static ReadOnlySpan<T> MemoryMarshalCreate<T>(ReadOnlySpan<byte> bytes, int count) where T : struct
            => System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<byte, T>(ref Unsafe.AsRef(in bytes[0])), count);

        private static ushort U16(ReadOnlySpan<byte> b, int at) => (ushort)(b[at] | (b[at + 1] << 8));

        private static uint U32(ReadOnlySpan<byte> b, int at) => b[at] | ((uint)b[at + 1] << 8) | ((uint)b[at + 2] << 16) | ((uint)b[at + 3] << 24);

        private static ulong U64(ReadOnlySpan<byte> b, int at) => U32(b, at) | ((ulong)U32(b, at + 4) << 32);
    }
}
