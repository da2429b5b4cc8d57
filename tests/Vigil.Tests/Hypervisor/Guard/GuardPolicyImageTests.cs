using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Tool.Policy;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>The compiled policy's layout, the hypervisor's SHA-256, and its validator (GuardPolicyImage), fed good and mutated blobs.</summary>
public sealed unsafe class GuardPolicyImageTests(ITestOutputHelper output)
{
    /// <summary>A valid blob: the built-in rules, each with a line of its own in a small source text.</summary>
    internal static byte[] SampleBlob(bool strict = false, GuardPolicyMode mode = GuardPolicyMode.Enforce)
    {
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        GuardRuleSetHeader header = DefaultRules.Write(rules, strict);
        var text = new StringBuilder("# sample\r\nenforce\n\n");
        var origins = new List<RuleOrigin>();
        int line = 4;
        for (int i = 0; i < header.Count; i++)
        {
            string ruleLine = $"rule {i} (ünïcode)";
            origins.Add(new RuleOrigin(line++, Encoding.UTF8.GetByteCount(text.ToString()), Encoding.UTF8.GetByteCount(ruleLine)));
            text.Append(ruleLine).Append(i % 2 == 0 ? "\n" : "\r\n");
        }
        text.Append("default block");
        return PolicyImageWriter.Write(mode, header.Default, rules.AsSpan(0, (int)header.Count).ToArray(), origins,
            "default.policy"u8, Encoding.UTF8.GetBytes(text.ToString()));
    }

    [Fact]
    public void Layouts_are_fixed()
    {
        Assert.Equal(GuardPolicyHeader.Size, sizeof(GuardPolicyHeader));
        Assert.Equal(GuardPolicyLine.Size, sizeof(GuardPolicyLine));
        Assert.Equal("VIGILPOL", Encoding.ASCII.GetString(BitConverter.GetBytes(GuardPolicyHeader.ExpectedSignature)));
        (string Field, int Offset)[] fields =
        [
            (nameof(GuardPolicyHeader.Signature), 0), (nameof(GuardPolicyHeader.Version), 8), (nameof(GuardPolicyHeader.HeaderSize), 12),
            (nameof(GuardPolicyHeader.TotalSize), 16), (nameof(GuardPolicyHeader.Mode), 20), (nameof(GuardPolicyHeader.Default), 21),
            (nameof(GuardPolicyHeader.RuleCount), 22), (nameof(GuardPolicyHeader.RulesOffset), 24), (nameof(GuardPolicyHeader.RulesLength), 28),
            (nameof(GuardPolicyHeader.LinesOffset), 32), (nameof(GuardPolicyHeader.LinesLength), 36), (nameof(GuardPolicyHeader.NameOffset), 40),
            (nameof(GuardPolicyHeader.NameLength), 44), (nameof(GuardPolicyHeader.SourceOffset), 48), (nameof(GuardPolicyHeader.SourceLength), 52),
            ("_reserved0", 56), (nameof(GuardPolicyHeader.SourceHash), 64), (nameof(GuardPolicyHeader.BlobHash), GuardPolicyHeader.BlobHashOffset),
        ];
        foreach (var (field, offset) in fields) Assert.True(offset == (int)Marshal.OffsetOf<GuardPolicyHeader>(field), field);
        Assert.Equal(0, (int)Marshal.OffsetOf<GuardPolicyLine>(nameof(GuardPolicyLine.Line)));
        Assert.Equal(4, (int)Marshal.OffsetOf<GuardPolicyLine>(nameof(GuardPolicyLine.SourceOffset)));
        Assert.Equal(8, (int)Marshal.OffsetOf<GuardPolicyLine>(nameof(GuardPolicyLine.SourceLength)));
        // The validator reads rules by offset: the ones it checks by hand.
        Assert.Equal(13, (int)Marshal.OffsetOf<GuardRule>("_reserved0"));
        Assert.Equal(14, (int)Marshal.OffsetOf<GuardRule>("_reserved1"));
        Assert.Equal(12, (int)Marshal.OffsetOf<GuardRule>(nameof(GuardRule.Verdict)));
        Assert.Equal(32, (int)Marshal.OffsetOf<GuardRule>(nameof(GuardRule.Cr3)));
        Assert.Equal(40, (int)Marshal.OffsetOf<GuardRule>(nameof(GuardRule.Detail)));
        Assert.Equal(48, (int)Marshal.OffsetOf<GuardRule>("_reserved2"));
        Assert.Equal(56, (int)Marshal.OffsetOf<GuardRule>("_reserved3"));
        Assert.Equal(12, (int)GuardObject.GlobalTableDescriptor);
    }

