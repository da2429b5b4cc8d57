using System;
using System.Runtime.InteropServices;
using System.Threading;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

/// <summary>GuardState is one static state: every test class that fills it runs in this collection, one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GuardStateCollection
{
    public const string Name = "GuardState";
}

/// <summary>The guard's lock word over Interlocked, for handlers that take it.</summary>
internal readonly unsafe struct GuardLockCpus : INestedMapCpus
{
    public bool TryLock(uint* word) => Interlocked.CompareExchange(ref *word, 1u, 0u) == 0;

    public void Unlock(uint* word) => Volatile.Write(ref *word, 0u);

    public void Fence() => Interlocked.MemoryBarrier();

    public void Kick(uint cpu)
    {
    }

    public void InvalidateLocal(uint cpu)
    {
    }

    public void Pause()
    {
    }
}

/// <summary>
/// A protected guest for the guard handlers: core text at guest-physical 0x100_0000 (64 KiB, executed at
/// 0xffffffff81000000, read-only there), sys_call_table's page at 0x200_0000 (direct-map alias writable at
/// 0xffff888002000000), an unguarded page before it at 0x1ff_f000, text_poke's writable alias of the text at
/// 0x7f00_0000_0000 (two pages), the actor's code at 0xffffffff81008000 (in the text) or in the module area.
/// GuardState holds the two ranges, the text mapping, the built-in rules and a 64-event log.
/// </summary>
internal sealed unsafe class GuardTestGuest : IDisposable
{
    public const ulong TextGpa = 0x100_0000, TextVa = 0xffff_ffff_8100_0000, TextSize = 0x1_0000;
    public const ulong TableGpa = 0x200_0000, TableVa = 0xffff_8880_0200_0000;
    public const ulong PokeVa = 0x7f00_0000_0000;
    public const ulong CodeVa = TextVa + 0x8000;
    public const ulong ModuleCodeVa = 0xffff_ffff_c010_0000, ModuleCodeGpa = 0x300_0000;

    private readonly void* _logMemory;

    public GuardTestGuest(bool strict = false)
    {
        Guest = new FakeGuest();
        for (ulong off = 0; off < TextSize; off += 0x1000) Guest.Map(TextVa + off, TextGpa + off, FakeGuest.Present);
        Guest.Map(PokeVa, TextGpa + 0x0000, FakeGuest.Present | FakeGuest.Writable);
        Guest.Map(PokeVa + 0x1000, TextGpa + 0x1000, FakeGuest.Present | FakeGuest.Writable);
        Guest.Map(TableVa - 0x1000, TableGpa - 0x1000, FakeGuest.Present | FakeGuest.Writable);
        Guest.Map(TableVa, TableGpa, FakeGuest.Present | FakeGuest.Writable);
        Guest.Map(ModuleCodeVa, ModuleCodeGpa, FakeGuest.Present);
        Guest.Page(TextGpa).AsSpan().Fill(0xCC);
        State = new FakeVcpuState { Cr3 = Guest.Cr3, Rip = CodeVa, ExitInstructionLength = 0 };

        GuardState.Reset();
        GuardWrite.Tracker = default;
        Assert.True(GuardState.AddRange(TextGpa, TextSize, GuardObject.KernelText));
        Assert.True(GuardState.AddRange(TableGpa, 0x1000, GuardObject.SysCallTable));
        GuardState.TextLinear = TextVa;
        GuardState.TextGpa = TextGpa;
        GuardState.TextSize = TextSize;
        var rules = new GuardRule[GuardRuleSetHeader.MaxRules];
        GuardRuleSetHeader header = DefaultRules.Write(rules, strict);
        GuardState.SetRules(header, rules.AsSpan(0, (int)header.Count));
        ulong bytes = GuardEventLog.BytesFor(64);
        _logMemory = NativeMemory.AlignedAlloc((nuint)bytes, 16);
        GuardState.Events = GuardEventLog.Initialize(_logMemory, bytes);
        GuardState.Protected = true;
        GuardState.Publish();
    }

    public FakeGuest Guest { get; }

    public FakeVcpuState State { get; }

    public FakeVcpu Vcpu => new(State);

    public void Dispose()
    {
        GuardState.Reset();
        NativeMemory.AlignedFree(_logMemory);
    }

    /// <summary>Places <paramref name="code"/> at the actor's RIP (a fresh code page in the text, or module code).</summary>
    public void Code(params byte[] code)
    {
        ulong va = State.Rip;
        ulong gpa = va >= ModuleCodeVa ? ModuleCodeGpa + (va - ModuleCodeVa) : TextGpa + (va - TextVa);
        code.CopyTo(Guest.Page(gpa).AsSpan((int)(gpa & 0xFFF)));
    }

    public byte[] Bytes(ulong gpa, int length) => Guest.Page(gpa).AsSpan((int)(gpa & 0xFFF), length).ToArray();

    public void Put(ulong gpa, params byte[] bytes) => bytes.CopyTo(Guest.Page(gpa).AsSpan((int)(gpa & 0xFFF)));

    public GuardEvent[] Events()
    {
        var buffer = new GuardEvent[64];
        fixed (GuardEvent* b = buffer)
        {
            int n = GuardState.Events->ReadAfter(0, b, 64, out _);
            return buffer.AsSpan(0, n).ToArray();
        }
    }

    public static byte[] Old(in GuardEvent e)
    {
        var bytes = new byte[e.ContentLength];
        fixed (byte* p = e.Old) new ReadOnlySpan<byte>(p, bytes.Length).CopyTo(bytes);
        return bytes;
    }

    public static byte[] New(in GuardEvent e)
    {
        var bytes = new byte[e.ContentLength];
        fixed (byte* p = e.New) new ReadOnlySpan<byte>(p, bytes.Length).CopyTo(bytes);
        return bytes;
    }
}
