// The compiled policy in force, kept in the hypervisor's own memory (issue 11, item 4). Two buffers of
// PolicyStatus.MaxImageBytes from the pool: the one in force, and the one a `vigild protect --policy`
// copies into and validates before it takes the place of the other (a refused policy changes nothing).
//   Launch:   what vigil.efi handed over (LaunchParameters.PolicyImage, in loader memory the OS will
//             reclaim) is copied here and validated again (the loader's check is never trusted); its rules
//             are in force from launch. A missing or bad file puts the built-in rules in force and Status
//             says why ("policy file rejected: <reason>") — never no policy, never silently.
//   Protect:  with a compiled policy (GuardProtectRequest.PolicyImage, before Lock, with the secret) it is
//             copied through the caller's page walk into the other buffer and validated (Stage); Protect
//             puts it in force with the rest of its state (Commit).
// Written at launch (BSP, before any CPU is virtualized) and by Protect (holding GuardState's lock); read
// by Status. Root mode, no allocation. Compiled twice.
using System;
using Vigil.Abi;

namespace Vigil.Hypervisor.Core.Guard
{
    public static unsafe class PolicyStore
    {
        private static byte* s_buffer0, s_buffer1;
        private static int s_active;                 // which buffer holds the policy in force
        private static uint s_activeBytes, s_stagedBytes;
        private static PolicyStatus s_status;
        private static StagedHash s_stagedHash;

        private struct StagedHash
        {
            public fixed byte Bytes[PolicyStatus.HashBytes];
        }

        /// <summary>Bytes the two buffers take from the pool.</summary>
        public const ulong StorageBytes = 2UL * PolicyStatus.MaxImageBytes;

        /// <summary>
        /// At launch: takes the two buffers (<see cref="StorageBytes"/> at <paramref name="storage"/>), copies the loader's
        /// policy, validates it and puts its rules in force, else the built-in rules. <paramref name="image"/> is empty when
        /// the loader handed nothing over (<paramref name="state"/> and <paramref name="loaderProblem"/> say why). Returns
        /// null when the file's policy is in force, else why not (for the log).
        /// </summary>
        public static string? Launch(byte* storage, ReadOnlySpan<byte> image, LaunchPolicyState state, ReadOnlySpan<char> name, ReadOnlySpan<char> loaderProblem)
        {
            s_buffer0 = storage;
            s_buffer1 = storage == null ? null : storage + PolicyStatus.MaxImageBytes;
            s_active = 0;
            s_activeBytes = 0;
            s_status = default;
            fixed (PolicyStatus* s = &s_status) Copy(s->Name, PolicyStatus.NameBytes, name);
            GuardRule* rules = stackalloc GuardRule[GuardRuleSetHeader.MaxRules];
            var ruleSpan = new Span<GuardRule>(rules, GuardRuleSetHeader.MaxRules);

            string? problem = null;
            if (state == LaunchPolicyState.Loaded)
            {
                if (storage == null) problem = "no hypervisor memory for the policy";
                else if (image.Length == 0 || image.Length > PolicyStatus.MaxImageBytes) problem = "the loader handed over " + image.Length.ToString() + " bytes";
                else
                {
                    image.CopyTo(new Span<byte>(s_buffer0, PolicyStatus.MaxImageBytes));
                    fixed (PolicyStatus* s = &s_status)
                    {
                        problem = PolicyDelivery.Check(new ReadOnlySpan<byte>(s_buffer0, image.Length), out GuardRuleSetHeader header, ruleSpan, new Span<byte>(s->SourceHash, PolicyStatus.HashBytes));
                        if (problem == null)
                        {
                            GuardState.SetRules(header, ruleSpan.Slice(0, (int)header.Count));
                            GuardState.RuleSource = GuardRuleSource.Policy;
                            s_activeBytes = (uint)image.Length;
                            s->Origin = PolicyOrigin.File;
                            return null;
                        }
                        problem = "rejected by the hypervisor: " + problem;
                    }
                }
            }
            else if (state is LaunchPolicyState.Missing or LaunchPolicyState.Rejected)
            {
                problem = loaderProblem.Length == 0 ? "no reason given" : string.Concat(loaderProblem, ReadOnlySpan<char>.Empty);
            }

            // The built-in rules: never no policy.
            GuardRuleSetHeader builtIn = DefaultRules.Write(ruleSpan);
            GuardState.SetRules(builtIn, ruleSpan.Slice(0, (int)builtIn.Count));
            GuardState.RuleSource = GuardRuleSource.BuiltIn;
            fixed (PolicyStatus* s = &s_status)
            {
                BuiltInHash(s->SourceHash);
                s->Origin = state == LaunchPolicyState.NotConfigured ? PolicyOrigin.BuiltIn : PolicyOrigin.FileRejected;
                if (problem != null) Copy(s->Problem, PolicyStatus.ProblemBytes, problem);
            }
            return problem;
        }

        /// <summary>Whether a Protect without rules of its own keeps the rules in force (a compiled policy is in force).</summary>
        public static bool PolicyInForce => GuardState.RuleSource == GuardRuleSource.Policy;

