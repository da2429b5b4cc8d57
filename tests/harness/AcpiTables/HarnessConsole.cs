// Output of the harness tool: the firmware console only (ConOut; OVMF mirrors it to COM1),
// every line prefixed "acpitables: ". Boot services, BSP.
using System;
using Vigil.Platform.Uefi;

namespace Vigil.Harness
{
    internal static unsafe class HarnessConsole
    {
        private const string Prefix = "acpitables: ";
        private static EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* s_console;

        public static void Attach(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* console) => s_console = console;

        public static void Line(string message)
        {
            Write(Prefix);
            Write(message);
            Write("\n");
        }

        /// <summary>
        /// OutputString wants NUL-terminated UCS-2 with CR LF line ends: copy through a small
        /// buffer (no allocation, so the fail-fast hook can use it too).
        /// </summary>
        public static void Write(ReadOnlySpan<char> text)
        {
            if (s_console == null) return;
            char* chunk = stackalloc char[130];
            int n = 0;
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (c == '\n') chunk[n++] = '\r';
                chunk[n++] = c;
                if (n >= 127)
                {
                    chunk[n] = '\0';
                    s_console->OutputString(s_console, chunk);
                    n = 0;
                }
            }
            if (n == 0) return;
            chunk[n] = '\0';
            s_console->OutputString(s_console, chunk);
        }

        /// <summary>"0x" and at least one hexadecimal digit, upper case.</summary>
        public static string Hex(ulong value)
        {
            char* digits = stackalloc char[18];
            int pos = 18;
            do
            {
                int d = (int)(value & 0xF);
                digits[--pos] = (char)(d < 10 ? '0' + d : 'A' + d - 10);
                value >>= 4;
            }
            while (value != 0);
            digits[--pos] = 'x';
            digits[--pos] = '0';
            return string.Concat(new ReadOnlySpan<char>(digits + pos, 18 - pos), default);
        }
    }
}
