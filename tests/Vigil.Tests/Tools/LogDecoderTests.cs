using System;
using System.IO;
using System.Linq;
using System.Text;
using Vigil.Hypervisor.Core;
using Vigil.Tests.Hypervisor;
using Vigil.Tool.Logs;
using Xunit;

namespace Vigil.Tests.Tools;

public unsafe class LogDecoderTests
{
    private static byte[] Frames(params (LogEvent Id, ulong A0, ulong A1)[] events)
    {
        using var memory = new RingMemory(64, cpu: 1);
        foreach (var (id, a0, a1) in events) memory.Ring->Write(7, id, a0, a1);
        var sink = new BufferSink();
        memory.Ring->Drain(ref sink, 100);
        return [.. sink.Bytes];
    }

    [Fact]
    public void Round_trip_record_to_bytes_to_decoded_text()
    {
        LogDecoding decoding = LogDecoder.Decode(Frames((LogEvent.ExitUnexpected, 0x30, 0xFFFF_FFFF_8100_0000), (LogEvent.HypervisorStarted, 4, 0x200000)));
        Assert.Equal(2, decoding.Records);
        Assert.Equal(
            ["[cpu 1] warn: unexpected exit 0x30 at rip 0xffffffff81000000", "[cpu 1] info: hypervisor started: 4 cpus, 0x200000 bytes reserved at 0x0"],
            decoding.Entries.Select(e => e.Text));
        Assert.Equal(0x30ul, decoding.Entries[0].Record.Arg0);
        Assert.Equal(7ul, decoding.Entries[0].Record.Tsc);
        Assert.StartsWith("                   7 [cpu 1]", LogDecoder.Format(decoding.Entries[0].Record, tsc: true));
    }

    [Fact]
    public void Frames_survive_interleaved_text_in_arrival_order()
    {
        byte[] frames = Frames((LogEvent.CpuVirtualized, 0, 1), (LogEvent.PolicyLocked, 0x1000, 0));
        byte[] capture =
        [
            .. "\u001b[2J\u001b[01;01HBdsDxe: loading Boot0001\r\n"u8,
            .. "vigil: starting the hyper"u8,
            .. frames.AsSpan(0, LogFrame.Size),
            .. "visor\r\n"u8,
            .. frames.AsSpan(LogFrame.Size),
            .. "EFI stub: Booting Linux Kernel...\r\n"u8,
        ];
        LogDecoding decoding = LogDecoder.Decode(capture);
        Assert.Equal(
            [
                "BdsDxe: loading Boot0001",
                "vigil: starting the hyper",
                "[cpu 1] info: cpu virtualized (apic id 0, vendor 1)",
                "visor",
                "[cpu 1] info: policy locked by the agent (cr3 0x1000)",
                "EFI stub: Booting Linux Kernel...",
            ],
            decoding.Entries.Select(e => e.Text));
        Assert.Equal(0, decoding.CorruptFrames);
    }

    [Fact]
    public void A_corrupted_frame_is_reported_and_the_next_one_still_found()
    {
        byte[] frames = Frames((LogEvent.ExitUnexpected, 1, 2), (LogEvent.ExitUnexpected, 3, 4), (LogEvent.ExitUnexpected, 5, 6));
        frames[LogFrame.Size + 20] ^= 0x40;   // one flipped bit in the second record
        LogDecoding decoding = LogDecoder.Decode([.. "text\n"u8, .. frames]);
        Assert.Equal(1, decoding.CorruptFrames);
        Assert.Equal(2, decoding.Records);
        Assert.Equal([LogEntryKind.Text, LogEntryKind.Record, LogEntryKind.Corrupt, LogEntryKind.Missing, LogEntryKind.Record], decoding.Entries.Select(e => e.Kind));
        Assert.Contains("checksum mismatch", decoding.Entries[2].Text);
        Assert.Equal(1ul, decoding.Entries[3].Count);   // sequence 1 never arrived
        Assert.Equal(1ul, decoding.Missing[1]);
    }

    [Fact]
    public void Text_inserted_inside_a_frame_breaks_only_that_frame()
    {
        byte[] frames = Frames((LogEvent.ExitUnexpected, 1, 2), (LogEvent.ExitUnexpected, 3, 4));
        byte[] capture = [.. frames.AsSpan(0, 30), .. "Hello\n"u8, .. frames.AsSpan(30), .. "after\n"u8];
        LogDecoding decoding = LogDecoder.Decode(capture);
        Assert.Equal(1, decoding.CorruptFrames);
        Assert.Equal(1, decoding.Records);
        Assert.Equal(3ul, decoding.Entries.Single(e => e.Kind == LogEntryKind.Record).Record.Arg0);
        Assert.Equal("after", decoding.Entries.Last().Text);
    }

