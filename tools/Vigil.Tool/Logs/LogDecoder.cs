using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Vigil.Hypervisor.Core;

namespace Vigil.Tool.Logs;

internal enum LogEntryKind
{
    /// <summary>A line of text (firmware console mirror, vigil.efi, the hypervisor's text log).</summary>
    Text,

    /// <summary>A binary record whose checksum matched.</summary>
    Record,

    /// <summary>A frame marker whose frame failed its checksum or version check; skipped.</summary>
    Corrupt,

    /// <summary>A gap in a CPU's sequence numbers: records dropped in the ring or lost on the wire.</summary>
    Missing,

    /// <summary>A frame cut off by the end of the capture.</summary>
    Incomplete,
}

/// <summary>One thing found in the capture, in arrival order; <see cref="Offset"/> is its first byte.</summary>
internal sealed record LogEntry(LogEntryKind Kind, long Offset, string Text, LogRecord Record = default, ulong Count = 0);

internal sealed class LogDecoding
{
    public List<LogEntry> Entries { get; } = [];

    public int Records { get; set; }

    public int TextLines { get; set; }

    public int CorruptFrames { get; set; }

    /// <summary>Per CPU: records the hypervisor reported dropped (its latest running total).</summary>
    public SortedDictionary<int, ulong> Dropped { get; } = [];

    /// <summary>Per CPU: records missing from the sequence (dropped or lost).</summary>
    public SortedDictionary<int, ulong> Missing { get; } = [];
}

/// <summary>
/// Finds the hypervisor's log frames (LogRecord.cs: marker, record, CRC-32) in a capture of the log UART
/// that also carries text, and formats records with the templates of LogEvents.cs.
/// </summary>
internal static class LogDecoder
{
    public static LogDecoding Decode(ReadOnlySpan<byte> bytes)
    {
        var result = new LogDecoding();
        var line = new StringBuilder();
        long lineStart = 0;
        var nextSequence = new Dictionary<int, uint>();

        void FlushLine()
        {
            if (line.Length == 0) return;
            result.Entries.Add(new LogEntry(LogEntryKind.Text, lineStart, line.ToString()));
            result.TextLines++;
            line.Clear();
        }

        int i = 0;
        while (i < bytes.Length)
        {
            byte b = bytes[i];
            if (b == LogFrame.Marker)
            {
                int available = bytes.Length - i;
                if (!HeaderMatches(bytes[i..])) { i++; continue; }
                if (available < LogFrame.Size)
                {
                    FlushLine();
                    result.Entries.Add(new LogEntry(LogEntryKind.Incomplete, i, $"incomplete frame at byte {i}: the capture ends {available} bytes into it"));
                    break;
                }
                ReadOnlySpan<byte> frame = bytes.Slice(i, LogFrame.Size);
                uint expected = BitConverter.ToUInt32(frame[(LogFrame.HeaderSize + LogRecord.Size)..]);
                if (frame[3] != LogFrame.Version || LogFrame.Crc32(frame[3..(LogFrame.HeaderSize + LogRecord.Size)]) != expected)
                {
                    FlushLine();
                    string why = frame[3] != LogFrame.Version ? $"unknown frame version {frame[3]}" : "checksum mismatch";
                    // Skip what would have been the frame, unless another frame starts inside it (this one
                    // lost bytes): its bytes are binary debris, and text mixed into it cannot be told apart.
                    int resume = i + 1;
                    while (resume < i + LogFrame.Size && !(bytes[resume] == LogFrame.Marker && HeaderMatches(bytes[resume..]))) resume++;
                    result.Entries.Add(new LogEntry(LogEntryKind.Corrupt, i, $"corrupt frame at byte {i}: {why}; {resume - i} bytes skipped"));
                    result.CorruptFrames++;
                    i = resume;
                    continue;
                }
                FlushLine();
                LogRecord record = System.Runtime.InteropServices.MemoryMarshal.Read<LogRecord>(frame[LogFrame.HeaderSize..]);
                if (record.Event == LogEvent.RecordsDropped)
                {
                    result.Dropped[record.Cpu] = record.Arg1;
                }
                else
                {
                    if (nextSequence.TryGetValue(record.Cpu, out uint next) && record.Sequence != next)
                    {
                        uint gap = record.Sequence - next;
                        if (gap < 0x8000_0000)
                        {
                            result.Entries.Add(new LogEntry(LogEntryKind.Missing, i, $"[cpu {record.Cpu}] {gap} records missing before #{record.Sequence} (dropped when the ring was full, or lost on the wire)", record, gap));
                            result.Missing[record.Cpu] = result.Missing.GetValueOrDefault(record.Cpu) + gap;
                        }
                    }
                    nextSequence[record.Cpu] = record.Sequence + 1;
                }
                result.Entries.Add(new LogEntry(LogEntryKind.Record, i, Format(record), record));
                result.Records++;
                i += LogFrame.Size;
                continue;
            }
            if (line.Length == 0) lineStart = i;
            if (b == (byte)'\n')
            {
                FlushLine();
            }
            else if (b == 0x1B)
            {
                // ANSI escape from the firmware's terminal emulation: ESC [ parameters final-byte.
                i++;
                if (i < bytes.Length && bytes[i] == (byte)'[')
                {
                    i++;
                    while (i < bytes.Length && (bytes[i] < 0x40 || bytes[i] > 0x7E)) i++;
                }
            }
            else if ((b >= 0x20 && b < 0x7F) || b == (byte)'\t')
            {
                line.Append((char)b);
            }
            // Anything else (CR, NUL, binary debris of a corrupt frame) is not text: dropped.
            i++;
        }
        FlushLine();
        return result;
    }

