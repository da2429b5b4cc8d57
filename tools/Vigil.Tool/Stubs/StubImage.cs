using System;
using System.Collections.Generic;

namespace Vigil.Tool.Stubs;

/// <summary>All stubs assembled and laid out in one .text section (16-byte aligned, int3 padding).</summary>
internal sealed class StubImage
{
    public required byte[] Text { get; init; }

    public required byte[] Data { get; init; }

    /// <summary>Each stub: symbol, offset in .text, and its assembled bytes.</summary>
    public required IReadOnlyList<(Stub Stub, int Offset, byte[] Code)> Placed { get; init; }

    public required IReadOnlyList<(DataSymbol Symbol, int Offset)> PlacedData { get; init; }

    /// <summary>Relocations with offsets relative to the start of .text.</summary>
    public required IReadOnlyList<StubRelocation> Relocations { get; init; }

    public static StubImage Build(IReadOnlyList<Stub> stubs, IReadOnlyList<DataSymbol> data)
    {
        var text = new List<byte>();
        var placed = new List<(Stub, int, byte[])>();
        var relocations = new List<StubRelocation>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (Stub stub in stubs)
        {
            if (!seen.Add(stub.Symbol)) throw new InvalidOperationException($"duplicate stub symbol {stub.Symbol}");
            while (text.Count % 16 != 0) text.Add(0xCC);
            var emitter = new StubEmitter();
            stub.Emit(emitter);
            var (code, stubRelocations) = emitter.Assemble();
            int offset = text.Count;
            placed.Add((stub, offset, code));
            foreach (StubRelocation r in stubRelocations) relocations.Add(r with { Offset = r.Offset + offset });
            text.AddRange(code);
        }

        var bytes = new List<byte>();
        var placedData = new List<(DataSymbol, int)>();
        foreach (DataSymbol symbol in data)
        {
            if (!seen.Add(symbol.Symbol)) throw new InvalidOperationException($"duplicate symbol {symbol.Symbol}");
            while (bytes.Count % 8 != 0) bytes.Add(0);
            placedData.Add((symbol, bytes.Count));
            bytes.AddRange(symbol.Initial);
        }

        return new StubImage { Text = [.. text], Data = [.. bytes], Placed = placed, PlacedData = placedData, Relocations = relocations };
    }

    /// <summary>The COFF object lld-link links into every image.</summary>
    public byte[] ToCoff()
    {
        var coff = new CoffObjectWriter();
        int text = coff.AddSection(".text", Text, CoffObjectWriter.CodeSection);
        int data = coff.AddSection(".data", Data, CoffObjectWriter.DataSection);
        foreach (var (stub, offset, _) in Placed) coff.DefineSymbol(stub.Symbol, text, offset, isFunction: true);
        foreach (var (symbol, offset) in PlacedData) coff.DefineSymbol(symbol.Symbol, data, offset, isFunction: false);
        foreach (StubRelocation r in Relocations) coff.AddRelocation(text, r.Offset, r.Symbol, r.Type);
        return coff.ToArray();
    }
}
