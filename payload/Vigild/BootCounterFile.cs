using System;
using System.IO;
using Vigil.Abi;

namespace Vigil.Agent;

/// <summary>
/// The fail-safe boot counter (hv/Abi/BootCounter.cs) through efivarfs: `vigild status` shows it, `vigild protect`
/// and `vigild confirm` reset it once the OS is up and protected, `vigild confirm --retry` after a fail-safe boot.
/// </summary>
internal static class BootCounterFile
{
    public static string Path => BootState.EfivarsDirectory + "/" + BootCounter.EfivarsName;

    /// <summary>The count; 0 when there is no variable; null with the reason when it cannot be read.</summary>
    public static uint? Read(out string why)
    {
        byte[]? data = EfiVariableFile.Read(Path, out why);
        if (data == null) return why.Length == 0 ? 0 : null;
        if (data.Length != 4 + BootCounter.DataBytes)
        {
            why = $"{Path} is {data.Length} bytes long, not {4 + BootCounter.DataBytes}: malformed";
            return null;
        }
        return BootCounter.Decode(data[4], data[5], data[6], data[7]);
    }

    public static string Describe()
    {
        uint? count = Read(out string why);
        return count is uint c
            ? $"vigild: boot counter: {c} of {BootCounter.MaxUnconfirmedStarts} unconfirmed starts (at {BootCounter.MaxUnconfirmedStarts} vigil.efi boots without the hypervisor)"
            : $"vigild: boot counter unknown: {why}";
    }

    /// <summary>Writes 0; null, or why not.</summary>
    public static string? Reset()
    {
        if (!Directory.Exists(BootState.EfivarsDirectory) || Directory.GetFileSystemEntries(BootState.EfivarsDirectory).Length == 0)
            return $"efivarfs is not mounted at {BootState.EfivarsDirectory}";
        return EfiVariableFile.Write(Path, BootCounter.Attributes, stackalloc byte[BootCounter.DataBytes]);
    }

    /// <summary>
    /// `vigild confirm [--retry]`: the OS is up. Resets the counter when the hypervisor answers (protected), or with
    /// --retry after an unprotected boot (the next boot tries the hypervisor again). Exit code.
    /// </summary>
    public static int Confirm(bool retry)
    {
        if (!Hypervisor.IsRoot())
        {
            Console.Error.WriteLine("vigild: confirm needs root (it writes the UEFI variable " + Path + ")");
            return 1;
        }
        uint? before = Read(out _);
        bool present = Program.VigilPresent(out _);
        if (!present && !retry)
        {
            Console.Error.WriteLine(BootStateFile.Describe());
            Console.Error.WriteLine($"vigild: not confirming: this OS runs without the hypervisor; the boot counter stays at {before?.ToString() ?? "?"}"
                + " (`vigild confirm --retry` lets the next boot try the hypervisor again)");
            return 1;
        }
        string? problem = Reset();
        if (problem != null)
        {
            Console.Error.WriteLine("vigild: cannot reset the boot counter: " + problem);
            return 1;
        }
        Console.WriteLine(present
            ? $"vigild: confirmed: the OS is up and protected; boot counter reset (was {before?.ToString() ?? "?"})"
            : $"vigild: boot counter reset (was {before?.ToString() ?? "?"}): the next boot tries the hypervisor again");
        return 0;
    }
}