    [Fact]
    public void Sha256_matches_dotnet_at_every_block_boundary_and_in_pieces()
    {
        var random = new Random(11);
        var digest = new byte[32];
        for (int length = 0; length < 300; length++)
        {
            byte[] data = new byte[length];
            random.NextBytes(data);
            Sha256.Hash(data, digest);
            Assert.Equal(SHA256.HashData(data), digest);
        }
        byte[] big = new byte[1 << 20];
        random.NextBytes(big);
        var h = default(Sha256);
        h.Append(big.AsSpan(0, 1000));
        h.AppendZeros(77);
        h.Append(big.AsSpan(1077));
        h.Finish(digest);
        big.AsSpan(1000, 77).Clear();
        Assert.Equal(SHA256.HashData(big), digest);
        Sha256.Hash("abc"u8, digest);
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void A_written_blob_validates_and_shows_its_rules_lines_name_and_source()
    {
        byte[] blob = SampleBlob();
        Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(blob, out GuardPolicyView view));
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        GuardRuleSetHeader header = DefaultRules.Write(rules);
        Assert.Equal((int)header.Count, view.Rules.Length);
        for (int i = 0; i < view.Rules.Length; i++) Assert.Equal(rules[i], view.Rules[i]);
        Assert.Equal(GuardVerdict.Block, view.Default);
        Assert.Equal(GuardPolicyMode.Enforce, view.Mode);
        Assert.Equal("default.policy", Encoding.UTF8.GetString(view.Name));
        Assert.Equal("rule 3 (ünïcode)", Encoding.UTF8.GetString(view.RuleText(3)));
        Assert.Equal(7u, view.Lines[3].Line);
        Assert.Equal(SHA256.HashData(view.Source), view.SourceHash.ToArray());
        GuardRuleSetHeader set = view.RuleSetHeader;
        Assert.Null(GuardRules.Validate(set, view.Rules));
        Assert.Equal(header.Count, set.Count);
        Assert.Equal(0, set.AuditOnly);

        Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(SampleBlob(mode: GuardPolicyMode.AuditOnly), out view));
        Assert.Equal(1, view.RuleSetHeader.AuditOnly);

