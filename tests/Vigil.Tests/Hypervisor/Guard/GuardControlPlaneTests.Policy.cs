using System;
using System.Runtime.InteropServices;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>
/// Policy delivery (issue 11 item 4): the compiled policy vigil.efi hands over is copied, checked again and in force from
/// launch (PolicyStore.Launch), a bad or missing one leaves the built-in rules in force with the reason in Status, Protect
/// keeps it, and `vigild protect --policy` (GuardProtectRequest.PolicyImage) replaces it before Lock only.
/// </summary>
public sealed unsafe partial class GuardControlPlaneTests
{
    private const ulong PolicyBuffer = Buffer + 0x2000;   // the agent's copy of the policy file (up to 6 pages)

    /// <summary>Runs <paramref name="test"/> with PolicyStore's two buffers allocated, and leaves the store as before launch.</summary>
    private static void WithPolicyStore(Action<IntPtr> test)
    {
        void* storage = NativeMemory.AlignedAlloc((nuint)PolicyStore.StorageBytes, 4096);
        PolicyStore.Reset();
        try
        {
            test((IntPtr)storage);
        }
        finally
        {
            PolicyStore.Reset();
            NativeMemory.AlignedFree(storage);
        }
    }

    private static string? Launch(IntPtr storage, byte[]? image, LaunchPolicyState state, string name = "\\EFI\\vigil\\default.pol", string loaderProblem = "")
        => PolicyStore.Launch((byte*)storage, image, state, name, loaderProblem);

