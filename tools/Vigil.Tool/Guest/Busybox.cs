using System;
using System.Collections.Generic;
using System.Linq;

namespace Vigil.Tool.Guest;

/// <summary>The applets of the guest's busybox, asked from the binary itself.</summary>
internal static class Busybox
{
    /// <summary>Runs <c>busybox --list</c> on the extracted busybox-static. It is a static x86-64 binary,
    /// so the host can run it; the list then always matches the binary that goes into the guest.</summary>
    public static IReadOnlyList<string> Applets(string busyboxPath)
    {
        ProcessResult result = HostProcess.Run(busyboxPath, ["--list"]);
        if (result.ExitCode != 0) throw new ToolException($"{busyboxPath} --list failed (exit {result.ExitCode}):\n{result.Tail()}");
        string[] applets = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        // Init depends on these; a busybox configured without them would fail only inside the guest.
        foreach (string needed in new[] { "sh", "mount", "insmod", "dmesg", "poweroff", "stty", "setsid", "cttyhack" })
        {
            if (!applets.Contains(needed)) throw new ToolException($"{busyboxPath} has no '{needed}' applet");
        }
        return applets;
    }
}
