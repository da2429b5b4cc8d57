using System;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>Compiled policies for the delivery tests (issue 11 item 4): the built-in rules, and a variant that audits syscall-MSR writes.</summary>
internal static class TestPolicies
{
    /// <summary>The built-in rules as a compiled policy.</summary>
    public static byte[] BuiltIn() => Image(Rules(auditSyscallMsrs: false, out GuardRuleSetHeader header), header);

    /// <summary>The built-in rules, but an unexpected syscall-MSR write (WRMSR LSTAR) is audited instead of blocked.</summary>
    public static byte[] AuditSyscallMsrs() => Image(Rules(auditSyscallMsrs: true, out GuardRuleSetHeader header), header);

    /// <summary>The built-in policy with one byte of its first rule changed (the verdict out of range): every check must refuse it.</summary>
    public static byte[] Damaged()
    {
        byte[] image = BuiltIn();
        image[System.Runtime.CompilerServices.Unsafe.SizeOf<GuardRuleSetHeader>() + 12] ^= 0x80;
        return image;
    }

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

    /// <summary>The compiled form (stand-in format until branch policylang's compiler is merged).</summary>
    public static byte[] Image(GuardRule[] rules, GuardRuleSetHeader header)
    {
        header.Count = (uint)rules.Length;
        byte[] headerBytes = MemoryMarshal.AsBytes(new ReadOnlySpan<GuardRuleSetHeader>(in header)).ToArray();
        byte[] ruleBytes = MemoryMarshal.AsBytes(rules.AsSpan()).ToArray();
        return [.. headerBytes, .. ruleBytes];
    }
}
