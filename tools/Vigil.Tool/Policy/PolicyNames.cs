using System;
using System.Collections.Generic;
using System.Linq;
using Vigil.Abi;

namespace Vigil.Tool.Policy;

/// <summary>An object a rule names: a class, and for registers the pinned bits or the MSR it is about (0: any).</summary>
public sealed record PolicyObject(string Name, GuardObject Object, ulong Detail, string Description)
{
    /// <summary>Bits of the same register (cr0/cr4/efer) combine into one rule; each MSR is a rule of its own.</summary>
    public bool IsBits => Detail != 0 && Object != GuardObject.SyscallMsr;
}

/// <summary>A name of the language and what it stands for (one table per kind; docs/policy.md lists them all).</summary>
public sealed record PolicyName<T>(string Name, T Value, string Description);

/// <summary>
/// Every name of the policy language, in one place: the compiler, `vigil policy show`, the replay's event reader
/// and docs/policy.md use these tables, never their own spellings.
/// </summary>
public static class PolicyNames
{
    public static readonly PolicyName<GuardVerdict>[] Verdicts =
    [
        new("allow", GuardVerdict.Allow, "the write or instruction takes effect; nothing is recorded"),
        new("audit", GuardVerdict.Audit, "it takes effect and an event is recorded"),
        new("block", GuardVerdict.Block, "it does not take effect (the old value stays), the guest continues after the instruction; recorded"),
        new("block-and-fault", GuardVerdict.BlockAndFault, "blocked, and a fault is injected into the offending context (#GP for registers, #PF for memory); recorded"),
    ];

    public static readonly PolicyName<GuardAccess>[] Accesses =
    [
        new("write", GuardAccess.Write, "a store to a guarded page (decoded: destination, size, value)"),
        new("read", GuardAccess.Read, "a load from memory the guest may not read (the hypervisor's)"),
        new("register-write", GuardAccess.RegisterWrite, "MOV to CR0/CR4, WRMSR to EFER or a syscall MSR, LIDT, LGDT"),
    ];

    public static readonly PolicyName<ActorRegion>[] Regions =
    [
        new("kernel-text", ActorRegion.KernelText, "the core kernel's code, as it was at Protect"),
        new("module-area", ActorRegion.ModuleArea, "the module area (0xffffffffc0000000-0xffffffffff000000): modules, ftrace and BPF trampolines"),
        new("kernel-other", ActorRegion.KernelOther, "other kernel addresses (vmalloc, the direct map, ...)"),
        new("user", ActorRegion.User, "the lower half: user space"),
        new("unknown", ActorRegion.Unknown, "an instruction the hypervisor could not place"),
    ];

    public static readonly PolicyName<GuardContent>[] Shapes =
    [
        new("patch-site", GuardContent.KernelPatch, "the write makes or continues one of the kernel's own text-patch shapes (NOP <-> JMP/CALL, the INT3 protocol) whose JMP/CALL leads to code the kernel had at Protect"),
        new("jump-into-post-lock-code", GuardContent.JumpIntoNewCode, "a text-patch shape whose JMP/CALL leads into code the kernel did not have at Protect (a trampoline of a module loaded since)"),
        new("pinned-bit-cleared", GuardContent.PinnedBitCleared, "the new value clears a pinned bit (CR0.WP, CR4.SMEP/SMAP/UMIP, EFER.NXE/SCE)"),
        new("expected-value", GuardContent.ExpectedValue, "the new value is one the hypervisor expects: the value pinned at Protect (an MSR rewritten by CPU bring-up), a known table base for LIDT/LGDT"),
        new("undecodable", GuardContent.Undecodable, "the instruction could not be decoded: the write's destination or value is unknown"),
        new("unchanged", GuardContent.Unchanged, "the new content equals the old (a write that changes nothing)"),
        new("page-walk-update", GuardContent.PageWalkUpdate, "not an instruction's store: the CPU's page walker setting an accessed/dirty bit in a page-table entry on a guarded page"),
    ];

