using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Vigil.Tool.Stubs;

/// <summary>COFF relocation types for AMD64 (PE/COFF specification, "Type Indicators").</summary>
internal enum CoffRelocationType : ushort
{
    Addr64 = 0x0001,
    Rel32 = 0x0004,
}

/// <summary>
/// Writes a minimal AMD64 COFF object (PE/COFF specification §3-§5): sections with raw data and
/// relocations, external symbols defined in them or left undefined for the linker.
/// Deterministic: no timestamps, symbols in definition order.
/// </summary>
internal sealed class CoffObjectWriter
{
    public const uint CodeSection = 0x60500020;   // CNT_CODE | ALIGN_16BYTES | MEM_EXECUTE | MEM_READ
    public const uint DataSection = 0xC0400040;   // CNT_INITIALIZED_DATA | ALIGN_8BYTES | MEM_READ | MEM_WRITE

    private const ushort MachineAmd64 = 0x8664;
    private const byte StorageClassExternal = 2;
    private const ushort TypeFunction = 0x20;

    private readonly List<Section> _sections = [];
    private readonly List<Symbol> _symbols = [];
    private readonly Dictionary<string, int> _symbolIndex = new(StringComparer.Ordinal);

    private sealed record Section(string Name, byte[] Data, uint Characteristics, List<(int Offset, string Symbol, CoffRelocationType Type)> Relocations);

    private sealed record Symbol(string Name, short SectionNumber, int Value, bool IsFunction);

    /// <summary>Adds a section; returns its 1-based section number.</summary>
    public int AddSection(string name, byte[] data, uint characteristics)
    {
        if (Encoding.ASCII.GetByteCount(name) > 8) throw new ArgumentException("section names are at most 8 bytes", nameof(name));
        _sections.Add(new Section(name, data, characteristics, []));
        return _sections.Count;
    }

    public void DefineSymbol(string name, int section, int offset, bool isFunction)
    {
        if (_symbolIndex.TryGetValue(name, out int index))
        {
            if (_symbols[index].SectionNumber != 0) throw new InvalidOperationException($"symbol {name} defined twice");
            _symbols[index] = new Symbol(name, (short)section, offset, isFunction);
            return;
        }
        _symbolIndex[name] = _symbols.Count;
        _symbols.Add(new Symbol(name, (short)section, offset, isFunction));
    }

    public void AddRelocation(int section, int offset, string symbol, CoffRelocationType type)
    {
        if (!_symbolIndex.ContainsKey(symbol))
        {
            _symbolIndex[symbol] = _symbols.Count;
            _symbols.Add(new Symbol(symbol, 0, 0, IsFunction: false));   // undefined: resolved by the linker
        }
        _sections[section - 1].Relocations.Add((offset, symbol, type));
    }

    public byte[] ToArray()
    {
        const int fileHeaderSize = 20, sectionHeaderSize = 40, relocationSize = 10;
        int position = fileHeaderSize + (sectionHeaderSize * _sections.Count);
        var rawPointers = new int[_sections.Count];
        var relocationPointers = new int[_sections.Count];
        for (int i = 0; i < _sections.Count; i++)
        {
            rawPointers[i] = position;
            position += _sections[i].Data.Length;
            relocationPointers[i] = position;
            position += relocationSize * _sections[i].Relocations.Count;
        }
        int symbolTable = position;

        var strings = new MemoryStream();
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.ASCII, leaveOpen: true))
        {
            w.Write(MachineAmd64);
            w.Write((ushort)_sections.Count);
            w.Write(0u);                        // TimeDateStamp: none, for reproducible output
            w.Write((uint)symbolTable);
            w.Write((uint)_symbols.Count);
            w.Write((ushort)0);                 // SizeOfOptionalHeader
            w.Write((ushort)0);                 // Characteristics

            for (int i = 0; i < _sections.Count; i++)
            {
                Section s = _sections[i];
                w.Write(Name8(s.Name));
                w.Write(0u);                    // VirtualSize
                w.Write(0u);                    // VirtualAddress
                w.Write((uint)s.Data.Length);
                w.Write((uint)rawPointers[i]);
                w.Write(s.Relocations.Count > 0 ? (uint)relocationPointers[i] : 0u);
                w.Write(0u);                    // PointerToLinenumbers
                w.Write(checked((ushort)s.Relocations.Count));
                w.Write((ushort)0);             // NumberOfLinenumbers
                w.Write(s.Characteristics);
            }

            foreach (Section s in _sections)
            {
                w.Write(s.Data);
                foreach (var (offset, symbol, type) in s.Relocations)
                {
                    w.Write((uint)offset);
                    w.Write((uint)_symbolIndex[symbol]);
                    w.Write((ushort)type);
                }
            }

            foreach (Symbol symbol in _symbols)
            {
                byte[] name = Encoding.ASCII.GetBytes(symbol.Name);
                if (name.Length <= 8)
                {
                    w.Write(Name8(symbol.Name));
                }
                else
                {
                    w.Write(0u);
                    w.Write((uint)(4 + strings.Length));
                    strings.Write(name);
                    strings.WriteByte(0);
                }
                w.Write(symbol.Value);
                w.Write(symbol.SectionNumber);
                w.Write(symbol.IsFunction ? TypeFunction : (ushort)0);
                w.Write(StorageClassExternal);
                w.Write((byte)0);               // NumberOfAuxSymbols
            }

            w.Write((uint)(4 + strings.Length));
            w.Write(strings.ToArray());
        }
        return stream.ToArray();
    }

    private static byte[] Name8(string name)
    {
        var bytes = new byte[8];
        Encoding.ASCII.GetBytes(name, bytes);
        return bytes;
    }
}
