// Parser for vigil.conf: `key = value` lines; '#' at the start of a line or after a blank starts
// a comment; blank lines are skipped.
// Every line that cannot be used produces a diagnostic naming the line and what happens
// instead (the default, or the line being ignored); nothing is dropped silently.
// Compiled twice: into vigil.efi (no runtime) and into the unit tests (net10.0).
namespace Vigil.Boot.Config
{
    public readonly struct ConfigDiagnostic
    {
        public ConfigDiagnostic(int line, string message)
        {
            Line = line;
            Message = message;
        }

        /// <summary>1-based line number in vigil.conf (0: the file as a whole).</summary>
        public int Line { get; }

        public string Message { get; }

        public override string ToString() => Line > 0 ? "vigil.conf line " + Line.ToString() + ": " + Message : "vigil.conf: " + Message;
    }

    public sealed class ConfigParseResult
    {
        public const int MaxDiagnostics = 32;

        private readonly ConfigDiagnostic[] _diagnostics = new ConfigDiagnostic[MaxDiagnostics];

        public VigilConfig Config { get; } = new VigilConfig();

        /// <summary>Diagnostics kept (at most <see cref="MaxDiagnostics"/>).</summary>
        public int DiagnosticCount { get; private set; }

        /// <summary>Diagnostics beyond <see cref="MaxDiagnostics"/>, counted so the report can say so.</summary>
        public int DroppedDiagnostics { get; private set; }

        public ConfigDiagnostic Diagnostic(int index)
        {
            if ((uint)index >= (uint)DiagnosticCount) System.Environment.FailFast("ConfigParseResult.Diagnostic: index out of range");
            return _diagnostics[index];
        }

        internal void Add(int line, string message)
        {
            if (DiagnosticCount < MaxDiagnostics) _diagnostics[DiagnosticCount++] = new ConfigDiagnostic(line, message);
            else DroppedDiagnostics++;
        }
    }

    public static class ConfigParser
    {
        public const int MaxLineLength = 1024;
        public const int MaxFileSize = 64 * 1024;

        private const int KeyLoader = 1;
        private const int KeyOptions = 2;
        private const int KeyLogPort = 3;
        private const int KeyHypervisor = 4;
        private const int KeyPolicy = 5;

        public static ConfigParseResult Parse(System.ReadOnlySpan<byte> text)
        {
            var result = new ConfigParseResult();
            if (text.Length > MaxFileSize)
            {
                result.Add(0, "file is larger than " + MaxFileSize.ToString() + " bytes; ignoring all of it and using the defaults");
                return result;
            }
            // A UTF-8 byte order mark is allowed.
            if (text.Length >= 3 && text[0] == 0xEF && text[1] == 0xBB && text[2] == 0xBF) text = text.Slice(3);

            System.Span<int> seenOnLine = stackalloc int[6];
            int lineNumber = 0;
            while (text.Length > 0 || lineNumber == 0)
            {
                lineNumber++;
                int end = IndexOf(text, (byte)'\n');
                System.ReadOnlySpan<byte> line = end < 0 ? text : text.Slice(0, end);
                text = end < 0 ? default : text.Slice(end + 1);
                ParseLine(result, lineNumber, line, seenOnLine);
                if (text.Length == 0) break;
            }
            return result;
        }

