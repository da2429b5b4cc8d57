using System;
using System.Collections.Generic;
using System.IO;

namespace Vigil.Tool.Guest;

/// <summary>
/// Programs of the project that run in the guest (vigild, a NativeAOT Linux program from
/// `dotnet publish payload/Vigild`), with the shared libraries they need taken from the host:
/// the guest is Debian 12 like the build machine, so the host's glibc fits.
/// </summary>
internal static class GuestPrograms
{
    /// <summary>(path in the initramfs, content, executable) for vigild and its libraries.</summary>
    public static IReadOnlyList<(string Path, byte[] Bytes, bool Executable)> Collect(string vigild)
    {
        if (!File.Exists(vigild))
        {
            throw new ToolException($"{vigild} is missing: publish the agent first (`make payload`, or dotnet publish payload/Vigild -c Release -o out/payload)");
        }
        var files = new List<(string, byte[], bool)> { ("bin/vigild", File.ReadAllBytes(vigild), true) };
        foreach (string library in SharedLibraries(HostProcess.RunChecked("ldd", vigild)))
        {
            files.Add((library.TrimStart('/'), File.ReadAllBytes(library), true));
        }
        return files;
    }

    /// <summary>The absolute library paths in `ldd` output ("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)").</summary>
    internal static IReadOnlyList<string> SharedLibraries(string lddOutput)
    {
        var paths = new List<string>();
        foreach (string raw in lddOutput.Split('\n'))
        {
            string line = raw.Trim();
            int arrow = line.IndexOf("=> ", StringComparison.Ordinal);
            string candidate = arrow >= 0 ? line[(arrow + 3)..] : line;
            int space = candidate.IndexOf(' ', StringComparison.Ordinal);
            if (space >= 0) candidate = candidate[..space];
            if (candidate.StartsWith('/') && !paths.Contains(candidate)) paths.Add(candidate);
        }
        return paths;
    }
}
