// Boot-time reporting: every line goes to the firmware console (screen, and the firmware's own
// serial mirror) and to Vigil's log UART. Warnings and errors are coloured and marked, so an
// unprotected boot is never quiet.
using Vigil.Platform;
using Vigil.Platform.Firmware;
using Vigil.Platform.Uefi;

namespace Vigil.Boot
{
    internal enum Severity
    {
        Info,
        Warning,
        Error,
    }

    internal static unsafe class BootLog
    {
        private static EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* s_console;
        private static SerialPort s_serial;

        public static void AttachConsole(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* console) => s_console = console;

        /// <summary>Switches the serial log to another UART (0: none). Initializes it if present.</summary>
        public static bool AttachSerial(ushort port)
        {
            s_serial = new SerialPort(port);
            if (port == 0) return true;
            if (!s_serial.Present)
            {
                s_serial = default;
                return false;
            }
            s_serial.Initialize();
            return true;
        }

        public static ushort SerialPort => s_serial.Base;

        public static void Info(string message) => Write(Severity.Info, message);

        public static void Warn(string message) => Write(Severity.Warning, message);

        public static void Error(string message)
        {
            LastError = message;
            Write(Severity.Error, message);
        }

        /// <summary>The last error reported (the reason an unprotected boot gives), or null.</summary>
        public static string? LastError { get; private set; }

        public static void Write(Severity severity, string message)
        {
            string prefix = severity switch
            {
                Severity.Warning => "vigil: WARNING: ",
                Severity.Error => "vigil: ERROR: ",
                _ => "vigil: ",
            };
            ulong colour = severity switch
            {
                Severity.Warning => EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.EFI_YELLOW,
                Severity.Error => EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.EFI_LIGHTRED,
                _ => EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.EFI_LIGHTGRAY,
            };
            WriteConsole(prefix, message, colour);
            s_serial.Write(prefix);
            s_serial.Write(message);
            s_serial.Write("\n");
        }

        /// <summary>Raw line to both sinks, for the fail-fast hook (no allocation).</summary>
        public static void WriteFatal(char* line)
        {
            int n = 0;
            while (line[n] != '\0') n++;
            var text = new System.ReadOnlySpan<char>(line, n);
            if (s_console != null)
            {
                s_console->SetAttribute(s_console, EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.EFI_LIGHTRED);
                ConsoleText.Write(s_console, text);
                ConsoleText.Write(s_console, "\n");
            }
            // Fatal errors also go to COM1, where the firmware console is, in case the log port is elsewhere.
            new SerialPort(Platform.SerialPort.Com1).Write(text);
            new SerialPort(Platform.SerialPort.Com1).Write("\n");
            if (s_serial.Base != Platform.SerialPort.Com1)
            {
                s_serial.Write(text);
                s_serial.Write("\n");
            }
        }

        private static void WriteConsole(string prefix, string message, ulong colour)
        {
            if (s_console == null) return;
            s_console->SetAttribute(s_console, colour);
            ConsoleText.Write(s_console, prefix);
            ConsoleText.Write(s_console, message);
            ConsoleText.Write(s_console, "\n");
            s_console->SetAttribute(s_console, EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.EFI_LIGHTGRAY);
        }
    }
}
