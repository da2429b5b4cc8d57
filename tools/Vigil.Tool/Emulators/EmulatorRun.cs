using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;

namespace Vigil.Tool.Emulators;

/// <summary>
/// Runs an emulator headless: follows its serial-port files, timestamps every line, and ends it
/// (by its own PID) at the time limit or when a stop condition holds. Emulator stdout/stderr go to
/// a file next to the transcript.
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
        using var output = new StreamWriter(Path.Combine(command.WorkDirectory, "emulator-output.txt"));
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
                transcript.ExitCode = process.ExitCode;
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
}