    private PolicyStatus StatusPolicy()
    {
        Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Status, Buffer, 0x8000));
        return MemoryMarshal.Read<StatusReport>(ReadGuest(Buffer, sizeof(StatusReport))).Policy;
    }

    private static string Text(byte* bytes, int capacity)
    {
        int n = 0;
        while (n < capacity && bytes[n] != 0) n++;
        return Encoding.ASCII.GetString(bytes, n);
    }

    private HypercallStatus ProtectWithPolicy(byte[] image, ulong secret, GuardProtectFlags flags = GuardProtectFlags.None)
    {
        WriteGuest(PolicyBuffer, image);
        GuardProtectRequest r = WithHints();
        r.Flags = flags;
        r.PolicyImage = PolicyBuffer;
        r.PolicyImageSize = (ulong)image.Length;
        return Protect(r, secret);
    }

    [Fact]
    public void The_policy_file_is_in_force_from_launch_and_protect_keeps_it()
        => WithPolicyStore(storage =>
        {
            byte[] image = TestPolicies.AuditSyscallMsrs();
            Assert.Null(Launch(storage, image, LaunchPolicyState.Loaded));
            Assert.Equal(GuardRuleSource.Policy, GuardState.RuleSource);
            Assert.False(GuardState.Protected);
            GuardRule[] expected = TestPolicies.Rules(auditSyscallMsrs: true, out _);
            Assert.Equal(expected, GuardState.Rules.ToArray());
            PolicyStatus p = StatusPolicy();
            Assert.Equal(PolicyOrigin.File, p.Origin);
            Assert.Equal("\\EFI\\vigil\\default.pol", Text(p.Name, PolicyStatus.NameBytes));
            Assert.Equal("", Text(p.Problem, PolicyStatus.ProblemBytes));
            Assert.Equal((uint)image.Length, p.ImageBytes);
            Assert.Equal((uint)expected.Length, p.RuleCount);
            Assert.Equal(image, PolicyStore.Image.ToArray());

            // The loader's memory may go away: the hypervisor kept its own copy.
            Array.Clear(image);
            Assert.Equal(TestPolicies.AuditSyscallMsrs(), PolicyStore.Image.ToArray());

            // Protect without rules of its own keeps the policy in force (not the built-in set).
            Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
            Assert.Equal(GuardRuleSource.Policy, StatusGuard().RuleSource);
            Assert.Equal(expected, GuardState.Rules.ToArray());
            Assert.Equal(PolicyOrigin.File, StatusPolicy().Origin);

            // --strict asks for the built-in strict set instead: Status says the rules came from Protect.
            Assert.Equal(HypercallStatus.Success, Protect(GuardProtectRequest.Create(GuardProtectFlags.StrictRules), Secret));
            Assert.Equal(GuardRuleSource.BuiltInStrict, StatusGuard().RuleSource);
            Assert.Equal(PolicyOrigin.Protect, StatusPolicy().Origin);
        });

    [Theory]
    [InlineData("truncated")]
    [InlineData("bit flip in a rule")]
    [InlineData("empty")]
    public void A_policy_the_hypervisor_rejects_leaves_the_built_in_rules_and_says_why(string damage)
        => WithPolicyStore(storage =>
        {
            byte[] image = TestPolicies.BuiltIn();
            image = damage switch
            {
                "truncated" => image.AsSpan(0, image.Length - 7).ToArray(),
                "bit flip in a rule" => Flip(image, sizeof(GuardRuleSetHeader) + 12),   // the first rule's verdict: 0x80 | Block
                _ => [],
            };
            string? problem = Launch(storage, image, LaunchPolicyState.Loaded);
            Assert.NotNull(problem);
            Assert.StartsWith(damage == "empty" ? "the loader handed over 0 bytes" : "rejected by the hypervisor: ", problem);
            Assert.Equal(GuardRuleSource.BuiltIn, GuardState.RuleSource);
            var builtIn = new GuardRule[GuardRuleSetHeader.MaxRules];
            GuardRuleSetHeader header = DefaultRules.Write(builtIn);
            Assert.Equal(builtIn.AsSpan(0, (int)header.Count).ToArray(), GuardState.Rules.ToArray());
            PolicyStatus p = StatusPolicy();
            Assert.Equal(PolicyOrigin.FileRejected, p.Origin);
            Assert.Equal(problem, Text(p.Problem, PolicyStatus.ProblemBytes));
            Assert.Equal(0u, p.ImageBytes);

            static byte[] Flip(byte[] b, int at)
            {
                b[at] ^= 0x80;
                return b;
            }
        });

    [Fact]
    public void A_policy_the_loader_rejected_or_did_not_find_is_reported_with_its_reason()
        => WithPolicyStore(storage =>
        {
            Assert.Equal("not a valid compiled policy: bad signature", Launch(storage, null, LaunchPolicyState.Rejected, loaderProblem: "not a valid compiled policy: bad signature"));
            Assert.Equal(GuardRuleSource.BuiltIn, GuardState.RuleSource);
            PolicyStatus p = StatusPolicy();
            Assert.Equal(PolicyOrigin.FileRejected, p.Origin);
            Assert.Equal("not a valid compiled policy: bad signature", Text(p.Problem, PolicyStatus.ProblemBytes));

            Assert.Equal("no such file", Launch(storage, null, LaunchPolicyState.Missing, loaderProblem: "no such file"));
            p = StatusPolicy();
            Assert.Equal("no such file", Text(p.Problem, PolicyStatus.ProblemBytes));

            // `policy = built-in`: the built-in rules on purpose, no problem to report.
            Assert.Null(Launch(storage, null, LaunchPolicyState.NotConfigured, name: "built-in"));
            p = StatusPolicy();
            Assert.Equal(PolicyOrigin.BuiltIn, p.Origin);
            Assert.Equal("", Text(p.Problem, PolicyStatus.ProblemBytes));
            Assert.Equal(GuardRuleSource.BuiltIn, GuardState.RuleSource);
        });

    [Fact]
    public void Protect_with_a_compiled_policy_replaces_the_rules_before_lock_and_is_refused_after()
        => WithPolicyStore(storage =>
        {
            Assert.Null(Launch(storage, TestPolicies.BuiltIn(), LaunchPolicyState.Loaded));
            Assert.Equal(HypercallStatus.Success, Protect(WithHints()));
            byte[] audit = TestPolicies.AuditSyscallMsrs();

            // Refused and nothing changes: without the secret, a corrupt policy, with --strict, too large.
            Assert.Equal(HypercallStatus.NotPermitted, ProtectWithPolicy(audit, Secret + 1));
            byte[] corrupt = (byte[])audit.Clone();
            corrupt[sizeof(GuardRuleSetHeader) + 12] ^= 0x80;   // the first rule's verdict out of range
            Assert.Equal(HypercallStatus.BadRequest, ProtectWithPolicy(corrupt, Secret));
            Assert.Equal(HypercallStatus.BadRequest, ProtectWithPolicy(audit, Secret, GuardProtectFlags.StrictRules));
            GuardProtectRequest huge = WithHints();
            huge.PolicyImage = PolicyBuffer;
            huge.PolicyImageSize = PolicyStatus.MaxImageBytes + 1;
            Assert.Equal(HypercallStatus.BadBufferSize, Protect(huge, Secret));
            Assert.Equal(TestPolicies.BuiltIn(), PolicyStore.Image.ToArray());
            Assert.Equal(PolicyOrigin.File, StatusPolicy().Origin);

            // Before Lock, with the secret: in force, and Status says where it came from.
            Assert.Equal(HypercallStatus.Success, ProtectWithPolicy(audit, Secret));
            Assert.Equal(TestPolicies.Rules(auditSyscallMsrs: true, out _), GuardState.Rules.ToArray());
            Assert.Equal(audit, PolicyStore.Image.ToArray());
            PolicyStatus p = StatusPolicy();
            Assert.Equal(PolicyOrigin.HandedOver, p.Origin);
            Assert.Equal("\\EFI\\vigil\\default.pol", Text(p.Name, PolicyStatus.NameBytes));   // the ESP's file stays named (a rejection says which file)
            Assert.Equal(GuardRuleSource.Policy, StatusGuard().RuleSource);

            // A second one takes the first one's place (the buffers alternate).
            Assert.Equal(HypercallStatus.Success, ProtectWithPolicy(TestPolicies.BuiltIn(), Secret));
            Assert.Equal(TestPolicies.BuiltIn(), PolicyStore.Image.ToArray());

            // After Lock: nothing can replace it.
            Assert.Equal(HypercallStatus.Success, Call(HypercallFunction.Lock, rdx: Secret));
            Assert.Equal(HypercallStatus.NotPermitted, ProtectWithPolicy(audit, Secret));
            Assert.Equal(TestPolicies.BuiltIn(), PolicyStore.Image.ToArray());
            Assert.Equal(PolicyOrigin.HandedOver, StatusPolicy().Origin);
        });

    [Fact]
    public void Policy_abi_layouts()
    {
        Assert.Equal(88, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.PolicyImage)));
        Assert.Equal(96, (int)Marshal.OffsetOf<GuardProtectRequest>(nameof(GuardProtectRequest.PolicyImageSize)));
        Assert.Equal(128, sizeof(GuardProtectRequest));
        Assert.Equal(24 + 32 + 64 + 128, sizeof(PolicyStatus));
        Assert.Equal(16, (int)Marshal.OffsetOf<PolicyStatus>(nameof(PolicyStatus.PinnedFromKernelStart)));
        Assert.Equal(24, (int)Marshal.OffsetOf<PolicyStatus>(nameof(PolicyStatus.SourceHash)));
        Assert.Equal(56, (int)Marshal.OffsetOf<PolicyStatus>(nameof(PolicyStatus.Name)));
        Assert.Equal(120, (int)Marshal.OffsetOf<PolicyStatus>(nameof(PolicyStatus.Problem)));
        Assert.Equal((int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Guard)) + sizeof(GuardStatus), (int)Marshal.OffsetOf<StatusReport>(nameof(StatusReport.Policy)));
        Assert.True(sizeof(StatusReport) <= 0x8000);
        Assert.True(sizeof(LaunchParameters) <= 4096);
        Assert.Equal(2u, LaunchParameters.CurrentVersion);
        Assert.Equal(PolicyStatus.MaxImageBytes, Vigil.Tool.Images.EspLayout.MaxPolicyBytes);
        Assert.Equal(PolicyStatus.MaxImageBytes, LaunchParameters.MaxPolicyBytes);
    }
}
