using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Tool.Policy;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil policy check FILE`, `compile FILE -o OUT`, `show OUT`, `test FILE EVENTS.jsonl [--before-lock]`
/// (docs/policy.md). Exit codes: 0 done, 1 the policy, blob or events have errors (all of them printed), 2 usage.
/// </summary>
internal static class PolicyCommand
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0) throw new UsageException("policy needs a command: check, compile, show or test");
        // `-o OUT` is the usual spelling for an output; Options knows only `--name value`.
        string[] rest = Array.ConvertAll(args[1..], a => a == "-o" ? "--out" : a);
        var options = new Options(rest);
        switch (args[0])
        {
            case "check":
                {
                    string file = options.Argument("FILE");
                    options.EnsureAllUsed();
                    PolicyCompilation c = Compile(file);
                    return Report(c, file, stdout, stderr, "");
                }
            case "compile":
                {
                    string file = options.Argument("FILE");
                    string output = options.Required("--out");
                    options.EnsureAllUsed();
                    PolicyCompilation c = Compile(file);
                    if (c.Policy == null) return Report(c, file, stdout, stderr, "");
                    byte[] blob = c.Policy.ToBlob();
                    // Never write what the hypervisor would refuse.
                    GuardPolicyError e = GuardPolicyImage.Validate(blob, out _);
                    if (e != GuardPolicyError.None) throw new ToolException($"internal error: the compiled policy does not validate: {GuardPolicyImage.Describe(e)}");
                    string? directory = Path.GetDirectoryName(Path.GetFullPath(output));
                    if (directory != null) Directory.CreateDirectory(directory);
                    File.WriteAllBytes(output, blob);
                    return Report(c, file, stdout, stderr, $" -> {output} ({blob.Length} bytes)");
                }
            case "show":
                {
                    string file = options.Argument("OUT");
                    options.EnsureAllUsed();
                    byte[] blob = ReadAll(file);
                    GuardPolicyError e = GuardPolicyImage.Validate(blob, out GuardPolicyView view, out int rule);
                    if (e != GuardPolicyError.None)
                    {
                        stderr.WriteLine($"{file}: not a usable compiled policy: {GuardPolicyImage.Describe(e)}" + (rule >= 0 ? $" (rule {rule})" : ""));
                        return 1;
                    }
                    stdout.Write(PolicyText.Show(view, file));
                    return 0;
                }
            case "test":
                {
                    string file = options.Argument("FILE");
                    string eventsFile = options.Argument("EVENTS.jsonl");
                    bool beforeLock = options.Flag("--before-lock");
                    options.EnsureAllUsed();
                    return Test(file, eventsFile, !beforeLock, stdout, stderr);
                }
            default:
                throw new UsageException($"unknown policy command '{args[0]}': check, compile, show or test");
        }
    }

    private static byte[] ReadAll(string file)
    {
        try
        {
            return File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ToolException($"cannot read {file}: {e.Message}");
        }
    }

    private static PolicyCompilation Compile(string file) => PolicyCompiler.Compile(Path.GetFileName(file), ReadAll(file));

    private static int Report(PolicyCompilation c, string file, TextWriter stdout, TextWriter stderr, string wrote)
    {
        stderr.Write(c.Format(file));
        int errors = 0, warnings = 0;
        foreach (var d in c.Diagnostics)
        {
            if (d.Severity == PolicySeverity.Error) errors++;
            else warnings++;
        }
        if (c.Policy == null)
        {
            stderr.WriteLine($"{file}: {errors} {(errors == 1 ? "error" : "errors")}" + (warnings > 0 ? $", {warnings} {(warnings == 1 ? "warning" : "warnings")}" : ""));
            return 1;
        }
        CompiledPolicy p = c.Policy;
        stdout.WriteLine($"{file}: ok: {(p.Mode == GuardPolicyMode.AuditOnly ? "audit-only" : "enforce")}, default {PolicyNames.Name(p.Default)}, "
            + $"{p.Rules.Count} {(p.Rules.Count == 1 ? "rule" : "rules")} of {GuardRuleSetHeader.MaxRules}, source sha256 {PolicyText.SourceHash(p.Source)}"
            + (warnings > 0 ? $", {warnings} {(warnings == 1 ? "warning" : "warnings")}" : "") + wrote);
        return 0;
    }

    private static int Test(string file, string eventsFile, bool locked, TextWriter stdout, TextWriter stderr)
    {
        byte[] bytes = ReadAll(file);
        GuardRule[] rules;
        GuardRuleSetHeader header;
        string name;
        var ruleSource = new List<string>();
        if (bytes.Length >= 8 && BitConverter.ToUInt64(bytes, 0) == GuardPolicyHeader.ExpectedSignature)
        {
            GuardPolicyError e = GuardPolicyImage.Validate(bytes, out GuardPolicyView view, out int rule);
            if (e != GuardPolicyError.None)
            {
                stderr.WriteLine($"{file}: not a usable compiled policy: {GuardPolicyImage.Describe(e)}" + (rule >= 0 ? $" (rule {rule})" : ""));
                return 1;
            }
            rules = view.Rules.ToArray();
            header = view.RuleSetHeader;
            name = Encoding.UTF8.GetString(view.Name);
            for (int i = 0; i < rules.Length; i++) ruleSource.Add($"{name} line {view.Lines[i].Line}: {Encoding.UTF8.GetString(view.RuleText(i)).Trim()}");
        }
        else
        {
            PolicyCompilation c = Compile(file);
            if (c.Policy == null) return Report(c, file, stdout, stderr, "");
            stderr.Write(c.Format(file));
            CompiledPolicy p = c.Policy;
            rules = [.. p.Rules];
            header = new GuardRuleSetHeader
            {
                Signature = GuardRuleSetHeader.ExpectedSignature,
                Version = GuardRuleSetHeader.CurrentVersion,
                Count = (uint)rules.Length,
                Default = p.Default,
                AuditOnly = p.Mode == GuardPolicyMode.AuditOnly ? (byte)1 : (byte)0,
            };
            name = p.Name;
            for (int i = 0; i < rules.Length; i++) ruleSource.Add($"line {p.Origins[i].Line}: {c.Lines[p.Origins[i].Line - 1].Trim()}");
        }
        string[] lines;
        try
        {
            lines = File.ReadAllLines(eventsFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ToolException($"cannot read {eventsFile}: {e.Message}");
        }
        var errors = new List<string>();
        List<RecordedEvent> events = PolicyReplay.Read(lines, locked, errors);
        foreach (string error in errors) stderr.WriteLine($"{eventsFile}: {error}");
        stdout.WriteLine($"replaying {events.Count} {(events.Count == 1 ? "event" : "events")} of {eventsFile} through {name} "
            + $"({(header.AuditOnly != 0 ? "audit-only" : "enforce")}, default {PolicyNames.Name(header.Default)}, {rules.Length} rules), as {(locked ? "after" : "before")} Lock:");
        var replayed = PolicyReplay.Replay(header, rules, events);
        stdout.Write(PolicyReplay.Format(replayed, i => ruleSource[i], header.AuditOnly != 0));
        return errors.Count == 0 ? 0 : 1;
    }
}
