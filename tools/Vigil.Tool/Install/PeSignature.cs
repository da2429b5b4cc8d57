using System;
using System.IO;

namespace Vigil.Tool.Install;

/// <summary>Whether a PE image carries an Authenticode signature: a non-empty certificate table (data directory 4, PE/COFF spec).</summary>
public static class PeSignature
{
    public static bool IsSigned(string path)
    {
        byte[] pe = File.ReadAllBytes(path);
        if (pe.Length < 0x40 || pe[0] != 'M' || pe[1] != 'Z') throw new ToolException($"{path} is not a PE image");
        int header = BitConverter.ToInt32(pe, 0x3C);
        if (header < 0 || header + 24 + 2 > pe.Length) throw new ToolException($"{path}: PE header offset out of range");
        int optional = header + 24;
        int directories = BitConverter.ToUInt16(pe, optional) switch
        {
            0x20B => optional + 112,   // PE32+
            0x10B => optional + 96,    // PE32
            var m => throw new ToolException($"{path}: unknown optional header magic 0x{m:x}"),
        };
        int security = directories + (4 * 8);
        if (security + 8 > pe.Length) return false;
        return BitConverter.ToUInt32(pe, security) != 0 && BitConverter.ToUInt32(pe, security + 4) != 0;
    }
}