    /// <summary>The word for "every object".</summary>
    public const string Anything = "anything";

    public static readonly PolicyObject[] Objects =
    [
        new("kernel-text", GuardObject.KernelText, 0, "a page of the core kernel's code"),
        new("kernel-rodata", GuardObject.KernelReadOnlyData, 0, "a page of the kernel's read-only data (.rodata, __ro_after_init) other than the syscall table"),
        new("sys-call-table", GuardObject.SysCallTable, 0, "the page(s) holding sys_call_table"),
        new("idt", GuardObject.InterruptTable, 0, "a page holding a CPU's IDT"),
        new("idtr", GuardObject.InterruptTableRegister, 0, "IDTR: LIDT"),
        new("gdtr", GuardObject.GlobalTableRegister, 0, "GDTR: LGDT"),
        new("gdt-descriptor", GuardObject.GlobalTableDescriptor, 0, "a descriptor of a CPU's GDT: a fixed entry (kernel and user segments, the TSS) that changed, or an LDT/TLS slot holding what Linux never puts there (checked, not write-protected: the writer is not known)"),
        new("cr0", GuardObject.ControlRegister0, 0, "any pinned bit of CR0"),
        new("cr0.wp", GuardObject.ControlRegister0, GuardDetail.Cr0Wp, "CR0.WP (write protect: supervisor writes honour read-only pages)"),
        new("cr4", GuardObject.ControlRegister4, 0, "any pinned bit of CR4"),
        new("cr4.smep", GuardObject.ControlRegister4, GuardDetail.Cr4Smep, "CR4.SMEP (the kernel may not execute user pages)"),
        new("cr4.smap", GuardObject.ControlRegister4, GuardDetail.Cr4Smap, "CR4.SMAP (the kernel may not touch user pages unannounced)"),
        new("cr4.umip", GuardObject.ControlRegister4, GuardDetail.Cr4Umip, "CR4.UMIP (SGDT/SIDT/SLDT/SMSW/STR fault in user mode)"),
        new("efer", GuardObject.Efer, 0, "any pinned bit of EFER"),
        new("efer.nxe", GuardObject.Efer, GuardDetail.EferNxe, "EFER.NXE (no-execute pages)"),
        new("efer.sce", GuardObject.Efer, GuardDetail.EferSce, "EFER.SCE (SYSCALL/SYSRET enabled)"),
        new("syscall-msr", GuardObject.SyscallMsr, 0, "any of the seven syscall MSRs below"),
        new("msr.star", GuardObject.SyscallMsr, GuardDetail.Star, "IA32_STAR (0xc0000081): SYSCALL/SYSRET segments"),
        new("msr.lstar", GuardObject.SyscallMsr, GuardDetail.Lstar, "IA32_LSTAR (0xc0000082): the 64-bit SYSCALL entry point"),
        new("msr.cstar", GuardObject.SyscallMsr, GuardDetail.Cstar, "IA32_CSTAR (0xc0000083): the compatibility-mode SYSCALL entry point"),
        new("msr.sfmask", GuardObject.SyscallMsr, GuardDetail.Sfmask, "IA32_FMASK (0xc0000084): RFLAGS bits SYSCALL clears"),
        new("msr.sysenter-cs", GuardObject.SyscallMsr, GuardDetail.SysenterCs, "IA32_SYSENTER_CS (0x174)"),
        new("msr.sysenter-esp", GuardObject.SyscallMsr, GuardDetail.SysenterEsp, "IA32_SYSENTER_ESP (0x175): per CPU, any value in the CPU entry area is expected"),
        new("msr.sysenter-eip", GuardObject.SyscallMsr, GuardDetail.SysenterEip, "IA32_SYSENTER_EIP (0x176)"),
        new("hypervisor-memory", GuardObject.HypervisorMemory, 0, "the hypervisor's own memory (always guarded, from launch)"),
    ];

