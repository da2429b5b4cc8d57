using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;

namespace Vigil.Tests.Emulator;

/// <summary>One VIGIL-ATTACK line: the technique, whether it landed, the module's or program's details.</summary>
public sealed record AttackLine(string Technique, bool Landed, string Text);

/// <summary>One VIGIL-BENIGN line.</summary>
public sealed record BenignLine(string Name, bool Ok, string Text);

/// <summary>One VIGIL-EVENT line (`vigild events --json`): the fields the checks need, and the line itself.</summary>
public sealed record GuardEventLine(long Seq, string Object, string Verdict, string Text);

/// <summary>
/// What the guard scenario (tests/guest/scenarios/guard.sh) printed on the console: the attack and benign
/// suites' results, the events and the marks that tell which phase caused which event (each "events-mark
/// PHASE seq=N" gives the newest sequence number before PHASE; PHASE's events are those after it, up to
/// the next mark).
/// </summary>
public sealed partial class GuardReport
{
    [GeneratedRegex(@"VIGIL-ATTACK: technique=([a-p]) landed=(yes|no) ?(.*)$")]
    private static partial Regex AttackPattern();

    [GeneratedRegex(@"VIGIL-BENIGN: name=([\w-]+) ok=(yes|no) ?(.*)$")]
    private static partial Regex BenignPattern();

    [GeneratedRegex(@"VIGIL-GUEST: events-mark ([\w-]+) seq=(\d+|none)")]
    private static partial Regex MarkPattern();

    public GuardReport(Transcript transcript)
    {
        foreach (SerialLine line in transcript.On(EmulatorSetup.Com1))
        {
            string text = line.Text.TrimEnd('\r');
            if (AttackPattern().Match(text) is { Success: true } a)
            {
                Attacks.Add(new AttackLine(a.Groups[1].Value, a.Groups[2].Value == "yes", a.Groups[3].Value));
            }
            else if (BenignPattern().Match(text) is { Success: true } b)
            {
                Benign.Add(new BenignLine(b.Groups[1].Value, b.Groups[2].Value == "yes", b.Groups[3].Value));
            }
            else if (MarkPattern().Match(text) is { Success: true } m)
            {
                Marks.Add((m.Groups[1].Value, m.Groups[2].Value == "none" ? null : long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)));
            }
            else if (text.IndexOf("VIGIL-EVENT: ", StringComparison.Ordinal) is int at and >= 0)
            {
                string json = text[(at + "VIGIL-EVENT: ".Length)..];
                try
                {
                    using var document = JsonDocument.Parse(json);
                    JsonElement root = document.RootElement;
                    Events.Add(new GuardEventLine(root.GetProperty("seq").GetInt64(), root.GetProperty("object").GetString() ?? "",
                        root.GetProperty("verdict").GetString() ?? "", json));
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    UnreadableEvents.Add($"{json} ({e.Message})");
                }
            }
        }
        Guarded = transcript.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: guard active=yes");
    }

    public List<AttackLine> Attacks { get; } = [];

    public List<BenignLine> Benign { get; } = [];

    public List<GuardEventLine> Events { get; } = [];

    /// <summary>VIGIL-EVENT lines that were not the JSON the contract promises (seq, object, verdict, ...).</summary>
    public List<string> UnreadableEvents { get; } = [];

    /// <summary>(phase, newest sequence number before it, or null when `vigild events` gave none) in console order.</summary>
    public List<(string Phase, long? Seq)> Marks { get; } = [];

    /// <summary>Whether `vigild protect --lock` succeeded in the guest.</summary>
    public bool Guarded { get; }

    /// <summary>Why a check cannot even start, for every failure message: the guard was not on.</summary>
    public string GuardState => Guarded ? "the guard was on (vigild protect --lock succeeded)"
        : "THE GUARD WAS NOT ON: `vigild protect --lock` failed in the guest (is the hypervisor side of issue 10 merged?)";

    /// <summary>
    /// The events PHASE caused: sequence numbers after its mark up to the next mark's. Null (with the reason)
    /// when the marks cannot tell: the phase never ran, or `vigild events` printed nothing to count from.
    /// </summary>
    public IReadOnlyList<GuardEventLine>? EventsOf(string phase, out string why)
    {
        int i = Marks.FindIndex(m => m.Phase == phase);
        if (i < 0)
        {
            why = $"the scenario printed no events-mark for '{phase}' (it did not get that far)";
            return null;
        }
        if (i + 1 >= Marks.Count)
        {
            why = $"no events-mark after '{phase}' (the scenario did not get past it)";
            return null;
        }
        long? first = Marks[i].Seq, next = Marks[i + 1].Seq;
        if (next == null)
        {
            why = $"`vigild events` reported no sequence number around '{phase}' (seq=none: no events, or no `vigild events` command)";
            return null;
        }
        // Before the first event the mark says none: every event up to the next mark belongs to the phase.
        long after = first ?? 0;
        why = $"events with {after} < seq <= {next}";
        return Events.Where(e => e.Seq > after && e.Seq <= next).ToList();
    }

    public static bool IsBlock(string verdict) => verdict is "block" or "block-and-fault";
}
