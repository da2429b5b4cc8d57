// The compiled policy named by vigil.conf (`policy = \EFI\vigil\default.pol`), read from the boot volume
// and validated whole (hv/Core/Guard/PolicyDelivery: version, size, hash, every field in range) before it
// is handed to the hypervisor, which copies it into its own memory and validates it again. A missing or
// bad file is said on the console and the log port with the reason, and the built-in rules are used:
// never no policy, never silently. UEFI boot services, BSP only.
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Platform.Firmware;
using Vigil.Platform.Uefi;

namespace Vigil.Boot.Hypervisor
{
    /// <summary>What was found at the policy path: the bytes to hand over (loader memory), or why there are none.</summary>
    internal unsafe struct PolicyFile
    {
        public string? Path;
        public LaunchPolicyState State;
        public byte* Data;
        public int Size;
        public string? Problem;
        public string? HashPrefix16;

        /// <summary>For the boot-state variable: the file and its source hash, or the built-in rules and why.</summary>
        public readonly string Summary => State switch
        {
            LaunchPolicyState.Loaded => Path + " (source hash " + HashPrefix16 + ")",
            LaunchPolicyState.NotConfigured => "built-in",
            _ => "built-in (" + Path + ": " + Problem + ")",
        };

        public static PolicyFile Load(in BootVolume volume, string? path)
        {
            var result = new PolicyFile { Path = path };
            if (path == null)
            {
                result.State = LaunchPolicyState.NotConfigured;
                BootLog.Info("policy = built-in: the hypervisor uses its built-in rules");
                return result;
            }
            ulong status = volume.ReadFile(path, PolicyStatus.MaxImageBytes, out byte* data, out int size);
            if (EFI_STATUS.IsError(status))
            {
                result.State = LaunchPolicyState.Missing;
                result.Problem = status == EFI_STATUS.EFI_NOT_FOUND ? "no such file"
                    : status == EFI_STATUS.EFI_BAD_BUFFER_SIZE ? "larger than " + (PolicyStatus.MaxImageBytes / 1024).ToString() + " KiB"
                    : "cannot read it: " + EFI_STATUS.Name(status);
                BootLog.Warn("policy " + path + ": " + result.Problem + "; the BUILT-IN default policy is used instead");
                return result;
            }
            GuardRule* rules = stackalloc GuardRule[GuardRuleSetHeader.MaxRules];
            byte* hash = stackalloc byte[PolicyStatus.HashBytes];
            string? problem = PolicyDelivery.Check(new System.ReadOnlySpan<byte>(data, size), out GuardRuleSetHeader header,
                new System.Span<GuardRule>(rules, GuardRuleSetHeader.MaxRules), new System.Span<byte>(hash, PolicyStatus.HashBytes));
            if (problem != null)
            {
                result.State = LaunchPolicyState.Rejected;
                result.Problem = "not a valid compiled policy: " + problem;
                BootLog.Warn("policy " + path + " REJECTED (" + result.Problem + "); the BUILT-IN default policy is used instead");
                return result;
            }
            result.State = LaunchPolicyState.Loaded;
            result.HashPrefix16 = HashPrefix(hash);
            result.Data = data;
            result.Size = size;
            BootLog.Info("policy " + path + ": " + size.ToString() + " bytes, " + header.Count.ToString() + " rules, "
                + (header.AuditOnly != 0 ? "AUDIT-ONLY (blocks are only recorded)" : "enforce") + ", source hash " + result.HashPrefix16);
            return result;
        }

        /// <summary>The first 8 bytes of the source hash in hex (how Status and `vigil policy show` name a policy).</summary>
        private static string HashPrefix(byte* hash)
        {
            char* text = stackalloc char[16];
            const string digits = "0123456789abcdef";
            for (int i = 0; i < 8; i++)
            {
                text[2 * i] = digits[hash[i] >> 4];
                text[(2 * i) + 1] = digits[hash[i] & 0xF];
            }
            return string.Concat(new System.ReadOnlySpan<char>(text, 16), System.ReadOnlySpan<char>.Empty);
        }

        /// <summary>Fills the launch parameters' policy fields (the hypervisor copies the bytes in its entry point).</summary>
        public readonly void HandOver(LaunchParameters* p)
        {
            p->PolicyState = State;
            p->PolicyImage = State == LaunchPolicyState.Loaded ? (ulong)Data : 0;
            p->PolicyImageSize = State == LaunchPolicyState.Loaded ? (uint)Size : 0;
            Copy(Path ?? "built-in", ref p->PolicyName[0], LaunchParameters.PolicyNameLength);
            Copy(Problem ?? "", ref p->PolicyMessage[0], LaunchParameters.MessageLength);
        }

        private static void Copy(string text, ref char first, int capacity)
        {
            fixed (char* to = &first)
            {
                int n = text.Length < capacity - 1 ? text.Length : capacity - 1;
                for (int i = 0; i < n; i++) to[i] = text[i];
                to[n] = '\0';
            }
        }
    }
}