        private static void ParseLine(ConfigParseResult result, int lineNumber, System.ReadOnlySpan<byte> line, System.Span<int> seenOnLine)
        {
            if (line.Length > 0 && line[line.Length - 1] == (byte)'\r') line = line.Slice(0, line.Length - 1);
            if (line.Length > MaxLineLength)
            {
                result.Add(lineNumber, "line is longer than " + MaxLineLength.ToString() + " characters; ignored");
                return;
            }
            for (int i = 0; i < line.Length; i++)
            {
                byte b = line[i];
                if (b >= 0x80 || (b < 0x20 && b != (byte)'\t'))
                {
                    result.Add(lineNumber, "contains a byte that is not printable ASCII (column " + (i + 1).ToString() + "); line ignored");
                    return;
                }
            }
            line = Trim(StripComment(line));
            if (line.Length == 0) return;

            int equals = IndexOf(line, (byte)'=');
            if (equals < 0)
            {
                result.Add(lineNumber, "expected 'key = value' but found '" + ToText(line) + "'; line ignored");
                return;
            }
            System.ReadOnlySpan<byte> keyText = Trim(line.Slice(0, equals));
            System.ReadOnlySpan<byte> value = Trim(line.Slice(equals + 1));
            int key = Equals(keyText, "loader") ? KeyLoader
                : Equals(keyText, "options") ? KeyOptions
                : Equals(keyText, "log_port") ? KeyLogPort
                : Equals(keyText, "hypervisor") ? KeyHypervisor
                : Equals(keyText, "policy") ? KeyPolicy
                : 0;
            if (key == 0)
            {
                result.Add(lineNumber, "unknown key '" + ToText(keyText) + "' (known: loader, options, log_port, hypervisor, policy); line ignored");
                return;
            }
            if (seenOnLine[key] != 0)
            {
                result.Add(lineNumber, "'" + ToText(keyText) + "' was already set on line " + seenOnLine[key].ToString() + "; this later value is used");
            }
            seenOnLine[key] = lineNumber;

            VigilConfig config = result.Config;
            switch (key)
            {
                case KeyLoader:
                    string? problem = CheckPath(value);
                    if (problem != null)
                    {
                        config.Loader = VigilConfig.DefaultLoader;
                        result.Add(lineNumber, "loader " + problem + "; using the default " + VigilConfig.DefaultLoader);
                    }
                    else
                    {
                        config.Loader = ToText(value);
                    }
                    break;
                case KeyOptions:
                    // Any printable text is a valid command line, the empty one included.
                    config.Options = ToText(value);
                    break;
                case KeyLogPort:
                    if (TryParsePort(value, out ushort port))
                    {
                        config.LogPort = port;
                    }
                    else
                    {
                        config.LogPort = VigilConfig.DefaultLogPort;
                        result.Add(lineNumber, "log_port '" + ToText(value) + "' is not com1-com4, none, or an I/O port like 0x2f8; using the default "
                            + VigilConfig.PortName(VigilConfig.DefaultLogPort));
                    }
                    break;
                case KeyPolicy:
                    if (EqualsIgnoreCase(value, "built-in") || EqualsIgnoreCase(value, "builtin"))
                    {
                        config.Policy = null;
                        break;
                    }
                    string? policyProblem = CheckPath(value);
                    if (policyProblem != null)
                    {
                        config.Policy = VigilConfig.DefaultPolicy;
                        result.Add(lineNumber, "policy " + policyProblem + "; using the default " + VigilConfig.DefaultPolicy);
                    }
                    else
                    {
                        config.Policy = ToText(value);
                    }
                    break;
                case KeyHypervisor:
                    if (EqualsIgnoreCase(value, "on")) config.Hypervisor = true;
                    else if (EqualsIgnoreCase(value, "off")) config.Hypervisor = false;
                    else
                    {
                        config.Hypervisor = true;
                        result.Add(lineNumber, "hypervisor '" + ToText(value) + "' is neither on nor off; using the default on");
                    }
                    break;
            }
        }

        /// <summary>Null when the value is a usable absolute path on the boot volume, else why not.</summary>
        private static string? CheckPath(System.ReadOnlySpan<byte> value)
        {
            if (value.Length == 0) return "is empty";
            if (value[0] != (byte)'\\') return "'" + ToText(value) + "' is not an absolute path on the boot volume (it must start with \\)";
            for (int i = 0; i < value.Length; i++)
            {
                byte b = value[i];
                if (b == (byte)'/' || b == (byte)'"' || b == (byte)'*' || b == (byte)'?' || b == (byte)'<' || b == (byte)'>' || b == (byte)'|' || b == (byte)':')
                {
                    return "'" + ToText(value) + "' contains '" + ((char)b).ToString() + "', which a UEFI file path cannot hold (use \\ between folders)";
                }
            }
            if (value[value.Length - 1] == (byte)'\\') return "'" + ToText(value) + "' names a folder, not a file";
            return null;
        }

