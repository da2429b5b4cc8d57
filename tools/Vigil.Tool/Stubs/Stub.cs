using System;
using System.Collections.Generic;
using Iced.Intel;

namespace Vigil.Tool.Stubs;

/// <summary>Which generated C# class declares the binding of a stub.</summary>
internal enum StubBinding
{
    /// <summary>No C# binding: ILC-generated code calls the symbol by name.</summary>
    None,

    /// <summary><c>Internal.Runtime.RuntimeStubs</c> in the core library.</summary>
    Runtime,

    /// <summary><c>Vigil.Platform.Cpu</c>: instructions C# cannot express.</summary>
    Cpu,

    /// <summary><c>Vigil.Hypervisor.Native.HvStubs</c>: VMX/SVM instructions, launch and exit paths, host IDT.</summary>
    Hypervisor,
}

/// <summary>
/// One machine-code routine with a global symbol, assembled with Iced. <see cref="Signature"/> is the
/// C# declaration of its binding (Microsoft x64 calling convention: rcx, rdx, r8, r9 → rax).
/// </summary>
internal sealed record Stub(string Symbol, StubBinding Binding, string Signature, string Summary, Action<StubEmitter> Emit);

/// <summary>A data symbol in the stubs' .data section.</summary>
internal sealed record DataSymbol(string Symbol, string Summary, byte[] Initial);

/// <summary>A place in a stub's code to patch with a symbol's address at link time.</summary>
internal readonly record struct StubRelocation(int Offset, string Symbol, CoffRelocationType Type);

/// <summary>An Iced <see cref="Assembler"/> plus references to symbols outside the stub.</summary>
internal sealed class StubEmitter
{
    private readonly List<(Label Label, int Displacement, string Symbol)> _pending = [];

    public StubEmitter() => Asm = new Assembler(64);

    public Assembler Asm { get; }

    /// <summary><c>call symbol</c> (E8 rel32), resolved by the linker.</summary>
    public void CallExternal(string symbol) => EmitWithRel32([0xE8, 0, 0, 0, 0], 1, symbol);

    /// <summary><c>jmp symbol</c> (E9 rel32), resolved by the linker.</summary>
    public void JumpExternal(string symbol) => EmitWithRel32([0xE9, 0, 0, 0, 0], 1, symbol);

    /// <summary><c>lea rax, [rip + symbol]</c>, resolved by the linker.</summary>
    public void LeaRaxExternal(string symbol) => EmitWithRel32([0x48, 0x8D, 0x05, 0, 0, 0, 0], 3, symbol);

    private void EmitWithRel32(byte[] bytes, int displacement, string symbol)
    {
        // The rel32 field is the last four bytes of each of these instructions, so the COFF REL32
        // addend (the end of the field) equals the end of the instruction.
        Label label = Asm.CreateLabel();
        Asm.Label(ref label);
        Asm.db(bytes);
        _pending.Add((label, displacement, symbol));
    }

    /// <summary>Assembles at address 0 and returns the bytes and relocations.</summary>
    public (byte[] Code, List<StubRelocation> Relocations) Assemble()
    {
        var writer = new CodeWriterImpl();
        AssemblerResult result = Asm.Assemble(writer, 0, BlockEncoderOptions.ReturnNewInstructionOffsets);
        var relocations = new List<StubRelocation>();
        foreach (var (label, displacement, symbol) in _pending)
        {
            relocations.Add(new StubRelocation((int)result.GetLabelRIP(label) + displacement, symbol, CoffRelocationType.Rel32));
        }
        return (writer.ToArray(), relocations);
    }

    private sealed class CodeWriterImpl : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}
