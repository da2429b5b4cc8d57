using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Vigil.Tool.Emulators;

/// <summary>
/// An emulator that ended on its own before the run it was started for was over: it crashed, refused its
/// configuration, or lost a device of the host. Such a run says nothing about the software under test, so
/// the report names the emulator and how it ended (exit status, signal, seconds) and shows its own last
/// words (stderr and stdout, and its log file where it has one) instead of the checks that could not run.
/// </summary>
public sealed class EmulatorFailedException(string message) : Exception(message);

public static class EmulatorFailure
{
    /// <summary>Lines of each of the emulator's own outputs shown in the report.</summary>
    public const int TailLines = 15;

    /// <summary>The report for a run of <paramref name="command"/> that ended on its own before it was done.</summary>
    public static string Describe(EmulatorCommand command, Transcript transcript, string expectation)
    {
        var text = new StringBuilder();
        text.Append($"EMULATOR FAILED (the emulator, not a finding about Vigil): {NameOf(command)} ended on its own {Status(transcript.ExitCode)} after {transcript.Seconds:F2} s, {expectation}.\n");
        text.Append($"  command: {command.Program} {string.Join(' ', command.Arguments)}\n");
        AppendTail(text, "its stderr and stdout", command.OutputFile);
        if (command.LogFile != null) AppendTail(text, "its log", command.LogFile);
        int serialLines = transcript.Lines.Count;
        text.Append(serialLines == 0
            ? "  the serial ports printed nothing.\n"
            : $"  the serial ports printed {serialLines} lines; the last: {transcript.Lines[^1].Port}: {transcript.Lines[^1].Text}\n");
        return text.ToString().TrimEnd('\n');
    }

    /// <summary>"Bochs 2.7 (bochs)", "QEMU (qemu-system-x86_64)".</summary>
    public static string NameOf(EmulatorCommand command) => Path.GetFileName(command.Program) switch
    {
        "bochs" => "Bochs (bochs)",
        string p when p.StartsWith("qemu", StringComparison.Ordinal) => $"QEMU ({p})",
        string p => p,
    };

    /// <summary>
    /// "with status 1", "with status 134 (killed by signal 6, SIGABRT)". .NET reports a child that a signal
    /// ended as 128 + the signal number, as shells do.
    /// </summary>
    public static string Status(int? exitCode)
    {
        if (exitCode is not int code) return "(exit status unknown)";
        if (code is > 128 and < 128 + 65)
        {
            int signal = code - 128;
            string name = signal switch
            {
                1 => "SIGHUP", 2 => "SIGINT", 4 => "SIGILL", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE",
                9 => "SIGKILL", 11 => "SIGSEGV", 13 => "SIGPIPE", 15 => "SIGTERM", _ => "",
            };
            return $"with status {code} (killed by signal {signal}{(name.Length > 0 ? ", " + name : "")})";
        }
        return $"with status {code}";
    }

    /// <summary>The last <paramref name="count"/> non-empty lines of a file, or why there are none.</summary>
    public static IReadOnlyList<string> Tail(string path, int count = TailLines)
    {
        if (!File.Exists(path)) return [];
        string[] lines;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            lines = reader.ReadToEnd().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0).ToArray();
        }
        catch (IOException)
        {
            return [];
        }
        return lines[Math.Max(0, lines.Length - count)..];
    }

    private static void AppendTail(StringBuilder text, string what, string path)
    {
        IReadOnlyList<string> lines = Tail(path);
        if (lines.Count == 0)
        {
            text.Append($"  {what} ({path}): {(File.Exists(path) ? "empty" : "not written")}\n");
            return;
        }
        text.Append($"  last lines of {what} ({path}):\n");
        foreach (string line in lines) text.Append("    | ").Append(line).Append('\n');
    }
}