        /// <summary>com1-com4 (any case), none/off/0, or a number: decimal or 0x hexadecimal, 1-0xFFF8.</summary>
        public static bool TryParsePort(System.ReadOnlySpan<byte> value, out ushort port)
        {
            port = 0;
            if (EqualsIgnoreCase(value, "none") || EqualsIgnoreCase(value, "off") || Equals(value, "0")) return true;
            if (EqualsIgnoreCase(value, "com1")) { port = 0x3F8; return true; }
            if (EqualsIgnoreCase(value, "com2")) { port = 0x2F8; return true; }
            if (EqualsIgnoreCase(value, "com3")) { port = 0x3E8; return true; }
            if (EqualsIgnoreCase(value, "com4")) { port = 0x2E8; return true; }
            bool hex = value.Length > 2 && value[0] == (byte)'0' && (value[1] == (byte)'x' || value[1] == (byte)'X');
            if (hex) value = value.Slice(2);
            if (value.Length == 0 || value.Length > 6) return false;
            uint number = 0;
            for (int i = 0; i < value.Length; i++)
            {
                int digit = Digit(value[i], hex ? 16 : 10);
                if (digit < 0) return false;
                number = (number * (hex ? 16u : 10u)) + (uint)digit;
            }
            // A UART occupies eight consecutive ports.
            if (number == 0 || number > 0xFFF8) return false;
            port = (ushort)number;
            return true;
        }

        private static int Digit(byte b, int radix)
        {
            int d = b >= (byte)'0' && b <= (byte)'9' ? b - '0'
                : b >= (byte)'a' && b <= (byte)'f' ? b - 'a' + 10
                : b >= (byte)'A' && b <= (byte)'F' ? b - 'A' + 10
                : -1;
            return d < radix ? d : -1;
        }

        private static System.ReadOnlySpan<byte> StripComment(System.ReadOnlySpan<byte> line)
        {
            for (int i = 0; i < line.Length; i++)
            {
                if (line[i] == (byte)'#' && (i == 0 || line[i - 1] == (byte)' ' || line[i - 1] == (byte)'\t')) return line.Slice(0, i);
            }
            return line;
        }

        private static int IndexOf(System.ReadOnlySpan<byte> text, byte value)
        {
            for (int i = 0; i < text.Length; i++)
            {
                if (text[i] == value) return i;
            }
            return -1;
        }

        private static System.ReadOnlySpan<byte> Trim(System.ReadOnlySpan<byte> text)
        {
            int start = 0;
            int end = text.Length;
            while (start < end && (text[start] == (byte)' ' || text[start] == (byte)'\t')) start++;
            while (end > start && (text[end - 1] == (byte)' ' || text[end - 1] == (byte)'\t')) end--;
            return text.Slice(start, end - start);
        }

        private static bool Equals(System.ReadOnlySpan<byte> text, string literal)
        {
            if (text.Length != literal.Length) return false;
            for (int i = 0; i < text.Length; i++)
            {
                if (text[i] != literal[i]) return false;
            }
            return true;
        }

        private static bool EqualsIgnoreCase(System.ReadOnlySpan<byte> text, string lowerLiteral)
        {
            if (text.Length != lowerLiteral.Length) return false;
            for (int i = 0; i < text.Length; i++)
            {
                byte b = text[i];
                if (b >= (byte)'A' && b <= (byte)'Z') b = (byte)(b + 32);
                if (b != lowerLiteral[i]) return false;
            }
            return true;
        }

        /// <summary>ASCII bytes (already checked printable) as a string.</summary>
        private static string ToText(System.ReadOnlySpan<byte> text)
        {
            if (text.Length == 0) return "";
            char[] chars = new char[text.Length];
            for (int i = 0; i < text.Length; i++) chars[i] = (char)text[i];
            return string.Concat(new System.ReadOnlySpan<char>(chars), System.ReadOnlySpan<char>.Empty);
        }
    }
}