    /// <summary>The marker and tag bytes, as far as the capture has them.</summary>
    private static bool HeaderMatches(ReadOnlySpan<byte> rest)
    {
        ReadOnlySpan<byte> header = [LogFrame.Marker, LogFrame.Tag1, LogFrame.Tag2];
        for (int i = 0; i < header.Length && i < rest.Length; i++)
        {
            if (rest[i] != header[i]) return false;
        }
        return true;
    }

    /// <summary>"[cpu 1] warn: unexpected exit 0x30 at rip 0xffffffff81000000".</summary>
    public static string Format(in LogRecord record, bool tsc = false)
    {
        var sb = new StringBuilder();
        if (tsc) sb.Append(CultureInfo.InvariantCulture, $"{record.Tsc,20} ");
        sb.Append(CultureInfo.InvariantCulture, $"[cpu {record.Cpu}] {SeverityName(record.Severity)}: ");
        string? template = LogEvents.Describe(record.Event).Template;
        ulong[] args = [record.Arg0, record.Arg1, record.Arg2, record.Arg3];
        if (template == null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"event {(ushort)record.Event} (unknown to this tool): 0x{args[0]:x} 0x{args[1]:x} 0x{args[2]:x} 0x{args[3]:x}");
            return sb.ToString();
        }
        for (int i = 0; i < template.Length; i++)
        {
            int close = template[i] == '{' ? template.IndexOf('}', i) : -1;
            if (close < 0 || close - i < 2 || template[i + 1] < '0' || template[i + 1] > '3')
            {
                sb.Append(template[i]);
                continue;
            }
            ulong value = args[template[i + 1] - '0'];
            string spec = template[(i + 2)..close];
            sb.Append(spec == ":x" ? "0x" + value.ToString("x", CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture));
            i = close;
        }
        return sb.ToString();
    }

    public static string SeverityName(LogSeverity severity) => severity switch
    {
        LogSeverity.Error => "error",
        LogSeverity.Warn => "warn",
        LogSeverity.Info => "info",
        LogSeverity.Trace => "trace",
        _ => $"severity {(byte)severity}",
    };
}
