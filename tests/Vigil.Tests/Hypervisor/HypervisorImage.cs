using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>One function of a linked image: its symbol, address and machine code.</summary>
public sealed record ImageFunction(string Name, ulong Address, byte[] Code);

/// <summary>
/// The code of a built image (out/efi/vigil-hv.efi by default, or the file VIGIL_SCAN_IMAGE names), cut
/// into functions by the linker's map (<c>/map</c>, next to the image): every public symbol in an
/// executable section starts a function that runs to the next symbol or the section's end.
/// </summary>
public sealed partial class HypervisorImage
{
    private const uint SectionExecutable = 0x2000_0000;   // IMAGE_SCN_MEM_EXECUTE (PE/COFF §3.1)

    public required string Path { get; init; }

    public required IReadOnlyList<ImageFunction> Functions { get; init; }

    public ImageFunction Function(string name) => Functions.Single(f => f.Name == name);

    public static HypervisorImage Load()
    {
        string path = Environment.GetEnvironmentVariable("VIGIL_SCAN_IMAGE") is { Length: > 0 } chosen
            ? chosen
            : System.IO.Path.Combine(Repository.Root(), "out", "efi", "vigil-hv.efi");
        Assert.True(File.Exists(path), $"{path} is missing: `make build` builds it");
        string map = System.IO.Path.ChangeExtension(path, ".map");
        Assert.True(File.Exists(map), $"{map} is missing: lld-link writes it with the image (/map)");
        return Parse(path, File.ReadAllBytes(path), File.ReadAllLines(map));
    }

    public static HypervisorImage Parse(string path, byte[] pe, IEnumerable<string> mapLines)
    {
        int nt = BitConverter.ToInt32(pe, 0x3C);
        Assert.Equal(0x00004550u, BitConverter.ToUInt32(pe, nt));
        int sections = BitConverter.ToUInt16(pe, nt + 6);
        int optional = nt + 24;
        ulong imageBase = BitConverter.ToUInt64(pe, optional + 24);
        int table = optional + BitConverter.ToUInt16(pe, nt + 20);
        var code = new List<(ulong Start, ulong End, int File)>();
        for (int i = 0; i < sections; i++)
        {
            int at = table + (40 * i);
            uint virtualSize = BitConverter.ToUInt32(pe, at + 8);
            uint rva = BitConverter.ToUInt32(pe, at + 12);
            uint rawSize = BitConverter.ToUInt32(pe, at + 16);
            int raw = BitConverter.ToInt32(pe, at + 20);
            uint characteristics = BitConverter.ToUInt32(pe, at + 36);
            if ((characteristics & SectionExecutable) == 0) continue;
            code.Add((imageBase + rva, imageBase + rva + Math.Min(virtualSize, rawSize), raw));
        }

        var symbols = new SortedDictionary<ulong, string>();
        foreach (string line in mapLines)
        {
            Match m = MapSymbol().Match(line);
            if (!m.Success) continue;
            ulong address = ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (!code.Any(c => address >= c.Start && address < c.End)) continue;
            // Two names for one address (a C# method and its [UnmanagedCallersOnly] entry point): the entry point's.
            if (!symbols.TryAdd(address, m.Groups[1].Value) && m.Groups[1].Value.StartsWith("vigil_", StringComparison.Ordinal)) symbols[address] = m.Groups[1].Value;
        }

        var functions = new List<ImageFunction>();
        var starts = symbols.Keys.ToList();
        for (int i = 0; i < starts.Count; i++)
        {
            var section = code.Single(c => starts[i] >= c.Start && starts[i] < c.End);
            ulong end = i + 1 < starts.Count && starts[i + 1] < section.End ? starts[i + 1] : section.End;
            int offset = section.File + (int)(starts[i] - section.Start);
            functions.Add(new ImageFunction(symbols[starts[i]], starts[i], pe[offset..(offset + (int)(end - starts[i]))]));
        }
        return new HypervisorImage { Path = path, Functions = functions };
    }

    // " 0005:00008fc0       vigil_host_exception       0000000140013fc0     vigil-hv.obj"
    [GeneratedRegex(@"^\s*[0-9a-fA-F]{4}:[0-9a-fA-F]{8}\s+(\S+)\s+([0-9a-fA-F]{16})\s")]
    private static partial Regex MapSymbol();
}
