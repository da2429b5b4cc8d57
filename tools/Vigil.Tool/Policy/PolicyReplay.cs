using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Text.Json;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Tool.Policy;

/// <summary>One recorded event (a line of `vigild events --json`) as the rules see it, and what was recorded for it.</summary>
public sealed record RecordedEvent(int Line, ulong Sequence, GuardAttempt Attempt, GuardVerdict? Verdict, int? Rule);

/// <summary>What a policy makes of one recorded event.</summary>
public sealed record ReplayedEvent(RecordedEvent Event, GuardVerdict Verdict, int Rule, GuardVerdict Written);

/// <summary>
/// `vigil policy test`: recorded events replayed through a policy's rules with the hypervisor's own matcher
/// (GuardRules.Judge, compiled in from hv/Core), so an operator sees what a change would do before deploying it.
/// </summary>
public static class PolicyReplay
{
    // vigild's spellings in `vigild events --json` (payload/Vigild/GuardCommands.cs): content flags by bit, "none"
    // for object and access 0. Objects, accesses, regions and verdicts are the policy language's own names.
    private static readonly string[] EventContentNames = ["kernel-patch", "jump-into-new-code", "pinned-bit-cleared", "expected-value", "undecodable", "unchanged", "page-walk-update"];

    /// <summary>
    /// Reads `vigild events --json` lines (blank lines skipped). Every line that cannot be used is an error with its
    /// line number in <paramref name="errors"/>; the others are returned.
    /// </summary>
    public static List<RecordedEvent> Read(IReadOnlyList<string> lines, bool locked, List<string> errors)
    {
        var events = new List<RecordedEvent>();
        for (int i = 0; i < lines.Count; i++)
        {
            string text = lines[i].Trim();
            if (text.Length == 0) continue;
            try
            {
                using var json = JsonDocument.Parse(text);
                events.Add(Event(json.RootElement, i + 1, locked));
            }
            catch (JsonException e)
            {
                errors.Add($"line {i + 1}: not JSON: {e.Message}");
            }
            catch (FormatException e)
            {
                errors.Add($"line {i + 1}: {e.Message}");
            }
        }
        return events;
    }

