// Output of the harness tool: the firmware console only (ConOut; OVMF mirrors it to COM1),
// every line prefixed "acpitables: ". Boot services, BSP.
using System;
using Vigil.Platform.Firmware;
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

        public static void Write(ReadOnlySpan<char> text) => ConsoleText.Write(s_console, text);

        /// <summary>"0x" and at least one hexadecimal digit, upper case.</summary>
        public static string Hex(ulong value) => "0x" + Platform.Hex.Format(value);
    }
}