    /// <summary>The clause keywords that may follow a rule's objects.</summary>
    public static readonly (string Name, string Syntax, string Description)[] Clauses =
    [
        ("by", "by REGION[, REGION]...", "the instruction that tried it lies in one of these regions"),
        ("rip", "rip ADDRESS[..ADDRESS]", "its RIP is this address or lies in this inclusive range (hex, `_` allowed)"),
        ("cpl", "cpl N[, N]...", "it ran at one of these privilege levels (0-3)"),
        ("cr3", "cr3 ADDRESS", "it ran in this address space (the page-table base; PCID bits left out)"),
        ("when", "when SHAPE [and SHAPE]...", "the hypervisor found every one of these content shapes"),
        ("unless", "unless SHAPE [or SHAPE]...", "the hypervisor found none of these content shapes"),
        ("after-lock", "after-lock", "only once the guard is locked"),
        ("before-lock", "before-lock", "only before the guard is locked"),
    ];

    /// <summary>Which accesses can ever happen to an object class (null: any; the compiler refuses a rule that can never match).</summary>
    public static GuardAccess[]? PossibleAccesses(GuardObject o) => o switch
    {
        GuardObject.KernelText or GuardObject.KernelReadOnlyData or GuardObject.SysCallTable or GuardObject.InterruptTable
            or GuardObject.GlobalTableDescriptor => [GuardAccess.Write],
        GuardObject.HypervisorMemory => [GuardAccess.Write, GuardAccess.Read],
        GuardObject.InterruptTableRegister or GuardObject.GlobalTableRegister or GuardObject.ControlRegister0 or GuardObject.ControlRegister4
            or GuardObject.Efer or GuardObject.SyscallMsr => [GuardAccess.RegisterWrite],
        _ => null,
    };

    public static string Name(GuardVerdict v) => Verdicts.FirstOrDefault(n => n.Value == v)?.Name ?? $"verdict-{(int)v}";

    public static string Name(GuardAccess a) => Accesses.FirstOrDefault(n => n.Value == a)?.Name ?? $"access-{(int)a}";

    public static string Name(ActorRegion r) => Regions.FirstOrDefault(n => n.Value == r)?.Name ?? $"region-{(int)r}";

    /// <summary>The plain name of an object class (no detail).</summary>
    public static string Name(GuardObject o) => Objects.FirstOrDefault(n => n.Object == o && n.Detail == 0)?.Name ?? $"object-{(int)o}";

    /// <summary>Shape names of every flag in <paramref name="content"/>, in bit order.</summary>
    public static IEnumerable<string> ShapeNames(GuardContent content)
    {
        foreach (var s in Shapes)
        {
            if ((content & s.Value) != 0) yield return s.Name;
        }
        var unknown = content & ~Shapes.Aggregate(GuardContent.None, (all, s) => all | s.Value);
        if (unknown != 0) yield return $"content-0x{(ushort)unknown:x}";
    }

    /// <summary>
    /// The known names closest to <paramref name="word"/> (edit distance, ignoring case), if any is close enough to be a
    /// likely typo: at most 2 edits for short names, a third of the length for long ones.
    /// </summary>
    public static string? Nearest(string word, IEnumerable<string> candidates)
    {
        string lower = word.ToLowerInvariant();
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string c in candidates)
        {
            int d = Distance(lower, c);
            if (d < bestDistance)
            {
                best = c;
                bestDistance = d;
            }
        }
        if (best != null && bestDistance <= Math.Max(2, Math.Max(lower.Length, best.Length) / 3)) return best;
        // Else a name that starts the same way (`modules` for `module-area`, `kernel-te` for `kernel-text`), the longest such start.
        string? prefixed = null;
        int longest = 0;
        foreach (string c in candidates)
        {
            int common = 0;
            while (common < c.Length && common < lower.Length && c[common] == lower[common]) common++;
            if (common > longest && common >= Math.Max(4, Math.Min(lower.Length, c.Length) / 2))
            {
                prefixed = c;
                longest = common;
            }
        }
        return prefixed;
    }

    /// <summary>Optimal string alignment distance (Levenshtein with adjacent transpositions).</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
