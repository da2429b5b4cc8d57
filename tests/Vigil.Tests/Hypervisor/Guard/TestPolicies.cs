using System;
using System.IO;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Tool;
using Vigil.Tool.Images;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>
/// Compiled policies for the delivery tests (issue 11 item 4), made by `vigil policy compile`'s compiler: the default policy
/// (policy/default.policy, the built-in rules), and tests/guest/policies/audit.policy (the same with syscall-MSR writes
/// the default blocks audited), also compiled into the test guest as /etc/vigil/policies/audit.pol.
/// </summary>
internal static class TestPolicies
{
    public static byte[] BuiltIn() => EspLayout.CompileDefaultPolicy(Repository.Root());

    /// <summary>The built-in rules, but an unexpected syscall-MSR write (WRMSR LSTAR) is audited instead of blocked.</summary>
    public static byte[] AuditSyscallMsrs() => EspLayout.CompilePolicy(Path.Combine(Repository.Root(), "tests", "guest", "policies", "audit.policy"));

    /// <summary>The default policy with one character of its embedded source changed ("block syscall-msr" becomes "alock ..."): every check must refuse it.</summary>
    public static byte[] Damaged()
    {
        byte[] image = BuiltIn();
        int at = image.AsSpan().IndexOf(Encoding.ASCII.GetBytes("\nblock syscall-msr"));
        if (at < 0) throw new InvalidOperationException("policy/default.policy has no line 'block syscall-msr' to damage");
        image[at + 1] = (byte)'a';
        return image;
    }

    /// <summary>The rules <see cref="BuiltIn"/> (false) or <see cref="AuditSyscallMsrs"/> (true) hold, built from DefaultRules.</summary>
    public static GuardRule[] Rules(bool auditSyscallMsrs, out GuardRuleSetHeader header)
    {
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        header = DefaultRules.Write(rules);
        if (auditSyscallMsrs)
        {
            for (int i = 0; i < header.Count; i++)
            {
                if (rules[i].Objects == 1u << (int)GuardObject.SyscallMsr && rules[i].ContentAll == GuardContent.None) rules[i].Verdict = GuardVerdict.Audit;
            }
        }
        return rules.AsSpan(0, (int)header.Count).ToArray();
    }
}
