using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;

namespace Vigil.Tool;

/// <summary>What a finished host program printed.</summary>
internal sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>The last lines of both streams, for error messages that must stay readable.</summary>
    public string Tail(int lines = 25)
    {
        var all = (StandardOutput + StandardError).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int skip = Math.Max(0, all.Length - lines);
        return string.Join("\n", all[skip..]);
    }
}

/// <summary>
/// Runs host tools (apt, dpkg-deb, make, busybox, mtools, dotnet). Arguments are
/// passed as a list, never through a shell, so package names and paths need no quoting. Output is
/// captured rather than streamed: the builder prints it only when a step fails.
/// </summary>
internal static class HostProcess
{
    /// <summary>Runs <paramref name="program"/>; a program that is not installed becomes a <see cref="ToolException"/>
    /// naming the Debian package that provides it.</summary>
    public static ProcessResult Run(string program, IEnumerable<string> arguments, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        // apt and make translate their messages; the builder matches some of them and the user reads
        // them in reports, so keep them in English.
        info.Environment["LC_ALL"] = "C.UTF-8";

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new ToolException($"cannot start {program}");
        }
        catch (Win32Exception e)
        {
            throw new ToolException($"cannot run '{program}' ({e.Message}); `make deps` installs the host packages in tools/debian-packages.txt");
        }
        using (process)
        {
            process.StandardInput.Close();
            // Both pipes are drained concurrently: a program that fills one while the other is not read would hang.
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
        }
    }

    /// <summary>Runs <paramref name="program"/> and fails with its output unless it exits with 0; returns its standard output.</summary>
    public static string RunChecked(string program, params string[] arguments)
    {
        ProcessResult result = Run(program, arguments);
        if (result.ExitCode != 0)
        {
            throw new ToolException($"{program} {string.Join(' ', arguments)} failed with exit code {result.ExitCode}:\n{result.Tail()}");
        }
        return result.StandardOutput;
    }

    /// <summary>True when <paramref name="program"/> is found on PATH (checked before long steps, for a clear message).</summary>
    public static bool OnPath(string program)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(dir, program))) return true;
        }
        return false;
    }
}