    [Fact]
    public void A_frame_that_lost_bytes_does_not_hide_the_next_one()
    {
        byte[] frames = Frames((LogEvent.ExitUnexpected, 1, 2), (LogEvent.ExitUnexpected, 3, 4));
        byte[] capture = [.. frames.AsSpan(0, 20), .. frames.AsSpan(LogFrame.Size)];
        LogDecoding decoding = LogDecoder.Decode(capture);
        Assert.Equal([LogEntryKind.Corrupt, LogEntryKind.Record], decoding.Entries.Select(e => e.Kind));
        Assert.Equal(3ul, decoding.Entries[1].Record.Arg0);
    }

    [Fact]
    public void Random_garbage_with_frames_hidden_in_it_yields_exactly_those_frames()
    {
        var random = new Random(42);
        byte[] frames = Frames(Enumerable.Range(0, 20).Select(i => (LogEvent.Exit, (ulong)i, 0ul)).ToArray());
        var capture = new MemoryStream();
        for (int i = 0; i < 20; i++)
        {
            byte[] noise = new byte[random.Next(0, 200)];
            random.NextBytes(noise);
            capture.Write(noise);
            capture.Write(frames, i * LogFrame.Size, LogFrame.Size);
        }
        LogDecoding decoding = LogDecoder.Decode(capture.ToArray());
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (ulong)i), decoding.Entries.Where(e => e.Kind == LogEntryKind.Record).Select(e => e.Record.Arg0));
        Assert.Empty(decoding.Missing);
    }

    [Fact]
    public void Dropped_records_are_reported_with_the_gap_they_left()
    {
        using var memory = new RingMemory(2, cpu: 0);
        for (int i = 0; i < 5; i++) memory.Ring->Write(0, LogEvent.ExitUnexpected, (ulong)i);
        var sink = new BufferSink();
        memory.Ring->Drain(ref sink, 100);
        memory.Ring->Write(0, LogEvent.ExitUnexpected, 5);
        memory.Ring->Drain(ref sink, 100);
        LogDecoding decoding = LogDecoder.Decode([.. sink.Bytes]);
        string[] lines = decoding.Entries.Select(e => e.Text).ToArray();
        Assert.Equal("[cpu 0] warn: log ring full: 3 records dropped (3 in total on this cpu)", lines[0]);
        Assert.Contains("[cpu 0] 3 records missing before #5", lines[3]);
        Assert.Equal(3ul, decoding.Dropped[0]);
        Assert.Equal(3ul, decoding.Missing[0]);
    }

    [Fact]
    public void Unknown_events_and_cut_off_frames_are_shown_not_hidden()
    {
        var record = new LogRecord { Event = (LogEvent)999, Severity = LogSeverity.Error, Cpu = 3, Arg0 = 0xAB };
        Assert.Equal("[cpu 3] error: event 999 (unknown to this tool): 0xab 0x0 0x0 0x0", LogDecoder.Format(record));
        byte[] frames = Frames((LogEvent.ExitUnexpected, 1, 2));
        LogDecoding decoding = LogDecoder.Decode([.. "boot\n"u8, .. frames.AsSpan(0, 40)]);
        Assert.Equal(LogEntryKind.Incomplete, decoding.Entries.Last().Kind);
    }

    [Fact]
    public void The_log_command_prints_text_records_and_a_summary()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, [.. "line one\r\n"u8, .. Frames((LogEvent.ExitUnexpected, 0x30, 0x1000))]);
            var output = new StringWriter();
            TextWriter original = Console.Out;
            Console.SetOut(output);
            int status;
            try
            {
                status = Vigil.Tool.Commands.LogCommand.Run(new Vigil.Tool.Options([path]));
            }
            finally
            {
                Console.SetOut(original);
            }
            Assert.Equal(0, status);
            string[] lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
            Assert.Equal("line one", lines[0]);
            Assert.Equal("[cpu 1] warn: unexpected exit 0x30 at rip 0x1000", lines[1]);
            Assert.StartsWith("vigil log: 1 records, 1 text lines, 0 corrupt frames", lines[2]);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
