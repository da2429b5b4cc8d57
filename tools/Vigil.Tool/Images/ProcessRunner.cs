using System;
using System.Diagnostics;
using System.Text;

namespace Vigil.Tool.Images;

/// <summary>Runs a host program to completion and fails with its output when it fails.</summary>
internal static class ProcessRunner
{
    public static string Run(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new ToolException($"cannot start {program}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ToolException($"cannot start {program}: {e.Message} (is it installed? `make deps` installs what the build needs)");
        }
        using (process)
        {
            var stderr = new StringBuilder();
            process.ErrorDataReceived += (_, e) => { if (e.Data != null) stderr.AppendLine(e.Data); };
            process.BeginErrorReadLine();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new ToolException($"{program} {string.Join(' ', args)} failed with exit code {process.ExitCode}:\n{stderr}{stdout}");
            }
            return stdout;
        }
    }
}
