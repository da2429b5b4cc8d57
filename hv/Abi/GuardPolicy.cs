// The compiled policy: what `vigil policy compile` writes from a `*.policy` text, vigil.efi reads from
// the ESP and the hypervisor validates (hv/Core/Guard/GuardPolicyImage.cs) before it uses a single
// rule. One blob, little-endian, laid out as
//
//   GuardPolicyHeader (128 bytes)
//   the rules          GuardRule[RuleCount]          (8-byte aligned)
//   the line table     GuardPolicyLine[RuleCount]    (where each rule came from in the source)
//   the file name      UTF-8, no terminator          (what the operator compiled, for Status and logs)
//   the source text    UTF-8                          (the whole *.policy, so a rule can be named by its line)
//
// with zero padding between sections; SourceHash is the SHA-256 of the source text, BlobHash the
// SHA-256 of the whole blob with BlobHash's own 32 bytes taken as zero. Blittable, fixed layout
// (tests check it); docs/policy.md describes the text it comes from.
using System.Runtime.InteropServices;

namespace Vigil.Abi
{
    /// <summary>How the rules' verdicts are applied.</summary>
    public enum GuardPolicyMode : byte
    {
        /// <summary>Verdicts as written.</summary>
        Enforce = 0,

        /// <summary>Every block (and block-and-fault) becomes audit: for rollout; said loudly in Status.</summary>
        AuditOnly = 1,
    }

    /// <summary>The header at offset 0 of a compiled policy. 128 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct GuardPolicyHeader
    {
        /// <summary>"VIGILPOL" as little-endian bytes.</summary>
        public const ulong ExpectedSignature = 0x4C4F_504C_4947_4956;

        /// <summary>The format this header describes (this file's layout and GuardRule version 1).</summary>
        public const uint CurrentVersion = 1;

        /// <summary>sizeof(GuardPolicyHeader).</summary>
        public const int Size = 128;

        /// <summary>Offset of <see cref="BlobHash"/> in the header (it is hashed as zeros).</summary>
        public const int BlobHashOffset = 96;

        /// <summary>The largest source text a policy may embed (1 MiB).</summary>
        public const int MaxSourceBytes = 1 << 20;

        /// <summary>The longest file name a policy may carry.</summary>
        public const int MaxNameBytes = 255;

        /// <summary>The largest blob there can be: header, 64 rules and lines, name and source, padding.</summary>
        public const int MaxTotalSize = Size + (GuardRuleSetHeader.MaxRules * (64 + GuardPolicyLine.Size)) + MaxNameBytes + MaxSourceBytes + 32;

        public ulong Signature;

        /// <summary><see cref="CurrentVersion"/>.</summary>
        public uint Version;

        /// <summary><see cref="Size"/>: a later version with a longer header is refused, not half-read.</summary>
        public uint HeaderSize;

        /// <summary>Bytes of the whole blob (exactly the file's size).</summary>
        public uint TotalSize;

        public GuardPolicyMode Mode;

        /// <summary>The verdict when no rule matches.</summary>
        public GuardVerdict Default;

        /// <summary>Rules (at most <see cref="GuardRuleSetHeader.MaxRules"/>); one source rule may compile into several.</summary>
        public ushort RuleCount;

        /// <summary>Offset and length of the GuardRule array (RuleCount * 64).</summary>
        public uint RulesOffset;

        public uint RulesLength;

        /// <summary>Offset and length of the GuardPolicyLine array (RuleCount * 16).</summary>
        public uint LinesOffset;

        public uint LinesLength;

        /// <summary>Offset and length of the source file's name (UTF-8).</summary>
        public uint NameOffset;

        public uint NameLength;

        /// <summary>Offset and length of the source text (UTF-8).</summary>
        public uint SourceOffset;

        public uint SourceLength;

        private ulong _reserved0;

        /// <summary>SHA-256 of the source text.</summary>
        public fixed byte SourceHash[32];

        /// <summary>SHA-256 of the whole blob (TotalSize bytes) with these 32 bytes taken as zero.</summary>
        public fixed byte BlobHash[32];
    }

    /// <summary>Where one compiled rule came from: its line in the source text. 16 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct GuardPolicyLine
    {
        public const int Size = 16;

        /// <summary>1-based line number of the rule in the source.</summary>
        public uint Line;

        /// <summary>Byte offset of that line in the source text.</summary>
        public uint SourceOffset;

        /// <summary>Bytes of that line (without its line break).</summary>
        public uint SourceLength;

        private uint _reserved0;
    }

    /// <summary>
    /// What <see cref="GuardRule.Detail"/> holds for the objects that have details: the control-register and
    /// EFER bits the guard pins (a rule names the bits it is about; an attempt's Detail is the bits it clears),
    /// and the syscall MSRs' indices (SDM Vol 4 Table 2-2; APM Vol 2 A.2).
    /// </summary>
    public static class GuardDetail
    {
        public const ulong Cr0Wp = 1UL << 16;
        public const ulong Cr4Umip = 1UL << 11, Cr4Smep = 1UL << 20, Cr4Smap = 1UL << 21;
        public const ulong EferSce = 1UL << 0, EferNxe = 1UL << 11;

        /// <summary>The pinned bits a rule may name, per register.</summary>
        public const ulong Cr0Pinnable = Cr0Wp, Cr4Pinnable = Cr4Umip | Cr4Smep | Cr4Smap, EferPinnable = EferSce | EferNxe;

        public const uint SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176;
        public const uint Star = 0xC000_0081, Lstar = 0xC000_0082, Cstar = 0xC000_0083, Sfmask = 0xC000_0084;

        /// <summary>True for the seven syscall MSRs the guard pins.</summary>
        public static bool IsSyscallMsr(ulong index) => index is SysenterCs or SysenterEsp or SysenterEip or Star or Lstar or Cstar or Sfmask;
    }
}