        // No rules at all (only a default) is a policy too.
        byte[] empty = PolicyImageWriter.Write(GuardPolicyMode.Enforce, GuardVerdict.Audit, [], [], "x"u8, "audit-only\ndefault audit\n"u8);
        Assert.Equal(GuardPolicyError.None, GuardPolicyImage.Validate(empty, out view));
        Assert.Equal(0, view.Rules.Length);
    }

    // One targeted damage per reason (resealed where the damage is not the hash itself, so the check behind it is reached).
    public static TheoryData<string, GuardPolicyError> Damages => new()
    {
        { "truncate:100", GuardPolicyError.TooSmall },
        { "huge", GuardPolicyError.TooLarge },
        { "truncate:-1", GuardPolicyError.SizeMismatch },
        { "u64:0=1", GuardPolicyError.BadSignature },
        { "u32:8=2", GuardPolicyError.UnsupportedVersion },
        { "u32:12=136", GuardPolicyError.BadHeaderSize },
        { "u32:16=0", GuardPolicyError.SizeMismatch },
        { "u64:56=1", GuardPolicyError.HeaderReservedSet },
        { "flip:200", GuardPolicyError.BlobHashMismatch },
        { "u8:20=2 seal", GuardPolicyError.BadMode },
        { "u8:21=4 seal", GuardPolicyError.BadDefaultVerdict },
        { "u16:22=65 seal", GuardPolicyError.TooManyRules },
        { "u16:22=10 seal", GuardPolicyError.RulesLengthMismatch },
        { "u32:36=16 seal", GuardPolicyError.LinesLengthMismatch },
        { "u32:44=0 seal", GuardPolicyError.NameLengthOutOfRange },
        { "u32:44=256 seal", GuardPolicyError.NameLengthOutOfRange },
        { "u32:52=2000000 seal", GuardPolicyError.SourceTooLarge },
        { "u32:24=64 seal", GuardPolicyError.SectionOutOfRange },
        { "u32:48=4000000000 seal", GuardPolicyError.SectionOutOfRange },
        { "u32:24=132 seal", GuardPolicyError.SectionMisaligned },
        { "lines=rules seal", GuardPolicyError.SectionsOverlap },
        { "pad seal", GuardPolicyError.PaddingNotZero },
        { "source:0=x seal", GuardPolicyError.SourceHashMismatch },
        { "source:0=\u0001 rehash seal", GuardPolicyError.None },
        { "source:0=\0 rehash seal", GuardPolicyError.SourceNotUtf8 },
        { "source:0=\u00ff rehash seal", GuardPolicyError.SourceNotUtf8 },
        { "name:0=\n seal", GuardPolicyError.NameNotPrintable },
        { "rule0:0=0x4000 seal", GuardPolicyError.RuleUnknownObject },
        { "rule0:4=0x10 seal", GuardPolicyError.RuleUnknownAccess },
        { "rule0:5=0x20 seal", GuardPolicyError.RuleUnknownRegion },
        { "rule0:6=0x10 seal", GuardPolicyError.RuleCplOutOfRange },
        { "rule0:7=3 seal", GuardPolicyError.RuleLockOutOfRange },
        { "rule0:8=0x80 seal", GuardPolicyError.RuleUnknownContent },
        { "rule0:8=1 rule0:10=1 seal", GuardPolicyError.RuleContentContradiction },
        { "rule0:12=4 seal", GuardPolicyError.RuleVerdictOutOfRange },
        { "rule0:16=2 rule0:24=1 seal", GuardPolicyError.RuleRipRangeEmpty },
        { "rule0:32=0x1001 seal", GuardPolicyError.RuleCr3NotAddress },
        { "rule0:40=0xC0000082 seal", GuardPolicyError.RuleDetailMismatch },
        { "rule0:13=1 seal", GuardPolicyError.RuleReservedSet },
        { "rule0:56=1 seal", GuardPolicyError.RuleReservedSet },
        { "line1:4=0x7fffffff seal", GuardPolicyError.LineOutOfRange },
        { "line1:4=0 seal", GuardPolicyError.LineOutOfOrder },
        { "line0:0=99 seal", GuardPolicyError.LineNumberWrong },
        { "line0:4=21 line0:0=4 seal", GuardPolicyError.LineNotWholeLine },
        { "line0:8=30 seal", GuardPolicyError.LineNotWholeLine },
        { "line0:12=1 seal", GuardPolicyError.LineReservedSet },
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public void Each_damage_is_refused_with_its_own_reason(string damage, GuardPolicyError expected)
    {
        byte[] blob = Damage(SampleBlob(), damage);
        Assert.Equal(expected, GuardPolicyImage.Validate(blob, out _));
        Assert.NotEqual("unknown error", GuardPolicyImage.Describe(expected));
    }

    [Fact]
    public void Every_error_has_a_reason_of_its_own()
    {
        var seen = new HashSet<string>();
        foreach (GuardPolicyError e in Enum.GetValues<GuardPolicyError>())
        {
            string reason = GuardPolicyImage.Describe(e);
            Assert.NotEqual("unknown error", reason);
            Assert.True(seen.Add(reason), $"{e}: '{reason}' used twice");
        }
    }

    [Fact]
    public void Details_fit_their_objects()
    {
        Assert.Equal(GuardPolicyError.None, CheckRule(new GuardRule { Objects = GuardRules.Bit(GuardObject.ControlRegister4), Detail = GuardDetail.Cr4Smep | GuardDetail.Cr4Smap }));
        Assert.Equal(GuardPolicyError.RuleDetailMismatch, CheckRule(new GuardRule { Objects = GuardRules.Bit(GuardObject.ControlRegister4), Detail = 1UL << 5 }));
        Assert.Equal(GuardPolicyError.None, CheckRule(new GuardRule { Objects = GuardRules.Bit(GuardObject.SyscallMsr), Detail = GuardDetail.Lstar }));
        Assert.Equal(GuardPolicyError.RuleDetailMismatch, CheckRule(new GuardRule { Objects = GuardRules.Bit(GuardObject.SyscallMsr), Detail = 0xC000_0080 }));
        Assert.Equal(GuardPolicyError.RuleDetailMismatch, CheckRule(new GuardRule { Detail = GuardDetail.Cr0Wp }));
        Assert.Equal(GuardPolicyError.RuleDetailMismatch,
            CheckRule(new GuardRule { Objects = GuardRules.Bit(GuardObject.ControlRegister0) | GuardRules.Bit(GuardObject.ControlRegister4), Detail = GuardDetail.Cr0Wp }));
        Assert.Equal(GuardPolicyError.None, CheckRule(new GuardRule { Objects = GuardRules.Bit(GuardObject.GlobalTableDescriptor) }));
    }

    private static GuardPolicyError CheckRule(GuardRule rule) => GuardPolicyImage.CheckRule(MemoryMarshal.AsBytes(new ReadOnlySpan<GuardRule>(in rule)));

    /// <summary>
    /// 100,000 mutated blobs (truncations, extensions, bit flips raw and resealed, huge counts and lengths, overlapping and
    /// out-of-range sections, wrong versions, random bytes): the validator never throws, never reads outside the blob (it
    /// ends right before an inaccessible page), and refuses each bad one with a reason; what it accepts is consistent.
    /// </summary>
    [Fact]
    public void Hundred_thousand_mutated_blobs_are_refused_with_a_reason_and_never_read_out_of_bounds()
    {
        byte[][] bases = [SampleBlob(), SampleBlob(strict: true, mode: GuardPolicyMode.AuditOnly),
            PolicyImageWriter.Write(GuardPolicyMode.Enforce, GuardVerdict.Allow, [], [], "e"u8, ""u8)];
        using var fence = new FencedBuffer(1 << 16);
        var random = new Random(0x5011C7);
        var reasons = new Dictionary<GuardPolicyError, int>();
        int accepted = 0;
        const int Cases = 100_000;
        for (int n = 0; n < Cases; n++)
        {
            byte[] original = bases[n % bases.Length];
            byte[] blob = Mutate(original, random, out string what, out bool resealed);
            Span<byte> placed = fence.Place(blob);
            GuardPolicyError e;
            try
            {
                e = GuardPolicyImage.Validate(placed, out GuardPolicyView view);
                if (e == GuardPolicyError.None) CheckConsistent(placed, view);
            }
            catch (Exception x)
            {
                Assert.Fail($"case {n} ({what}): {x}");
                return;
            }
            if (e == GuardPolicyError.None)
            {
                // Only a resealed blob can change and stay valid: every change made behind the hash's back is refused.
                Assert.True(resealed || blob.AsSpan().SequenceEqual(original), $"case {n} ({what}) accepted without a new hash");
                accepted++;
            }
            else
            {
                Assert.NotEqual("unknown error", GuardPolicyImage.Describe(e));
            }
            reasons[e] = reasons.GetValueOrDefault(e) + 1;
        }
        foreach (var (e, count) in reasons) output.WriteLine($"{e}: {count}");
        output.WriteLine($"accepted {accepted} of {Cases} (resealed mutations that keep a blob valid: a rule field changed to another valid value, zeros appended)");
        Assert.True(reasons.Count >= 30, $"only {reasons.Count} distinct outcomes: the mutations do not reach the checks");
    }

    // What a view of an accepted blob shows lies inside the blob and agrees with itself.
    private static void CheckConsistent(ReadOnlySpan<byte> blob, GuardPolicyView view)
    {
        Assert.InRange(view.Rules.Length, 0, GuardRuleSetHeader.MaxRules);
        Assert.Equal(view.Rules.Length, view.Lines.Length);
        Assert.Null(GuardRules.Validate(view.RuleSetHeader, view.Rules));
        fixed (byte* start = blob)
        {
            Inside(start, blob.Length, MemoryMarshal.AsBytes(view.Rules));
            Inside(start, blob.Length, MemoryMarshal.AsBytes(view.Lines));
            Inside(start, blob.Length, view.Name);
            Inside(start, blob.Length, view.Source);
        }
        for (int i = 0; i < view.Rules.Length; i++) _ = view.RuleText(i);
    }

    private static void Inside(byte* start, int length, ReadOnlySpan<byte> part)
    {
        if (part.IsEmpty) return;
        fixed (byte* p = part) Assert.True(p >= start && p + part.Length <= start + length);
    }

    private static byte[] Mutate(byte[] original, Random random, out string what, out bool resealed)
    {
        byte[] blob = (byte[])original.Clone();
        int kind = random.Next(12);
        bool seal = random.Next(3) != 0;
        switch (kind)
        {
            case 0:
                what = "truncated";
                blob = blob.AsSpan(0, random.Next(blob.Length)).ToArray();
                seal = false;
                break;
            case 1:
                what = "extended";
                Array.Resize(ref blob, blob.Length + 1 + random.Next(64));
                if (random.Next(2) == 0) BitConverter.TryWriteBytes(blob.AsSpan(16), (uint)blob.Length);
                break;
            case 2:
            case 3:
                what = "bit flips";
                for (int i = random.Next(1, 4); i > 0; i--) blob[random.Next(blob.Length)] ^= (byte)(1 << random.Next(8));
                break;
            case 4:
                what = "header field";
                {
                    int at = random.Next(GuardPolicyHeader.BlobHashOffset / 2) * 2;
                    uint value = random.Next(4) switch { 0 => uint.MaxValue, 1 => (uint)random.Next(), 2 => (uint)random.Next(256), _ => 0x8000_0000 };
                    if (at + 4 <= blob.Length) BitConverter.TryWriteBytes(blob.AsSpan(at), value);
                }
                break;
            case 5:
                what = "huge count";
                BitConverter.TryWriteBytes(blob.AsSpan(22), (ushort)random.Next(65, 65536));
                if (random.Next(2) == 0) BitConverter.TryWriteBytes(blob.AsSpan(28), (uint)(BitConverter.ToUInt16(blob, 22) * 64));
                break;
            case 6:
                what = "overlapping sections";
                {
                    int a = 24 + (8 * random.Next(4)), b = 24 + (8 * random.Next(4));
                    BitConverter.TryWriteBytes(blob.AsSpan(a), BitConverter.ToUInt32(blob, b) + (uint)random.Next(-8, 9));
                }
                break;
            case 7:
                what = "wrong version";
                BitConverter.TryWriteBytes(blob.AsSpan(8), (uint)random.Next(0, 5));
                break;
            case 8:
                what = "rule field";
                {
                    int rules = (int)BitConverter.ToUInt32(blob, 24), count = BitConverter.ToUInt16(blob, 22);
                    if (count > 0) blob[rules + (64 * random.Next(count)) + random.Next(64)] = (byte)random.Next(256);
                }
                break;
            case 9:
                what = "line entry";
                {
                    int lines = (int)BitConverter.ToUInt32(blob, 32), count = BitConverter.ToUInt16(blob, 22);
                    if (count > 0) BitConverter.TryWriteBytes(blob.AsSpan(lines + (16 * random.Next(count)) + (4 * random.Next(4))), (uint)random.Next(-2, 60));
                }
                break;
            case 10:
                what = "source byte, rehashed";
                {
                    int source = (int)BitConverter.ToUInt32(blob, 48), length = (int)BitConverter.ToUInt32(blob, 52);
                    if (length > 0) blob[source + random.Next(length)] = (byte)random.Next(256);
                    SHA256.HashData(blob.AsSpan(source, length), blob.AsSpan(64, 32));
                }
                break;
            default:
                what = "random bytes";
                random.NextBytes(blob.AsSpan(random.Next(blob.Length)));
                break;
        }
        resealed = seal && blob.Length >= GuardPolicyHeader.Size;
        if (resealed)
        {
            PolicyImageWriter.Seal(blob);
            what += ", resealed";
        }
        return blob;
    }

    // "field:offset=value" edits (u8/u16/u32/u64 at a header offset, ruleN:/lineN: at an offset inside rule or line N,
    // source:/name: a character), "truncate:N" (negative: from the end), "flip:N", "lines=rules", "pad", "huge", "rehash", "seal".
    private static byte[] Damage(byte[] blob, string damage)
    {
        foreach (string step in damage.Split(' '))
        {
            if (step == "seal") { PolicyImageWriter.Seal(blob); continue; }
            if (step == "rehash")
            {
                SHA256.HashData(blob.AsSpan((int)BitConverter.ToUInt32(blob, 48), (int)BitConverter.ToUInt32(blob, 52)), blob.AsSpan(64, 32));
                continue;
            }
            if (step == "lines=rules") { Array.Copy(blob, 24, blob, 32, 4); continue; }
            if (step == "pad") { blob[(int)BitConverter.ToUInt32(blob, 48) - 1] = 1; continue; }   // the source follows padding after the name
            if (step == "huge") { Array.Resize(ref blob, GuardPolicyHeader.MaxTotalSize + 1); continue; }
            string[] parts = step.Split(':', 2);
            string[] assignment = parts[1].Split('=', 2);
            int at = int.Parse(assignment[0], System.Globalization.CultureInfo.InvariantCulture);
            switch (parts[0])
            {
                case "truncate":
                    blob = blob.AsSpan(0, at < 0 ? blob.Length + at : at).ToArray();
                    continue;
                case "flip":
                    blob[at] ^= 1;
                    continue;
                case "source":
                    blob[(int)BitConverter.ToUInt32(blob, 48) + at] = (byte)assignment[1][0];
                    continue;
                case "name":
                    blob[(int)BitConverter.ToUInt32(blob, 40) + at] = (byte)assignment[1][0];
                    continue;
            }
            string valueText = assignment[1];
            ulong value = valueText.StartsWith("0x", StringComparison.Ordinal)
                ? Convert.ToUInt64(valueText[2..], 16) : ulong.Parse(valueText, System.Globalization.CultureInfo.InvariantCulture);
            string width = parts[0];
            if (parts[0].StartsWith("rule", StringComparison.Ordinal))
            {
                int field = at;
                at += (int)BitConverter.ToUInt32(blob, 24) + (64 * int.Parse(parts[0][4..], System.Globalization.CultureInfo.InvariantCulture));
                width = field switch { 0 => "u32", 8 or 10 or 14 => "u16", >= 16 => "u64", _ => "u8" };
            }
            else if (parts[0].StartsWith("line", StringComparison.Ordinal))
            {
                at += (int)BitConverter.ToUInt32(blob, 32) + (16 * int.Parse(parts[0][4..], System.Globalization.CultureInfo.InvariantCulture));
                width = "u32";
            }
            switch (width)
            {
                case "u8": blob[at] = (byte)value; break;
                case "u16": BitConverter.TryWriteBytes(blob.AsSpan(at), (ushort)value); break;
                case "u32": BitConverter.TryWriteBytes(blob.AsSpan(at), (uint)value); break;
                default: BitConverter.TryWriteBytes(blob.AsSpan(at), value); break;
            }
        }
        return blob;
    }

    /// <summary>
    /// Native memory whose end touches an inaccessible page (Linux: mmap + mprotect PROT_NONE): a blob placed at its end
    /// makes any read past the blob's last byte a crash of the test run, not a silent pass. Elsewhere a plain buffer.
    /// </summary>
    private sealed class FencedBuffer : IDisposable
    {
        private readonly byte* _base;
        private readonly nuint _size;
        private readonly int _usable;
        private readonly byte[]? _fallback;

        public FencedBuffer(int usable)
        {
            _usable = usable;
            if (!OperatingSystem.IsLinux())
            {
                _fallback = new byte[usable];
                return;
            }
            _size = (nuint)(usable + 4096);
            _base = (byte*)Mmap(null, _size, 3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
            Assert.True(_base != (byte*)-1, "mmap failed");
            Assert.Equal(0, Mprotect(_base + usable, 4096, 0 /* PROT_NONE */));
        }

        public Span<byte> Place(byte[] blob)
        {
            Assert.True(blob.Length <= _usable);
            Span<byte> target = _fallback != null ? _fallback.AsSpan(_usable - blob.Length) : new Span<byte>(_base + _usable - blob.Length, blob.Length);
            blob.CopyTo(target);
            return target;
        }

        public void Dispose()
        {
            if (_base != null) _ = Munmap(_base, _size);
        }

        [DllImport("libc", EntryPoint = "mmap")]
        private static extern void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

        [DllImport("libc", EntryPoint = "mprotect")]
        private static extern int Mprotect(void* address, nuint length, int protection);

        [DllImport("libc", EntryPoint = "munmap")]
        private static extern int Munmap(void* address, nuint length);
    }
}
