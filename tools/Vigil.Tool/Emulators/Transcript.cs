using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Vigil.Tool.Emulators;

/// <summary>One line a serial port printed, with the wall-clock seconds since the emulator started.</summary>
public readonly record struct SerialLine(double Seconds, string Port, string Text);

/// <summary>Everything an emulator run printed on its serial ports, in arrival order, and how it ended.</summary>
public sealed class Transcript
{
    private readonly List<SerialLine> _lines = [];

    public IReadOnlyList<SerialLine> Lines => _lines;

    /// <summary>Exit code of the emulator, or null if it was stopped (timeout or stop condition).</summary>
    public int? ExitCode { get; internal set; }

    public bool TimedOut { get; internal set; }

    /// <summary>The emulator exited by itself (it was not ended at the time limit or by the stop condition).</summary>
    public bool EndedOnItsOwn { get; internal set; }

    public double Seconds { get; internal set; }

    internal void Add(SerialLine line) => _lines.Add(line);

    public IEnumerable<SerialLine> On(string port) => _lines.Where(l => l.Port == port);

    public bool Contains(string port, string text) => On(port).Any(l => l.Text.Contains(text, System.StringComparison.Ordinal));

    /// <summary>Seconds at which <paramref name="text"/> first appeared on <paramref name="port"/>; null if never.</summary>
    public double? FirstSeen(string port, string text)
        => On(port).Where(l => l.Text.Contains(text, System.StringComparison.Ordinal)).Select(l => (double?)l.Seconds).FirstOrDefault();

    public int Count(string port, string text) => On(port).Count(l => l.Text.Contains(text, System.StringComparison.Ordinal));

    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (SerialLine l in _lines) sb.Append($"[{l.Seconds,8:F2}] {l.Port}: {l.Text}\n");
        sb.Append($"# {(TimedOut ? "timed out" : ExitCode is int code ? $"exit code {code}" : "stopped")} after {Seconds:F2} s\n");
        return sb.ToString();
    }

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, ToString());
    }
}
