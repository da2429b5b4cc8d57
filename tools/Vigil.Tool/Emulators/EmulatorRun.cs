using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;

namespace Vigil.Tool.Emulators;

/// <summary>
/// Runs an emulator headless: follows its serial-port files, timestamps every line, and ends it
/// (by its own PID) at the time limit or when a stop condition holds. Emulator stdout/stderr go to
/// a file next to the transcript (<see cref="EmulatorCommand.OutputFile"/>).
/// </summary>
public static class EmulatorRun
{
    public static Transcript Run(EmulatorCommand command, TimeSpan timeout, Func<Transcript, bool>? stopWhen = null, TextWriter? echo = null)
    {
        foreach (string file in command.SerialFiles.Values) File.Delete(file);
        Directory.CreateDirectory(command.WorkDirectory);
        var info = new ProcessStartInfo(command.Program)
        {
            WorkingDirectory = command.WorkDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in command.Arguments) info.ArgumentList.Add(arg);

        var followers = new List<SerialFollower>();
        foreach (var (port, file) in command.SerialFiles) followers.Add(new SerialFollower(port, file));

        var transcript = new Transcript();
        using var output = new StreamWriter(command.OutputFile);
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {command.Program}");
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();

        bool stopped = false;
        while (true)
        {
            bool exited = process.WaitForExit(100);
            double now = stopwatch.Elapsed.TotalSeconds;
            foreach (SerialFollower follower in followers)
            {
                foreach (string line in follower.Poll(flush: exited))
                {
                    transcript.Add(new SerialLine(now, follower.Port, line));
                    echo?.WriteLine($"[{now,8:F2}] {follower.Port}: {line}");
                }
            }
            if (exited)
            {
                process.WaitForExit();   // lets the last stdout/stderr lines arrive
                transcript.ExitCode = process.ExitCode;
                transcript.EndedOnItsOwn = true;
                break;
            }
            if (stopWhen != null && stopWhen(transcript))
            {
                stopped = true;
            }
            else if (stopwatch.Elapsed > timeout)
            {
                transcript.TimedOut = true;
                stopped = true;
            }
            if (stopped)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                Thread.Sleep(100);
                foreach (SerialFollower follower in followers)
                {
                    foreach (string line in follower.Poll(flush: true)) transcript.Add(new SerialLine(stopwatch.Elapsed.TotalSeconds, follower.Port, line));
                }
                break;
            }
        }
        transcript.Seconds = stopwatch.Elapsed.TotalSeconds;
        transcript.Save(Path.Combine(command.WorkDirectory, "transcript.txt"));
        return transcript;
    }

    /// <summary>
    /// Runs like <see cref="Run"/> and fails with <see cref="EmulatorFailedException"/> when the emulator ended on
    /// its own before the run was over: before <paramref name="stopWhen"/> held, or, without a stop condition,
    /// with a non-zero status. A run the time limit or the stop condition ended is returned as it is.
    /// </summary>
    public static Transcript RunToEnd(EmulatorCommand command, TimeSpan timeout, Func<Transcript, bool>? stopWhen = null, TextWriter? echo = null)
    {
        Transcript transcript = Run(command, timeout, stopWhen, echo);
        if (!transcript.EndedOnItsOwn) return transcript;
        if (stopWhen == null ? transcript.ExitCode == 0 : stopWhen(transcript)) return transcript;
        string expectation = stopWhen == null ? "while a clean exit (status 0) was expected" : "before the run reached its end";
        throw new EmulatorFailedException(EmulatorFailure.Describe(command, transcript, expectation));
    }
}
