using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>A byte buffer as the drain's sink (the hypervisor passes its UART).</summary>
internal struct BufferSink : ILogSink
{
    public List<byte> Bytes;

    public BufferSink() => Bytes = [];

    public readonly void Write(byte value) => Bytes.Add(value);
}

/// <summary>Ring memory from the native heap, as the hypervisor's page pool would give it.</summary>
internal sealed unsafe class RingMemory : IDisposable
{
    public RingMemory(uint records, int cpu = 0)
    {
        Bytes = LogRing.BytesFor(records);
        Memory = NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        new Span<byte>(Memory, (int)Bytes).Fill(0xCC);   // initialization must not depend on zeroed memory
        Ring = LogRing.Initialize(Memory, Bytes, cpu);
    }

    public void* Memory { get; }

    public ulong Bytes { get; }

    public LogRing* Ring { get; }

    public void Dispose() => NativeMemory.AlignedFree(Memory);
}

public unsafe class LogRingTests
{
    [Fact]
    public void Record_frame_and_ring_header_have_their_declared_sizes()
    {
        Assert.Equal(LogRecord.Size, sizeof(LogRecord));
        Assert.Equal(LogRecord.Size, Unsafe.SizeOf<LogRecord>());
        Assert.Equal(0, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Sequence)));
        Assert.Equal(4, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Event)));
        Assert.Equal(6, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Cpu)));
        Assert.Equal(7, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Severity)));
        Assert.Equal(8, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Tsc)));
        Assert.Equal(16, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Arg0)));
        Assert.Equal(40, (int)Marshal.OffsetOf<LogRecord>(nameof(LogRecord.Arg3)));
        Assert.True(sizeof(LogRing) <= LogRing.HeaderSize);
        Assert.Equal(56, LogFrame.Size);
    }

    [Fact]
    public void Crc32_is_the_ieee_one()
    {
        Assert.Equal(0xCBF43926u, LogFrame.Crc32("123456789"u8));
        Assert.Equal(0u, LogFrame.Crc32([]));
    }

    [Fact]
    public void Every_event_has_a_severity_and_a_template_with_valid_placeholders()
    {
        foreach (LogEvent id in Enum.GetValues<LogEvent>())
        {
            if (id == LogEvent.None) continue;
            LogEventInfo info = LogEvents.Describe(id);
            Assert.NotNull(info.Template);
            Assert.InRange(info.Severity, LogSeverity.Error, LogSeverity.Trace);
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(info.Template!, "{[^}]*}"))
            {
                Assert.Matches("^{[0-3](:x)?}$", m.Value);
            }
        }
        Assert.Null(LogEvents.Describe((LogEvent)9999).Template);
        Assert.Equal(LogSeverity.Warn, LogEvents.SeverityOf(LogEvent.ExitUnexpected));
        Assert.Equal(LogSeverity.Trace, LogEvents.SeverityOf(LogEvent.Exit));
    }

    [Fact]
    public void Capacity_is_the_largest_power_of_two_that_fits_and_tiny_memory_is_refused()
    {
        using var memory = new RingMemory(16);
        Assert.Equal(16u, memory.Ring->Capacity);
        Assert.Equal(0u, memory.Ring->Count);
        Assert.Equal(3, new RingMemory(16, cpu: 3).Ring->Cpu);
        byte* block = stackalloc byte[LogRing.HeaderSize + (LogRecord.Size * 7)];
        Assert.Equal(4u, LogRing.Initialize(block, (ulong)(LogRing.HeaderSize + (LogRecord.Size * 7)), 0)->Capacity);
        Assert.True(LogRing.Initialize(block, LogRing.HeaderSize + LogRecord.Size, 0) == null);
        Assert.True(LogRing.Initialize(null, 4096, 0) == null);
    }

    [Fact]
    public void Records_come_out_in_order_with_their_fields_and_the_declared_severity()
    {
        using var memory = new RingMemory(8, cpu: 2);
        Assert.True(memory.Ring->Write(1000, LogEvent.ExitUnexpected, 0x30, 0xFFFF_FFFF_8100_0000));
        Assert.True(memory.Ring->Write(2000, LogEvent.CpuVirtualized, 5, 1, 2, 3));
        var sink = new BufferSink();
        Assert.Equal(2, memory.Ring->Drain(ref sink, 10));
        LogRecord[] records = Frames(sink.Bytes);
        Assert.Equal(2, records.Length);
        Assert.Equal(0u, records[0].Sequence);
        Assert.Equal(LogEvent.ExitUnexpected, records[0].Event);
        Assert.Equal(LogSeverity.Warn, records[0].Severity);
        Assert.Equal(2, records[0].Cpu);
        Assert.Equal(1000ul, records[0].Tsc);
        Assert.Equal(0x30ul, records[0].Arg0);
        Assert.Equal(0xFFFF_FFFF_8100_0000ul, records[0].Arg1);
        Assert.Equal(1u, records[1].Sequence);
        Assert.Equal(LogSeverity.Info, records[1].Severity);
        Assert.Equal([5ul, 1, 2, 3], new[] { records[1].Arg0, records[1].Arg1, records[1].Arg2, records[1].Arg3 });
        Assert.Equal(0u, memory.Ring->Count);
        Assert.Equal(0, memory.Ring->Drain(ref sink, 10));
    }

    [Fact]
    public void Wraps_around_many_times_with_bounded_drains()
    {
        using var memory = new RingMemory(4);
        var sink = new BufferSink();
        uint expected = 0;
        for (int round = 0; round < 100; round++)
        {
            for (int i = 0; i < 3; i++) Assert.True(memory.Ring->Write((ulong)round, LogEvent.Exit, (ulong)(round * 3 + i)));
            while (memory.Ring->Count > 0) Assert.InRange(memory.Ring->Drain(ref sink, 2), 1, 2);
        }
        foreach (LogRecord record in Frames(sink.Bytes))
        {
            Assert.Equal(expected, record.Sequence);
            Assert.Equal((ulong)expected, record.Arg0);
            expected++;
        }
        Assert.Equal(300u, expected);
        Assert.Equal(0ul, memory.Ring->Dropped);
    }

    [Fact]
    public void Overflow_drops_new_records_counts_them_and_the_drain_reports_them_once()
    {
        using var memory = new RingMemory(4, cpu: 1);
        for (int i = 0; i < 10; i++) memory.Ring->Write(0, LogEvent.Exit, (ulong)i);
        Assert.Equal(6ul, memory.Ring->Dropped);
        Assert.Equal(4u, memory.Ring->Count);

        var sink = new BufferSink();
        Assert.Equal(5, memory.Ring->Drain(ref sink, 100));
        LogRecord[] records = Frames(sink.Bytes);
        Assert.Equal(LogEvent.RecordsDropped, records[0].Event);
        Assert.Equal(LogSeverity.Warn, records[0].Severity);
        Assert.Equal(1, records[0].Cpu);
        Assert.Equal(6ul, records[0].Arg0);   // since the last report
        Assert.Equal(6ul, records[0].Arg1);   // in total
        Assert.Equal([0ul, 1, 2, 3], records[1..].Select(r => r.Arg0));

        // The next write after the drops shows the gap in sequence numbers: 4-9 were used by dropped writes.
        memory.Ring->Write(0, LogEvent.Exit, 10);
        for (int i = 0; i < 5; i++) memory.Ring->Write(0, LogEvent.Exit, 11);
        sink = new BufferSink();
        memory.Ring->Drain(ref sink, 100);
        records = Frames(sink.Bytes);
        Assert.Equal(LogEvent.RecordsDropped, records[0].Event);
        Assert.Equal(2ul, records[0].Arg0);
        Assert.Equal(8ul, records[0].Arg1);
        Assert.Equal(10u, records[1].Sequence);
        sink = new BufferSink();
        Assert.Equal(0, memory.Ring->Drain(ref sink, 100));   // reported once only
    }

    [Fact]
    public void A_drain_budget_of_one_still_reports_drops_first()
    {
        using var memory = new RingMemory(2);
        for (int i = 0; i < 5; i++) memory.Ring->Write(0, LogEvent.Exit);
        var sink = new BufferSink();
        Assert.Equal(1, memory.Ring->Drain(ref sink, 1));
        Assert.Equal(LogEvent.RecordsDropped, Frames(sink.Bytes)[0].Event);
        Assert.Equal(2u, memory.Ring->Count);
    }

    [Fact]
    public void Trace_is_compiled_out_without_vigil_trace()
    {
        using var memory = new RingMemory(4);
        int evaluated = 0;
        memory.Ring->Trace(0, LogEvent.Exit, (ulong)++evaluated);
        Assert.Equal(0u, memory.Ring->Count);
        Assert.Equal(0, evaluated);
    }

    /// <summary>Frames back to records, checking marker and CRC (the decoder's job, done independently here).</summary>
    internal static LogRecord[] Frames(List<byte> bytes)
    {
        Assert.Equal(0, bytes.Count % LogFrame.Size);
        var records = new List<LogRecord>();
        byte[] all = [.. bytes];
        for (int i = 0; i < all.Length; i += LogFrame.Size)
        {
            Assert.Equal([0xFE, (byte)'V', (byte)'L', 1], all[i..(i + 4)]);
            Assert.Equal(LogFrame.Crc32(all.AsSpan(i + 3, 1 + LogRecord.Size)), BitConverter.ToUInt32(all, i + 4 + LogRecord.Size));
            records.Add(MemoryMarshal.Read<LogRecord>(all.AsSpan(i + 4, LogRecord.Size)));
        }
        return [.. records];
    }
}
