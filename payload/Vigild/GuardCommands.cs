using System;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Vigil.Abi;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Vigil.Agent;

/// <summary>
/// The kernel guard's commands: `vigild protect [--lock]`, `vigild lock`, `vigild events [--after N] [--follow] [--json]`,
/// and the guard's part of `vigild status`. The secret the first Protect returns is kept in /run/vigild.secret (0600,
/// root): every later Protect, Lock and ReadEvents presents it.
/// </summary>
internal static unsafe class GuardCommands
{
    public const string SecretPath = "/run/vigild.secret";

    private const int EventBatch = 64;

    /// <summary>Object class names, as `vigild events` prints them (indexed by GuardObject).</summary>
    private static readonly string[] ObjectNames =
        ["none", "kernel-text", "kernel-rodata", "sys-call-table", "idt", "idtr", "gdtr", "cr0", "cr4", "efer", "syscall-msr", "hypervisor-memory", "gdt-descriptor"];

    private static readonly string[] VerdictNames = ["allow", "audit", "block", "block-and-fault"];
    private static readonly string[] AccessNames = ["none", "write", "read", "register-write"];
    private static readonly string[] RegionNames = ["unknown", "kernel-text", "module-area", "kernel-other", "user"];
    private static readonly string[] ContentNames = ["kernel-patch", "jump-into-new-code", "pinned-bit-cleared", "expected-value", "undecodable", "unchanged", "page-walk-update"];

    public static string ObjectName(GuardObject o) => (int)o < ObjectNames.Length ? ObjectNames[(int)o] : $"object-{(int)o}";

    /// <summary>The rule set in force, as `vigild protect` and `vigild status` print it.</summary>
    public static string RuleSourceName(GuardRuleSource s) => s switch
    {
        GuardRuleSource.None => "none",
        GuardRuleSource.BuiltIn => "built-in",
        GuardRuleSource.BuiltInStrict => "built-in strict",
        GuardRuleSource.HandedOver => "handed over",
        GuardRuleSource.Policy => "compiled policy",
        _ => $"source-{(uint)s}",
    };

    public static string VerdictName(GuardVerdict v) => (int)v < VerdictNames.Length ? VerdictNames[(int)v] : $"verdict-{(int)v}";

    /// <summary>
    /// `vigild protect [--strict] [--lock]`: hints from /proc/kallsyms, the Protect hypercall, the secret stored.
    /// --strict asks for the built-in rule set's strict variant (text patches into code loaded after Protect are blocked).
    /// </summary>
    public static int Protect(bool lockToo, bool strict = false, string? policyFile = null)
    {
        if (!Hypervisor.Ready()) return 1;
        if (!Hypervisor.IsRoot())
        {
            Console.Error.WriteLine("vigild: protect needs root (the secret goes to " + SecretPath + ", the hints come from /proc/kallsyms)");
            return 1;
        }
        byte[]? policy = null;
        if (policyFile != null)
        {
            policy = ReadPolicy(policyFile);
            if (policy == null) return 1;
        }
        bool haveSecret = TryReadSecret(out ulong secret, quiet: true);
        var request = GuardProtectRequest.Create((lockToo ? GuardProtectFlags.Lock : GuardProtectFlags.None)
            | (strict ? GuardProtectFlags.StrictRules : GuardProtectFlags.None));
        int hints = ReadHints(ref request);
        HypercallStatus status;
        Span<ulong> regs = [Hypercall.Rax(HypercallFunction.Protect), (ulong)&request, (ulong)sizeof(GuardProtectRequest), haveSecret ? secret : 0, 0];
        fixed (byte* image = policy)
        {
            // The hypervisor copies the policy into its own memory and checks it whole (version, size, hash, every field).
            request.PolicyImage = (ulong)image;
            request.PolicyImageSize = policy == null ? 0 : (ulong)policy.Length;
            HypercallStub.Call(regs);
            status = (HypercallStatus)regs[0];
        }
        if (status != HypercallStatus.Success)
        {
            bool locked = status == HypercallStatus.NotPermitted && Hypervisor.Locked();
            if (policyFile != null && locked)
            {
                Console.Error.WriteLine("vigild: protect --policy " + policyFile + " REFUSED: the guard is locked, so the policy in force cannot be replaced until reset (NotPermitted)");
            }
            else if (policyFile != null && status == HypercallStatus.BadRequest)
            {
                Console.Error.WriteLine("vigild: protect --policy " + policyFile + " REFUSED: the hypervisor found it is not a valid compiled policy (check it with `vigil policy show`); the policy in force is unchanged");
            }
            else
            {
                Console.Error.WriteLine("vigild: protect failed: " + Explain(status, haveSecret));
            }
            return 1;
        }
        if (regs[3] != 0 && !WriteSecret(regs[3])) return 1;
        var accepted = (GuardHint)(uint)regs[4];
        var rejected = (GuardHint)(uint)(regs[4] >> 32);
        StatusReport report = default;
        bool haveReport = Hypervisor.Status(ref report);
        var line = new StringBuilder("vigild: protected");
        if (haveReport)
        {
            GuardStatus g = report.Guard;
            ulong total = 0;
            for (int o = 0; o < GuardStatus.ObjectSlots; o++) total += g.Bytes[o];
            line.Append($": {g.RangeCount} ranges, {total >> 10} KiB (");
            AppendPerObject(line, g);
            line.Append(')');
            line.Append(", rules: " + RuleSourceName(g.RuleSource));
            if (g.RuleSource == GuardRuleSource.Policy) line.Append(" (" + PolicyName(report.Policy) + ")");
            if (g.Locked != 0) line.Append(", locked");
        }
        else
        {
            line.Append($": {regs[2]} ranges");
        }
        line.Append($"; hints: {hints} read, accepted {HintNames(accepted)}, rejected {HintNames(rejected)}");
        Console.WriteLine(line.ToString());
        if (rejected != 0) Console.Error.WriteLine("vigild: warning: the hypervisor rejected hints (" + HintNames(rejected) + "): /proc/kallsyms disagrees with the kernel's page tables");
        return 0;
    }

