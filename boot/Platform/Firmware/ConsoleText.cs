// Text to a UEFI console (EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.OutputString, UEFI 2.10 §12.4.3), which
// wants NUL-terminated UCS-2 and CR LF line ends: copied through a stack buffer, no allocation,
// so fail-fast hooks can use it too.
using Vigil.Platform.Uefi;

namespace Vigil.Platform.Firmware
{
    public static unsafe class ConsoleText
    {
        public static void Write(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL* console, System.ReadOnlySpan<char> text)
        {
            if (console == null) return;
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
                    console->OutputString(console, chunk);
                    n = 0;
                }
            }
            if (n == 0) return;
            chunk[n] = '\0';
            console->OutputString(console, chunk);
        }
    }
}
