using System;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;
using Xunit;

namespace Vigil.Tests.Hypervisor.Guard;

public sealed unsafe class GuardEventLogTests : IDisposable
{
    private readonly void* _memory;
    private readonly GuardEventLog* _log;

    public GuardEventLogTests()
    {
        ulong bytes = GuardEventLog.BytesFor(4) + 50;   // room for 4 events and a bit: still 4 (a power of two)
        _memory = NativeMemory.AlignedAlloc((nuint)bytes, 16);
        _log = GuardEventLog.Initialize(_memory, bytes);
    }

    public void Dispose() => NativeMemory.AlignedFree(_memory);

    private ulong Append(ulong rip)
    {
        var e = new GuardEvent { Rip = rip, Object = GuardObject.SysCallTable, Verdict = GuardVerdict.Block };
        return _log->Append(ref e);
    }

    private (ulong[] Rips, ulong[] Sequences, ulong Missed) Read(ulong after, int room = 16)
    {
        var buffer = new GuardEvent[room];
        fixed (GuardEvent* b = buffer)
        {
            int n = _log->ReadAfter(after, b, room, out ulong missed);
            var rips = new ulong[n];
            var sequences = new ulong[n];
            for (int i = 0; i < n; i++)
            {
                rips[i] = buffer[i].Rip;
                sequences[i] = buffer[i].Sequence;
            }
            return (rips, sequences, missed);
        }
    }

    [Fact]
    public void Events_get_sequence_numbers_from_one_and_readers_get_those_after_their_cursor()
    {
        Assert.Equal(4u, _log->Capacity);
        Assert.Equal(0UL, _log->Newest);
        Assert.Empty(Read(0).Rips);
        Assert.Equal(1UL, Append(0xA));
        Assert.Equal(2UL, Append(0xB));
        Assert.Equal(3UL, Append(0xC));
        Assert.Equal(new ulong[] { 0xA, 0xB, 0xC }, Read(0).Rips);
        Assert.Equal(new ulong[] { 2, 3 }, Read(1).Sequences);
        Assert.Empty(Read(3).Rips);
        Assert.Empty(Read(99).Rips);
        Assert.Equal(new ulong[] { 0xA }, Read(0, room: 1).Rips);   // a small buffer gets the oldest first
    }

    [Fact]
    public void Overflow_overwrites_the_oldest_and_is_counted_and_told_to_a_reader_behind()
    {
        for (ulong i = 1; i <= 10; i++) Append(0x100 + i);
        Assert.Equal(10UL, _log->Newest);
        Assert.Equal(7UL, _log->Oldest);
        Assert.Equal(6UL, _log->Overwritten);
        var (rips, sequences, missed) = Read(0);
        Assert.Equal(6UL, missed);
        Assert.Equal(new ulong[] { 7, 8, 9, 10 }, sequences);
        Assert.Equal(0x107UL, rips[0]);
        Assert.Equal(1UL, Read(5).Missed);   // event 6 is gone, 7.. are there
        Assert.Equal(0UL, Read(6).Missed);
    }

    [Fact]
    public void Readers_get_copies_that_do_not_change_the_log()
    {
        Append(0xA);
        var buffer = new GuardEvent[1];
        fixed (GuardEvent* b = buffer)
        {
            _log->ReadAfter(0, b, 1, out _);
            b->Rip = 0xBAD;
        }
        Assert.Equal(new ulong[] { 0xA }, Read(0).Rips);
    }

    [Fact]
    public void Verdicts_are_counted_per_object_and_verdict()
    {
        _log->Count(GuardObject.KernelText, GuardVerdict.Allow);
        _log->Count(GuardObject.KernelText, GuardVerdict.Allow);
        _log->Count(GuardObject.SyscallMsr, GuardVerdict.Block);
        _log->Count((GuardObject)200, GuardVerdict.Block);   // out of range: ignored, not written elsewhere
        Assert.Equal(2UL, _log->Counted(GuardObject.KernelText, GuardVerdict.Allow));
        Assert.Equal(1UL, _log->Counted(GuardObject.SyscallMsr, GuardVerdict.Block));
        Assert.Equal(0UL, _log->Counted(GuardObject.SyscallMsr, GuardVerdict.Allow));
    }

    [Fact]
    public void Too_little_or_misaligned_memory_makes_no_log()
    {
        byte* p = (byte*)_memory;
        Assert.True(GuardEventLog.Initialize(p + 8, GuardEventLog.BytesFor(4)) == null);
        Assert.True(GuardEventLog.Initialize(p, GuardEventLog.BytesFor(1)) == null);
        Assert.True(GuardEventLog.Initialize(null, GuardEventLog.BytesFor(4)) == null);
    }
}
