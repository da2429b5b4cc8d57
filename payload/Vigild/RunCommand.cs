using System;
using System.IO;
using Vigil.Abi;

namespace Vigil.Agent;

/// <summary>
/// `vigild run [--jsonl FILE]`: the service (packaging/systemd/vigild.service). Says what this boot is (protected, or
/// why not), then follows the guard's events forever: one line each on stdout with a syslog priority prefix that
/// the journal reads (sd-daemon(3): "&lt;N&gt;", only when stdout is the journal, JOURNAL_STREAM set), and optionally one
/// JSON object per line appended to FILE.
/// </summary>
internal static class RunCommand
{
    // syslog(3) priorities.
    public const int Err = 3, Warning = 4, Notice = 5, Info = 6;

    /// <summary>The priority a verdict is logged with: a blocked attempt is a warning (err when the CPU faulted), an audited one a notice.</summary>
    public static int Priority(GuardVerdict verdict) => verdict switch
    {
        GuardVerdict.Allow => Info,
        GuardVerdict.Audit => Notice,
        GuardVerdict.Block => Warning,
        _ => Err,
    };

    public static int Run(string? jsonl)
    {
        bool journal = Environment.GetEnvironmentVariable("JOURNAL_STREAM") != null;
        string boot = BootStateFile.Describe();
        Log(journal, boot.Contains("PROTECTION OFF", StringComparison.Ordinal) ? Err : Info, boot);
        Log(journal, Info, BootCounterFile.Describe());
        if (!Program.VigilPresent(out _))
        {
            Log(journal, Err, "vigild: no Vigil hypervisor answers: nothing to follow");
            return 1;
        }
        StreamWriter? file = null;
        if (jsonl != null)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(jsonl))!);
                file = new StreamWriter(new FileStream(jsonl, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log(journal, Err, $"vigild: cannot append to {jsonl}: {e.Message}");
                return 1;
            }
        }
        Log(journal, Info, "vigild: following the guard's events" + (file != null ? $" (also to {jsonl})" : ""));
        try
        {
            return GuardCommands.Events(0, follow: true, json: false, sink: e =>
            {
                Log(journal, Priority(e.Verdict), GuardCommands.Text(e));
                file?.WriteLine(GuardCommands.Json(e));
            });
        }
        finally
        {
            file?.Dispose();
        }
    }

    private static void Log(bool journal, int priority, string line)
    {
        Console.WriteLine(journal ? $"<{priority}>{line}" : line);
        Console.Out.Flush();
    }
}
