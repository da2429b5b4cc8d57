using System;
using System.IO;
using System.Linq;
using Vigil.Tool.Logs;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil log FILE [--tsc]`: decodes a capture of the log UART (an emulator transcript, a serial console
/// log): text lines and the hypervisor's binary records in arrival order, corrupt frames and dropped or
/// missing records reported, a summary at the end. Exit code 1 when a frame was corrupt or cut off.
/// </summary>
internal static class LogCommand
{
    public static int Run(Options options)
    {
        string file = options.Argument("FILE");
        bool tsc = options.Flag("--tsc");
        options.EnsureAllUsed();
        if (!File.Exists(file)) throw new ToolException($"log: no such file: {file}");

        LogDecoding decoding = LogDecoder.Decode(File.ReadAllBytes(file));
        foreach (LogEntry entry in decoding.Entries)
        {
            Console.WriteLine(entry.Kind switch
            {
                LogEntryKind.Record => LogDecoder.Format(entry.Record, tsc),
                LogEntryKind.Text => entry.Text,
                _ => "vigil log: " + entry.Text,
            });
        }
        string dropped = string.Join(", ", decoding.Dropped.Select(d => $"cpu {d.Key}: {d.Value}"));
        string missing = string.Join(", ", decoding.Missing.Select(m => $"cpu {m.Key}: {m.Value}"));
        Console.WriteLine($"vigil log: {decoding.Records} records, {decoding.TextLines} text lines, {decoding.CorruptFrames} corrupt frames; "
            + $"dropped in the ring: {(dropped.Length == 0 ? "none" : dropped)}; missing from the sequence: {(missing.Length == 0 ? "none" : missing)}");
        bool damaged = decoding.CorruptFrames > 0 || decoding.Entries.Any(e => e.Kind == LogEntryKind.Incomplete);
        return damaged ? 1 : 0;
    }
}