        /// <summary>
        /// Protect with a compiled policy: copies <paramref name="size"/> bytes at guest-virtual <paramref name="address"/>
        /// into the buffer not in force and validates it; <paramref name="rules"/> receives its rules. Nothing in force changes.
        /// </summary>
        public static HypercallStatus Stage<TMemory>(ref TMemory memory, in GuestPaging caller, ulong address, ulong size, Span<GuardRule> rules, out GuardRuleSetHeader header)
            where TMemory : struct, IPhysicalMemory
        {
            header = default;
            byte* staging = s_active == 0 ? s_buffer1 : s_buffer0;
            if (staging == null) return HypercallStatus.Unsupported;
            if (size == 0 || size > PolicyStatus.MaxImageBytes) return HypercallStatus.BadBufferSize;
            var bytes = new Span<byte>(staging, (int)size);
            if (GuestMemory.CopyFromGuest(ref memory, caller, address, bytes) != WalkResult.Ok) return HypercallStatus.BadAddress;
            fixed (StagedHash* hash = &s_stagedHash)
            {
                if (PolicyDelivery.Check(bytes, out header, rules, new Span<byte>(hash->Bytes, PolicyStatus.HashBytes), out _) != null) return HypercallStatus.BadRequest;
            }
            s_stagedBytes = (uint)size;
            return HypercallStatus.Success;
        }

        /// <summary>
        /// Protect succeeded with rules from <paramref name="source"/>: records where the policy in force came from. A staged
        /// policy (<paramref name="staged"/>) takes the place of the one in force.
        /// </summary>
        public static void Commit(GuardRuleSource source, bool staged)
        {
            fixed (PolicyStatus* s = &s_status)
            {
                if (staged)
                {
                    s_active = s_active == 0 ? 1 : 0;
                    s_activeBytes = s_stagedBytes;
                    s->Origin = PolicyOrigin.HandedOver;
                    fixed (StagedHash* hash = &s_stagedHash) new ReadOnlySpan<byte>(hash->Bytes, PolicyStatus.HashBytes).CopyTo(new Span<byte>(s->SourceHash, PolicyStatus.HashBytes));
                    return;
                }
                if (source is GuardRuleSource.BuiltInStrict or GuardRuleSource.HandedOver)
                {
                    s_activeBytes = 0;
                    s->Origin = PolicyOrigin.Protect;
                    new Span<byte>(s->SourceHash, PolicyStatus.HashBytes).Clear();
                }
                else if (source == GuardRuleSource.BuiltIn && s->Origin is PolicyOrigin.File or PolicyOrigin.HandedOver or PolicyOrigin.Protect)
                {
                    s_activeBytes = 0;
                    s->Origin = PolicyOrigin.BuiltIn;
                    BuiltInHash(s->SourceHash);
                }
            }
        }

        /// <summary>The compiled policy in force (empty: built-in rules): events and Status can name a rule by its source line.</summary>
        public static ReadOnlySpan<byte> Image
        {
            get
            {
                byte* active = s_active == 0 ? s_buffer0 : s_buffer1;
                return active == null || s_activeBytes == 0 ? default : new ReadOnlySpan<byte>(active, (int)s_activeBytes);
            }
        }

        /// <summary>The policy part of the status report.</summary>
        public static void FillStatus(PolicyStatus* s)
        {
            *s = s_status;
            s->AuditOnly = GuardState.RuleHeader.AuditOnly;
            s->RuleCount = GuardState.RuleHeader.Count;
            s->ImageBytes = s_activeBytes;
            s->PinnedFromKernelStart = LaunchPins.Armed ? 1u : 0;
            uint learned = LaunchPins.Learned, n = 0;
            for (; learned != 0; learned &= learned - 1) n++;
            s->LearnedMsrs = n;
        }

        /// <summary>Back to the state before launch (tests).</summary>
        public static void Reset()
        {
            s_buffer0 = s_buffer1 = null;
            s_active = 0;
            s_activeBytes = s_stagedBytes = 0;
            s_status = default;
            s_stagedHash = default;
        }

        /// <summary>The built-in rules are policy/default.policy compiled (DefaultRules.g.cs): its source hash, so Status can name it.</summary>
        private static void BuiltInHash(byte* hash)
        {
            string hex = DefaultRules.DefaultSourceHash;
            for (int i = 0; i < PolicyStatus.HashBytes; i++)
            {
                hash[i] = 2 * i + 1 < hex.Length ? (byte)((Nibble(hex[2 * i]) << 4) | Nibble(hex[(2 * i) + 1])) : (byte)0;
            }
        }

        private static int Nibble(char c) => c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0';

        /// <summary>ASCII of <paramref name="text"/> into <paramref name="bytes"/>, cut to leave a NUL, the rest zeros.</summary>
        private static void Copy(byte* bytes, int capacity, ReadOnlySpan<char> text)
        {
            int n = Math.Min(text.Length, capacity - 1);
            for (int i = 0; i < capacity; i++) bytes[i] = i < n ? (text[i] is >= ' ' and < (char)0x7F ? (byte)text[i] : (byte)'?') : (byte)0;
        }
    }
}
