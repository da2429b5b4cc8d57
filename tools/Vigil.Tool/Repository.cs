using System;
using System.IO;

namespace Vigil.Tool;

/// <summary>Finds the repository the tool works on (the folder holding Vigil.slnx).</summary>
public static class Repository
{
    public static string Root()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Vigil.slnx"))) return dir.FullName;
            }
        }
        throw new UsageException("cannot find the Vigil repository (no Vigil.slnx above the current directory); pass --root");
    }

    public static string Out(string root) => Path.Combine(root, "out");
}