    /// <summary>A compiled policy file, whole (the hypervisor checks it); null after saying why not.</summary>
    private static byte[]? ReadPolicy(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                Console.Error.WriteLine("vigild: no policy file " + path);
                return null;
            }
            if (info.Length == 0 || info.Length > PolicyStatus.MaxImageBytes)
            {
                Console.Error.WriteLine($"vigild: policy file {path} has {info.Length} bytes; a compiled policy has 1 to {PolicyStatus.MaxImageBytes}");
                return null;
            }
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("vigild: cannot read the policy file " + path + ": " + e.Message);
            return null;
        }
    }

    /// <summary>The policy in force in a few words: its name, the start of its source hash, its mode.</summary>
    public static string PolicyName(PolicyStatus p)
    {
        string mode = p.AuditOnly != 0 ? "AUDIT-ONLY: blocks are only recorded" : "enforce";
        string name = Ascii(p.Name, PolicyStatus.NameBytes);
        string hash = Bytes(p.SourceHash, 8);
        return p.Origin switch
        {
            PolicyOrigin.File => $"{name}, source hash {hash}, {mode}, {p.RuleCount} rules, from the ESP at boot",
            PolicyOrigin.HandedOver => $"handed over by vigild protect --policy, source hash {hash}, {mode}, {p.RuleCount} rules",
            PolicyOrigin.FileRejected => $"built-in (policy/default.policy, source hash {hash}), {mode}, {p.RuleCount} rules (the policy file {name} was not used)",
            PolicyOrigin.Protect => $"set by protect, {mode}, {p.RuleCount} rules",
            _ => $"built-in (policy/default.policy, source hash {hash}), {mode}, {p.RuleCount} rules",
        };
    }

    private static string Ascii(byte* bytes, int capacity)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < capacity && bytes[i] != 0; i++) sb.Append((char)bytes[i]);
        return sb.ToString();
    }

    /// <summary>`vigild lock`: one way until reset.</summary>
    public static int Lock()
    {
        if (!Hypervisor.Ready()) return 1;
        if (!TryReadSecret(out ulong secret, quiet: false)) return 1;
        Span<ulong> regs = [Hypercall.Rax(HypercallFunction.Lock), 0, 0, secret, 0];
        HypercallStub.Call(regs);
        var status = (HypercallStatus)regs[0];
        if (status != HypercallStatus.Success)
        {
            Console.Error.WriteLine("vigild: lock failed: " + Explain(status, haveSecret: true));
            return 1;
        }
        Console.WriteLine("vigild: locked: protection can no longer be changed until reset");
        return 0;
    }

    /// <summary>`vigild events [--after N] [--follow] [--json]`.</summary>
    /// <param name="sink">Where each event goes instead of stdout (`vigild run`), or null.</param>
    public static int Events(ulong after, bool follow, bool json, Action<GuardEvent>? sink = null)
    {
        if (!Hypervisor.Ready()) return 1;
        if (!TryReadSecret(out ulong secret, quiet: false)) return 1;
        GuardEvent* buffer = (GuardEvent*)NativeMemory.AllocZeroed((nuint)(EventBatch * sizeof(GuardEvent)));
        try
        {
            while (true)
            {
                Span<ulong> regs = [Hypercall.Rax(HypercallFunction.ReadEvents), (ulong)buffer, (ulong)(EventBatch * sizeof(GuardEvent)), secret, after];
                HypercallStub.Call(regs);
                var status = (HypercallStatus)regs[0];
                if (status != HypercallStatus.Success)
                {
                    Console.Error.WriteLine("vigild: reading events failed: " + Explain(status, haveSecret: true));
                    return 1;
                }
                int count = (int)regs[1];
                ulong missed = regs[4];
                if (missed != 0) Console.Error.WriteLine($"vigild: {missed} events after {after} were overwritten before they were read (the ring is full): lost");
                for (int i = 0; i < count; i++)
                {
                    if (sink != null) sink(buffer[i]);
                    else Console.WriteLine(json ? Json(buffer[i]) : Text(buffer[i]));
                    after = buffer[i].Sequence;
                }
                Console.Out.Flush();
                if (count == EventBatch) continue;   // more may be there
                if (!follow) return 0;
                Thread.Sleep(200);
            }
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    /// <summary>The guard's lines of `vigild status`.</summary>
    public static void PrintStatus(in StatusReport report)
    {
        GuardStatus g = report.Guard;
        Console.WriteLine($"vigild: protection: {(g.Protected != 0 ? "on" : "off")}, lock: {(g.Locked != 0 ? "on" : "off")}, "
            + $"audit-only: {(g.AuditOnly != 0 ? "yes (blocks are only recorded)" : "no")}, {g.RuleCount} rules (layout {g.RuleVersion}), generation {g.Generation}");
        Console.WriteLine("vigild: rules: " + RuleSourceName(g.RuleSource));
        PolicyStatus policy = report.Policy;
        Console.WriteLine("vigild: policy: " + PolicyName(policy));
        string problem = Ascii(policy.Problem, PolicyStatus.ProblemBytes);
        if (problem.Length != 0) Console.WriteLine("vigild: policy file rejected: " + problem + " (" + Ascii(policy.Name, PolicyStatus.NameBytes) + ", at boot: the built-in default was in force from then)");
        ulong total = 0;
        for (int o = 0; o < GuardStatus.ObjectSlots; o++) total += g.Bytes[o];
        var ranges = new StringBuilder($"vigild: ranges: {g.RangeCount}, {total >> 10} KiB guarded");
        if (g.RangeCount != 0)
        {
            ranges.Append(" (");
            AppendPerObject(ranges, g);
            ranges.Append(')');
        }
        Console.WriteLine(ranges.ToString());
        for (int i = 0; i < g.ListedCount && i < GuardStatus.MaxListedRanges; i++)
        {
            GuardRangeStatus r = g.Listed[i];
            Console.WriteLine($"vigild: range {i}: gpa 0x{r.Gpa:x}-0x{r.Gpa + r.Size - 1:x} ({r.Size >> 10} KiB) {ObjectName(r.Object)}");
        }
        if (g.RangeCount > g.ListedCount && g.RangesHidden == 0) Console.WriteLine($"vigild: ranges beyond the first {GuardStatus.MaxListedRanges} are not listed");
        if (g.RangesHidden != 0) Console.WriteLine("vigild: range addresses: shown only to the agent (root, with " + SecretPath + ")");
        if (g.Protected != 0) Console.WriteLine($"vigild: gdt descriptors: checked on {g.GdtWatched} cpu(s) (compared with their snapshot, not write-protected)");
        if (g.Protected == 0 && policy.PinnedFromKernelStart != 0)
        {
            Console.WriteLine($"vigild: pinned from the kernel's start (before protect): cr0 0x{g.PinnedCr0:X}, cr4 0x{g.PinnedCr4:X}, efer 0x{g.PinnedEfer:X} once set; "
                + $"{policy.LearnedMsrs} syscall msrs hold the first value the kernel wrote; idtr/gdtr and memory from protect on");
        }
        if (g.Protected != 0)
        {
            Console.WriteLine($"vigild: pinned: cr0 0x{g.PinnedCr0:X}, cr4 0x{g.PinnedCr4:X}, efer 0x{g.PinnedEfer:X}, {g.PinnedMsrs} syscall msrs"
                + (g.PinnedTables != 0 ? ", idtr and the gdt limit" : ""));
        }
        var verdicts = new StringBuilder("vigild: verdicts:");
        bool any = false;
        for (int o = 0; o < GuardStatus.ObjectSlots; o++)
        {
            var per = new StringBuilder();
            for (int v = 0; v < GuardStatus.VerdictSlots; v++)
            {
                ulong n = g.Verdicts[(o * GuardStatus.VerdictSlots) + v];
                if (n != 0) per.Append(per.Length == 0 ? "" : " ").Append(VerdictName((GuardVerdict)v)).Append(' ').Append(n);
            }
            if (per.Length == 0) continue;
            verdicts.Append(any ? "; " : " ").Append(ObjectName((GuardObject)o)).Append(": ").Append(per);
            any = true;
        }
        if (!any) verdicts.Append(" none yet");
        Console.WriteLine(verdicts.ToString());
        Console.WriteLine($"vigild: events: newest {g.NewestEvent}, events lost: {g.EventsLost} (ring of {g.EventCapacity})");
    }

    private static void AppendPerObject(StringBuilder sb, in GuardStatus g)
    {
        bool first = true;
        for (int o = 0; o < GuardStatus.ObjectSlots; o++)
        {
            if (g.Ranges[o] == 0) continue;
            sb.Append(first ? "" : ", ").Append(ObjectName((GuardObject)o)).Append(' ').Append(g.Ranges[o]).Append(g.Ranges[o] == 1 ? " range " : " ranges ")
                .Append(g.Bytes[o] >> 10).Append(" KiB");
            first = false;
        }
    }

    private static string Explain(HypercallStatus status, bool haveSecret) => status switch
    {
        HypercallStatus.NotPermitted when Hypervisor.Locked() => "not permitted: the guard is locked (Lock is one way until reset)",
        HypercallStatus.NotPermitted when !haveSecret => "not permitted: the guard is already in force and " + SecretPath + " is missing (another agent holds the secret)",
        HypercallStatus.NotPermitted => "not permitted: the hypervisor refused the secret in " + SecretPath + " (stale, or nothing protected yet)",
        HypercallStatus.Unsupported => "unsupported: the hypervisor could not guard this kernel (no kernel code found in its page tables, too many ranges, or the nested map could not be changed: see the hypervisor's log)",
        HypercallStatus.BadRequest => "bad request: the hypervisor refused the request's content (a newer or older vigild?)",
        HypercallStatus.BadAddress => "bad address: the hypervisor could not reach vigild's buffer",
        HypercallStatus.BadBufferSize => "bad buffer size (a newer or older vigild?)",
        HypercallStatus.UnknownFunction => "unknown function: this hypervisor has no kernel guard (an older Vigil?)",
        _ => status.ToString(),
    };

    private static string HintNames(GuardHint hints)
    {
        if (hints == 0) return "none";
        var sb = new StringBuilder();
        if ((hints & GuardHint.SysCallTable) != 0) sb.Append("sys_call_table,");
        if ((hints & GuardHint.KernelText) != 0) sb.Append("_stext.._etext,");
        if ((hints & GuardHint.ReadOnlyData) != 0) sb.Append("__start_rodata..__end_rodata,");
        if ((hints & GuardHint.InterruptTable) != 0) sb.Append("idt_table,");
        sb.Length--;
        return sb.ToString();
    }

    /// <summary>Symbol addresses from /proc/kallsyms (zeros when kptr_restrict hides them): hints, checked by the hypervisor.</summary>
    private static int ReadHints(ref GuardProtectRequest request)
    {
        int found = 0;
        try
        {
            foreach (string line in File.ReadLines("/proc/kallsyms"))
            {
                int a = line.IndexOf(' ');
                if (a <= 0 || a + 3 > line.Length) continue;
                int b = line.IndexOf(' ', a + 1);
                if (b < 0) continue;
                string name = line.Substring(b + 1);
                int tab = name.IndexOf('\t');
                if (tab >= 0) continue;   // a module's symbol
                if (!ulong.TryParse(line.AsSpan(0, a), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong address) || address == 0) continue;
                switch (name)
                {
                    case "sys_call_table": request.SysCallTable = address; found++; break;
                    case "_stext": request.TextStart = address; found++; break;
                    case "_etext": request.TextEnd = address; found++; break;
                    case "__start_rodata": request.ReadOnlyDataStart = address; found++; break;
                    case "__end_rodata": request.ReadOnlyDataEnd = address; found++; break;
                    case "idt_table": request.InterruptTable = address; found++; break;
                }
            }
        }
        catch (IOException e)
        {
            Console.Error.WriteLine("vigild: warning: cannot read /proc/kallsyms (" + e.Message + "): protecting without hints");
        }
        catch (UnauthorizedAccessException)
        {
            Console.Error.WriteLine("vigild: warning: cannot read /proc/kallsyms: protecting without hints");
        }
        if ((request.TextStart == 0) != (request.TextEnd == 0)) request.TextStart = request.TextEnd = 0;
        if ((request.ReadOnlyDataStart == 0) != (request.ReadOnlyDataEnd == 0)) request.ReadOnlyDataStart = request.ReadOnlyDataEnd = 0;
        return found;
    }

    /// <summary>The agent's secret when this process may read it (root), else 0 (quietly).</summary>
    public static ulong SecretIfReadable() => File.Exists(SecretPath) && TryReadSecret(out ulong secret, quiet: true) ? secret : 0;

    private static bool TryReadSecret(out ulong secret, bool quiet)
    {
        secret = 0;
        try
        {
            string text = File.ReadAllText(SecretPath).Trim();
            if (ulong.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out secret) && secret != 0) return true;
            if (!quiet) Console.Error.WriteLine("vigild: " + SecretPath + " does not hold a secret");
            return false;
        }
        catch (FileNotFoundException)
        {
            if (!quiet) Console.Error.WriteLine("vigild: no " + SecretPath + ": run `vigild protect` first (as root)");
        }
        catch (UnauthorizedAccessException)
        {
            if (!quiet) Console.Error.WriteLine("vigild: cannot read " + SecretPath + ": needs root");
        }
        catch (IOException e)
        {
            if (!quiet) Console.Error.WriteLine("vigild: cannot read " + SecretPath + ": " + e.Message);
        }
        return false;
    }

    private static bool WriteSecret(ulong secret)
    {
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            };
            using (var stream = new FileStream(SecretPath, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(secret.ToString("x16", CultureInfo.InvariantCulture));
                writer.Write('\n');
            }
            File.SetUnixFileMode(SecretPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("vigild: protected, but the secret could not be stored in " + SecretPath + " (" + e.Message + "): "
                + "later protect, lock and events calls will be refused until reset");
            return false;
        }
    }

    private static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    private static string Bytes(byte* bytes, int length)
    {
        var sb = new StringBuilder(length * 2);
        for (int i = 0; i < length; i++) sb.Append(bytes[i].ToString("x2", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    private static string Content(GuardContent content)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < ContentNames.Length; i++)
        {
            if (((ushort)content & (1 << i)) != 0) sb.Append(sb.Length == 0 ? "" : ",").Append(ContentNames[i]);
        }
        return sb.ToString();
    }

    private static string Name(string[] names, int value) => value < names.Length ? names[value] : value.ToString(CultureInfo.InvariantCulture);

    /// <summary>One event as one JSON object (the keys and names COMMON.md fixes).</summary>
    public static string Json(in GuardEvent e)
    {
        int length = e.ContentLength <= GuardEvent.ContentBytes ? e.ContentLength : GuardEvent.ContentBytes;
        string oldBytes, newBytes;
        fixed (byte* o = e.Old) oldBytes = Bytes(o, length);
        fixed (byte* n = e.New) newBytes = Bytes(n, length);
        return "{\"seq\":" + e.Sequence.ToString(CultureInfo.InvariantCulture)
            + ",\"tsc\":" + e.Tsc.ToString(CultureInfo.InvariantCulture)
            + ",\"cpu\":" + e.Cpu.ToString(CultureInfo.InvariantCulture)
            + ",\"object\":\"" + ObjectName(e.Object) + "\""
            + ",\"access\":\"" + Name(AccessNames, (int)e.Access) + "\""
            + ",\"verdict\":\"" + VerdictName(e.Verdict) + "\""
            + ",\"rule\":" + (e.Rule == GuardEvent.DefaultRule ? "-1" : e.Rule.ToString(CultureInfo.InvariantCulture))
            + ",\"region\":\"" + Name(RegionNames, (int)e.Region) + "\""
            + ",\"cpl\":" + e.Cpl.ToString(CultureInfo.InvariantCulture)
            + ",\"rip\":\"" + Hex(e.Rip) + "\""
            + ",\"cr3\":\"" + Hex(e.Cr3) + "\""
            + ",\"gpa\":\"" + Hex(e.Gpa) + "\""
            + ",\"linear\":\"" + Hex(e.Linear) + "\""
            + ",\"detail\":\"" + Hex(e.Detail) + "\""
            + ",\"content\":\"" + Content(e.Content) + "\""
            + ",\"old\":\"" + oldBytes + "\""
            + ",\"new\":\"" + newBytes + "\"}";
    }

    /// <summary>One event as one line of text.</summary>
    public static string Text(in GuardEvent e)
    {
        int length = e.ContentLength <= GuardEvent.ContentBytes ? e.ContentLength : GuardEvent.ContentBytes;
        string oldBytes, newBytes;
        fixed (byte* o = e.Old) oldBytes = Bytes(o, length);
        fixed (byte* n = e.New) newBytes = Bytes(n, length);
        string content = Content(e.Content);
        return $"vigild: event {e.Sequence}: cpu {e.Cpu} {VerdictName(e.Verdict)} {Name(AccessNames, (int)e.Access)} of {ObjectName(e.Object)}"
            + $" by rip {Hex(e.Rip)} ({Name(RegionNames, (int)e.Region)}, cpl {e.Cpl}, cr3 {Hex(e.Cr3)})"
            + $" gpa {Hex(e.Gpa)} linear {Hex(e.Linear)} detail {Hex(e.Detail)}"
            + $" rule {(e.Rule == GuardEvent.DefaultRule ? "default" : e.Rule.ToString(CultureInfo.InvariantCulture))}"
            + (length != 0 ? $" old {oldBytes} new {newBytes}" : "")
            + (content.Length != 0 ? $" [{content}]" : "")
            + $" tsc {e.Tsc}";
    }
}

/// <summary>The hypervisor as vigild reaches it: presence (CPUID), the stub, Status.</summary>
internal static unsafe class Hypervisor
{
    private static bool s_ready;

    /// <summary>Vigil is present and the stub is mapped; says why not on stderr.</summary>
    public static bool Ready()
    {
        if (s_ready) return true;
        if (!Program.VigilPresent(out string vendor))
        {
            Console.Error.WriteLine($"vigild: no Vigil hypervisor here (CPUID 0x40000000 vendor is '{vendor.Trim()}')");
            return false;
        }
        var v0 = System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0);
        bool amd = v0.Ebx == 0x68747541;   // "Auth"enticAMD
        if (!HypercallStub.Initialize(amd))
        {
            Console.Error.WriteLine("vigild: cannot map the hypercall stub (mmap/mprotect failed)");
            return false;
        }
        s_ready = true;
        return true;
    }

    /// <summary>The Status hypercall into <paramref name="report"/>; says why not on stderr.</summary>
    public static bool Status(ref StatusReport report)
    {
        fixed (StatusReport* r = &report)
        {
            // The secret, when this process can read it, makes the report list the guarded ranges (GuardStatus.RangesHidden).
            ulong secret = GuardCommands.SecretIfReadable();
            Span<ulong> regs = [Hypercall.Rax(HypercallFunction.Status), (ulong)r, (ulong)sizeof(StatusReport), secret, 0];
            HypercallStub.Call(regs);
            var status = (HypercallStatus)regs[0];
            if (status != HypercallStatus.Success)
            {
                Console.Error.WriteLine($"vigild: the Status hypercall failed: {status} (needs {regs[2]} bytes)");
                return false;
            }
        }
        if (report.Signature != StatusReport.ExpectedSignature)
        {
            Console.Error.WriteLine($"vigild: the status report has a bad signature 0x{report.Signature:X16}");
            return false;
        }
        return true;
    }

    /// <summary>Whether the guard is locked, from Status (false when Status fails).</summary>
    public static bool Locked()
    {
        StatusReport report = default;
        return Status(ref report) && report.Guard.Locked != 0;
    }

    public static bool IsRoot() => Geteuid() == 0;

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint Geteuid();
}