    private static RecordedEvent Event(JsonElement e, int line, bool locked)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new FormatException("expected a JSON object (one event per line, as `vigild events --json` prints them)");
        var a = new GuardAttempt
        {
            Object = Named(e, "object", PolicyNames.Objects.Where(o => o.Detail == 0).Select(o => (o.Name, o.Object)).Append(("none", GuardObject.None)), "object"),
            Access = Named(e, "access", PolicyNames.Accesses.Select(x => (x.Name, x.Value)).Append(("none", GuardAccess.None)), "access"),
            Region = Optional(e, "region") is null ? ActorRegion.Unknown : Named(e, "region", PolicyNames.Regions.Select(x => (x.Name, x.Value)), "region"),
            Cpl = (byte)Math.Min(Number(e, "cpl", 0), 255),
            Rip = Number(e, "rip", 0),
            Cr3 = Number(e, "cr3", 0),
            Detail = Number(e, "detail", 0),
            Content = Content(Optional(e, "content") ?? ""),
            Locked = locked,
        };
        GuardVerdict? verdict = Optional(e, "verdict") is null ? null : Named(e, "verdict", PolicyNames.Verdicts.Select(x => (x.Name, x.Value)), "verdict");
        int? rule = e.TryGetProperty("rule", out JsonElement r) && r.ValueKind == JsonValueKind.Number && r.TryGetInt32(out int index) ? index : null;
        return new RecordedEvent(line, Number(e, "seq", 0), a, verdict, rule);
    }

    private static string? Optional(JsonElement e, string key)
        => e.TryGetProperty(key, out JsonElement v) ? (v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()) : null;

    private static T Named<T>(JsonElement e, string key, IEnumerable<(string Name, T Value)> names, string what) where T : struct, Enum
    {
        string value = Optional(e, key) ?? throw new FormatException($"no \"{key}\"");
        foreach (var (name, v) in names)
        {
            if (name == value) return v;
        }
        // vigild prints values it has no name for as "<what>-N" (a newer hypervisor than the tool).
        string prefix = what + "-";
        if (value.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(value.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
        {
            return (T)Enum.ToObject(typeof(T), n);
        }
        string? near = PolicyNames.Nearest(value, names.Select(x => x.Name));
        throw new FormatException($"unknown {what} \"{value}\"" + (near != null ? $" (did you mean \"{near}\"?)" : ""));
    }

    private static ulong Number(JsonElement e, string key, ulong fallback)
    {
        if (!e.TryGetProperty(key, out JsonElement v)) return fallback;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong n)) return n;
        string text = v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : v.GetRawText();
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out n)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out n);
        return ok ? n : throw new FormatException($"\"{key}\": '{text}' is not a number");
    }

    private static GuardContent Content(string text)
    {
        var content = GuardContent.None;
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int bit = Array.IndexOf(EventContentNames, part);
            if (bit >= 0) { content |= (GuardContent)(1 << bit); continue; }
            var shape = PolicyNames.Shapes.FirstOrDefault(s => s.Name == part);
            if (shape != null) { content |= shape.Value; continue; }
            string? near = PolicyNames.Nearest(part, EventContentNames);
            throw new FormatException($"unknown content \"{part}\"" + (near != null ? $" (did you mean \"{near}\"?)" : ""));
        }
        return content;
    }

    /// <summary>Each event judged by the rules (the hypervisor's GuardRules.Judge). <see cref="ReplayedEvent.Written"/> is the matching rule's own verdict (before audit-only).</summary>
    public static List<ReplayedEvent> Replay(GuardRuleSetHeader header, ReadOnlySpan<GuardRule> rules, IReadOnlyList<RecordedEvent> events)
    {
        var replayed = new List<ReplayedEvent>();
        foreach (var e in events)
        {
            GuardVerdict verdict = GuardRules.Judge(header, rules, e.Attempt, out ushort rule);
            GuardVerdict written = rule == GuardEvent.DefaultRule ? header.Default : rules[rule].Verdict;
            replayed.Add(new ReplayedEvent(e, verdict, rule == GuardEvent.DefaultRule ? -1 : rule, written));
        }
        return replayed;
    }

    /// <summary>The replay as `vigil policy test` prints it: two lines per event, then a summary.</summary>
    public static string Format(IReadOnlyList<ReplayedEvent> replayed, Func<int, string> ruleSource, bool auditOnly)
    {
        var sb = new StringBuilder();
        int changed = 0;
        var changes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in replayed)
        {
            GuardAttempt a = r.Event.Attempt;
            sb.Append("seq ").Append(r.Event.Sequence).Append(" (line ").Append(r.Event.Line).Append("): ").Append(Describe(a)).Append('\n');
            sb.Append("    -> ").Append(PolicyNames.Name(r.Verdict));
            if (auditOnly && r.Written != r.Verdict) sb.Append(" (audit-only; enforced: ").Append(PolicyNames.Name(r.Written)).Append(')');
            sb.Append(r.Rule < 0 ? " by the default verdict" : $" by rule {r.Rule}, {ruleSource(r.Rule)}");
            if (r.Event.Verdict is { } recorded)
            {
                string was = PolicyNames.Name(recorded) + (r.Event.Rule is int n ? (n < 0 ? " by the default" : $" by rule {n}") : "");
                if (recorded == r.Verdict)
                {
                    sb.Append("  [recorded: ").Append(was).Append(']');
                }
                else
                {
                    sb.Append("  [CHANGED, recorded: ").Append(was).Append(']');
                    changed++;
                    string key = $"{PolicyNames.Name(recorded)} -> {PolicyNames.Name(r.Verdict)}";
                    changes[key] = changes.GetValueOrDefault(key) + 1;
                }
            }
            sb.Append('\n');
        }
        sb.Append(replayed.Count).Append(replayed.Count == 1 ? " event" : " events").Append(": ");
        foreach (var v in PolicyNames.Verdicts)
        {
            int n = replayed.Count(r => r.Verdict == v.Value);
            if (n != 0) sb.Append(v.Name).Append(' ').Append(n).Append(", ");
        }
        sb.Append(changed).Append(" changed from the recorded verdict");
        if (changes.Count > 0) sb.Append(" (").Append(string.Join(", ", changes.Select(c => $"{c.Key}: {c.Value}"))).Append(')');
        sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>An attempt in the language's words: access, object (with its detail), actor, content.</summary>
    public static string Describe(in GuardAttempt a)
    {
        var sb = new StringBuilder();
        sb.Append(PolicyNames.Name(a.Access)).Append(' ').Append(ObjectWithDetail(a));
        sb.Append(" by rip 0x").Append(a.Rip.ToString("x", CultureInfo.InvariantCulture)).Append(" (").Append(PolicyNames.Name(a.Region))
            .Append(", cpl ").Append(a.Cpl).Append(", cr3 0x").Append(a.Cr3.ToString("x", CultureInfo.InvariantCulture)).Append(')');
        if (a.Content != 0) sb.Append(" [").Append(string.Join(", ", PolicyNames.ShapeNames(a.Content))).Append(']');
        sb.Append(a.Locked ? " after lock" : " before lock");
        return sb.ToString();
    }

    private static string ObjectWithDetail(in GuardAttempt a)
    {
        GuardObject o = a.Object;
        ulong detail = a.Detail;
        if (o == GuardObject.SyscallMsr)
        {
            var msr = PolicyNames.Objects.FirstOrDefault(x => x.Object == o && x.Detail == detail && detail != 0);
            return msr?.Name ?? $"syscall-msr 0x{detail:x}";
        }
        if (o is GuardObject.ControlRegister0 or GuardObject.ControlRegister4 or GuardObject.Efer && detail != 0)
        {
            var bits = PolicyNames.Objects.Where(x => x.Object == o && x.Detail != 0 && (x.Detail & detail) != 0).Select(x => x.Name).ToList();
            return bits.Count > 0 ? string.Join(", ", bits) : $"{PolicyNames.Name(o)} bits 0x{detail:x}";
        }
        return PolicyNames.Name(o);
    }
}
