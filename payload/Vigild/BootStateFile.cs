using System;
using System.IO;
using System.Text;
using Vigil.Abi;

namespace Vigil.Agent;

/// <summary>
/// What vigil.efi published about this boot (hv/Abi/BootState.cs), read through efivarfs: the one way to
/// learn why the OS runs unprotected when no hypervisor answers.
/// </summary>
internal static class BootStateFile
{
    public static string Path => BootState.EfivarsDirectory + "/" + BootState.EfivarsName;

    /// <summary>The variable's text, or null with the reason it could not be read.</summary>
    public static string? Read(out string why)
    {
        byte[]? data = EfiVariableFile.Read(Path, out why);
        if (data == null)
        {
            if (why.Length == 0)
            {
                why = Directory.Exists(BootState.EfivarsDirectory) && Directory.GetFileSystemEntries(BootState.EfivarsDirectory).Length > 0
                    ? $"no {Path}: this OS was not booted through vigil.efi"
                    : $"efivarfs is not mounted at {BootState.EfivarsDirectory} (mount -t efivarfs efivarfs {BootState.EfivarsDirectory}), or this is no UEFI boot";
            }
            return null;
        }
        if (data.Length < 4)
        {
            why = $"{Path} is {data.Length} bytes long: no attributes, no text";
            return null;
        }
        return Encoding.ASCII.GetString(data, 4, data.Length - 4);   // efivarfs: 4 bytes of attributes, then the data
    }

    /// <summary>One line for vigild status; loud when vigil.efi booted the OS unprotected.</summary>
    public static string Describe()
    {
        string? text = Read(out string why);
        if (text == null) return $"vigild: boot state unknown: {why}";
        if (text.StartsWith(BootState.UnprotectedPrefix, StringComparison.Ordinal))
            return $"vigild: PROTECTION OFF: vigil.efi booted this OS unprotected: {text[BootState.UnprotectedPrefix.Length..]}";
        return $"vigild: boot: {text}";
    }
}
