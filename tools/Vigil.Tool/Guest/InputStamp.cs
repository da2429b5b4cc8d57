using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;

namespace Vigil.Tool.Guest;

/// <summary>
/// A digest of everything a build step reads, kept next to what it wrote: when the digest of today's
/// inputs equals the stamp and the outputs exist, the step is skipped (a second `make guest` with nothing
/// changed costs no module build and no compression). Contents are hashed, not timestamps, so a checkout
/// or a copy that touches files does not cause a rebuild and an edit always does.
/// </summary>
internal sealed class InputStamp
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    /// <summary>Adds a named value (a version, an option): the name keeps "a"+"bc" apart from "ab"+"c".</summary>
    public InputStamp Add(string name, string value) => Add(name, Encoding.UTF8.GetBytes(value));

    public InputStamp Add(string name, byte[] bytes)
    {
        _hash.AppendData(Encoding.UTF8.GetBytes(name));
        _hash.AppendData(BitConverter.GetBytes((long)bytes.Length));
        _hash.AppendData(bytes);
        return this;
    }

    /// <summary>Adds every file under <paramref name="directory"/> by its relative path, in ordinal order.</summary>
    public InputStamp AddTree(string directory)
    {
        var files = new List<string>(Directory.GetFiles(directory, "*", SearchOption.AllDirectories));
        files.Sort(StringComparer.Ordinal);
        foreach (string file in files) Add(Path.GetRelativePath(directory, file).Replace('\\', '/'), File.ReadAllBytes(file));
        return this;
    }

    /// <summary>The digest in hex; the stamp can take no more input afterwards.</summary>
    public string Finish() => Convert.ToHexString(_hash.GetHashAndReset());

    /// <summary>True when <paramref name="stampFile"/> holds <paramref name="digest"/> and every output exists.</summary>
    public static bool IsCurrent(string stampFile, string digest, params string[] outputs)
    {
        if (!File.Exists(stampFile) || File.ReadAllText(stampFile).Trim() != digest) return false;
        foreach (string output in outputs)
        {
            if (!File.Exists(output)) return false;
        }
        return true;
    }

    /// <summary>Written after the outputs are complete, so an interrupted step is redone.</summary>
    public static void Record(string stampFile, string digest) => File.WriteAllText(stampFile, digest + "\n");
}
