using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text.RegularExpressions;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil symbolize MAP +0xRVA...`: turns the return addresses of a fail-fast report
/// ("FATAL: ... | callers (image+rva): +0x2f41 ...") into method names, using the map file
/// lld-link writes beside each image (out/efi/NAME.map).
/// </summary>
internal static partial class SymbolizeCommand
{
    public static int Run(string[] args)
    {
        if (args.Length < 2) throw new UsageException("usage: vigil symbolize MAP-FILE +0xRVA [+0xRVA ...]");
        var map = MapFile.Load(args[0]);
        for (int i = 1; i < args.Length; i++)
        {
            string text = args[i].TrimStart('+');
            if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) text = text[2..];
            if (!ulong.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong rva))
            {
                throw new UsageException($"'{args[i]}' is not a hexadecimal RVA like +0x2f41");
            }
            Console.WriteLine($"+0x{rva:x}  {map.Describe(rva)}");
        }
        return 0;
    }

    internal sealed partial class MapFile
    {
        private readonly List<(ulong Address, string Name)> _symbols;
        private readonly ulong _imageBase;

        private MapFile(List<(ulong, string)> symbols, ulong imageBase)
        {
            _symbols = symbols;
            _imageBase = imageBase;
        }

        public static MapFile Load(string path)
        {
            if (!File.Exists(path)) throw new ToolException($"no map file {path} (lld-link writes out/efi/NAME.map beside each image)");
            var symbols = new List<(ulong, string)>();
            ulong imageBase = 0x140000000;
            foreach (string line in File.ReadLines(path))
            {
                Match preferred = PreferredBase().Match(line);
                if (preferred.Success) imageBase = ulong.Parse(preferred.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                Match m = Symbol().Match(line);
                if (m.Success) symbols.Add((ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), m.Groups[1].Value));
            }
            symbols.Sort((a, b) => a.Item1.CompareTo(b.Item1));
            return new MapFile(symbols, imageBase);
        }

        public string Describe(ulong rva)
        {
            ulong address = _imageBase + rva;
            int lo = 0, hi = _symbols.Count - 1, best = -1;
            while (lo <= hi)
            {
                int mid = (lo + hi) / 2;
                if (_symbols[mid].Address <= address)
                {
                    best = mid;
                    lo = mid + 1;
                }
                else
                {
                    hi = mid - 1;
                }
            }
            return best < 0 ? "(before the first symbol)" : $"{_symbols[best].Name}+0x{address - _symbols[best].Address:x}";
        }

        [GeneratedRegex(@"Preferred load address is ([0-9a-fA-F]+)")]
        private static partial Regex PreferredBase();

        [GeneratedRegex(@"^\s+[0-9a-fA-F]{4}:[0-9a-fA-F]{8}\s+(\S+)\s+([0-9a-fA-F]{16})\s")]
        private static partial Regex Symbol();
    }
}
