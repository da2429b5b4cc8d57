using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.RegularExpressions;

namespace Vigil.Tool.Emulators;

/// <summary>Follows a file an emulator writes a serial port into, yielding complete, cleaned lines.</summary>
internal sealed partial class SerialFollower(string port, string path)
{
    private long _position;
    private readonly StringBuilder _partial = new();

    public string Port { get; } = port;

    public string Path { get; } = path;

    /// <summary>Reads what arrived since the last call; <paramref name="flush"/> also returns an unterminated last line.</summary>
    public IEnumerable<string> Poll(bool flush = false)
    {
        var lines = new List<string>();
        if (File.Exists(Path))
        {
            using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length > _position)
            {
                stream.Seek(_position, SeekOrigin.Begin);
                var buffer = new byte[stream.Length - _position];
                int read = stream.Read(buffer, 0, buffer.Length);
                _position += read;
                // Serial output is ASCII plus terminal escapes; Latin-1 keeps every byte.
                _partial.Append(Encoding.Latin1.GetString(buffer, 0, read));
            }
        }
        string text = _partial.ToString();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\n' && text[i] != '\r') continue;
            Add(lines, text[start..i]);
            start = i + 1;
        }
        _partial.Clear();
        if (flush) Add(lines, text[start..]);
        else _partial.Append(text.AsSpan(start));
        return lines;
    }

    private static void Add(List<string> lines, string raw)
    {
        string clean = Clean(raw);
        if (clean.Trim().Length > 0) lines.Add(clean);
    }

    /// <summary>Removes ANSI/VT100 escape sequences (the firmware console's colours and cursor moves) and control bytes.</summary>
    internal static string Clean(string raw)
    {
        string text = EscapeSequence().Replace(raw, "");
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (c >= ' ' || c == '\t') sb.Append(c);
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"\x1B(\[[0-9;=?]*[A-Za-z]|[()][0-9A-Za-z]|[=>])")]
    private static partial Regex EscapeSequence();
}
