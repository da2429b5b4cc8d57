using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Vigil.Abi;

namespace Vigil.Tool.Policy;

/// <summary>Where one compiled rule came from: its 1-based line and that line's bytes in the UTF-8 source.</summary>
public readonly record struct RuleOrigin(int Line, int SourceOffset, int SourceLength);

/// <summary>
/// Lays out a compiled policy (hv/Abi/GuardPolicy.cs): header, rules, line table, file name, source text,
/// zero padding to 8 bytes between sections, then the source hash and the blob hash. The hypervisor's
/// validator (hv/Core/Guard/GuardPolicyImage.cs) accepts exactly what this writes; the hashes here are
/// .NET's SHA-256, so the hypervisor's own SHA-256 is checked against an independent one on every round trip.
/// </summary>
public static class PolicyImageWriter
{
    public static byte[] Write(GuardPolicyMode mode, GuardVerdict fallback, IReadOnlyList<GuardRule> rules, IReadOnlyList<RuleOrigin> origins,
        ReadOnlySpan<byte> name, ReadOnlySpan<byte> source)
    {
        if (rules.Count != origins.Count) throw new ArgumentException("one origin per rule");
        if (rules.Count > GuardRuleSetHeader.MaxRules) throw new ArgumentException($"{rules.Count} rules: at most {GuardRuleSetHeader.MaxRules}");
        if (name.Length is 0 or > GuardPolicyHeader.MaxNameBytes) throw new ArgumentException("name must be 1-255 bytes");
        if (source.Length > GuardPolicyHeader.MaxSourceBytes) throw new ArgumentException("source longer than 1 MiB");

        int rulesOffset = GuardPolicyHeader.Size;
        int rulesLength = rules.Count * Marshal.SizeOf<GuardRule>();
        int linesOffset = Align(rulesOffset + rulesLength);
        int linesLength = rules.Count * GuardPolicyLine.Size;
        int nameOffset = Align(linesOffset + linesLength);
        int sourceOffset = Align(nameOffset + name.Length);
        int total = sourceOffset + source.Length;
        var blob = new byte[total];

        var header = new GuardPolicyHeader
        {
            Signature = GuardPolicyHeader.ExpectedSignature,
            Version = GuardPolicyHeader.CurrentVersion,
            HeaderSize = GuardPolicyHeader.Size,
            TotalSize = (uint)total,
            Mode = mode,
            Default = fallback,
            RuleCount = (ushort)rules.Count,
            RulesOffset = (uint)rulesOffset,
            RulesLength = (uint)rulesLength,
            LinesOffset = (uint)linesOffset,
            LinesLength = (uint)linesLength,
            NameOffset = (uint)nameOffset,
            NameLength = (uint)name.Length,
            SourceOffset = (uint)sourceOffset,
            SourceLength = (uint)source.Length,
        };
        MemoryMarshal.Write(blob, in header);
        for (int i = 0; i < rules.Count; i++)
        {
            GuardRule rule = rules[i];
            MemoryMarshal.Write(blob.AsSpan(rulesOffset + (i * Marshal.SizeOf<GuardRule>())), in rule);
            var line = new GuardPolicyLine { Line = (uint)origins[i].Line, SourceOffset = (uint)origins[i].SourceOffset, SourceLength = (uint)origins[i].SourceLength };
            MemoryMarshal.Write(blob.AsSpan(linesOffset + (i * GuardPolicyLine.Size)), in line);
        }
        name.CopyTo(blob.AsSpan(nameOffset));
        source.CopyTo(blob.AsSpan(sourceOffset));
        SHA256.HashData(source, blob.AsSpan(GuardPolicyHeader.BlobHashOffset - 32, 32));
        Seal(blob);
        return blob;
    }

    /// <summary>Writes the blob hash of <paramref name="blob"/> (the whole blob, the hash field taken as zero) into its header.</summary>
    public static void Seal(Span<byte> blob)
    {
        Span<byte> hash = blob.Slice(GuardPolicyHeader.BlobHashOffset, 32);
        hash.Clear();
        SHA256.HashData(blob, hash);
    }

    private static int Align(int offset) => (offset + 7) & ~7;
}
