// The one way out when something cannot continue: no exceptions exist in these images.
// Reports the reason and where it happened (return addresses inside this image, which
// `vigil symbolize` maps back to methods), through the hook every image provides, then stops.
using System;
using System.Runtime;
using System.Runtime.CompilerServices;

namespace Internal.Runtime
{
    public static unsafe class FailFast
    {
        /// <summary>Writes one line (NUL-terminated UTF-16) wherever the image reports errors.</summary>
        [MethodImpl(MethodImplOptions.InternalCall)]
        [RuntimeImport("*", "vigil_report_fatal")]
        private static extern void Report(char* line);

        private static bool s_failing;

        public static void Fail(string message)
        {
            // Build the line in a stack buffer: the heap may be what failed.
            char* line = stackalloc char[384];
            int n = 0;
            n = Append(line, n, 384, "FATAL: ");
            n = Append(line, n, 384, message);
            if (!s_failing)
            {
                s_failing = true;
                n = AppendCallers(line, n, 384);
            }
            line[n] = '\0';
            Report(line);
            RuntimeStubs.HaltForever();
        }

        private static int Append(char* buffer, int n, int capacity, string text)
        {
            if (text == null) return n;
            for (int i = 0; i < text.Length && n < capacity - 1; i++) buffer[n++] = text[i];
            return n;
        }

        // Walks the stack for values that point into this image's code: a backtrace without
        // unwind tables. False positives are possible (stale return addresses); the first
        // entries are the reliable ones.
        private static int AppendCallers(char* buffer, int n, int capacity)
        {
            byte* image = RuntimeStubs.ImageBase();
            uint sizeOfImage = PeSizeOfImage(image);
            if (sizeOfImage == 0) return n;
            n = Append(buffer, n, capacity, " | callers (image+rva):");
            ulong* stack = (ulong*)RuntimeStubs.ReadRsp();
            int found = 0;
            for (int i = 0; i < 512 && found < 6; i++)
            {
                ulong value = stack[i];
                if (value <= (ulong)image || value >= (ulong)image + sizeOfImage) continue;
                n = Append(buffer, n, capacity, " +0x");
                n = AppendHex(buffer, n, capacity, value - (ulong)image);
                found++;
            }
            return n;
        }

        private static uint PeSizeOfImage(byte* image)
        {
            if (image == null || *(ushort*)image != 0x5A4D) return 0;       // "MZ"
            byte* nt = image + *(int*)(image + 0x3C);
            if (*(uint*)nt != 0x00004550) return 0;                         // "PE\0\0"
            return *(uint*)(nt + 24 + 56);                                  // OptionalHeader.SizeOfImage
        }

        private static int AppendHex(char* buffer, int n, int capacity, ulong value)
        {
            int digits = 1;
            while (digits < 16 && (value >> (digits * 4)) != 0) digits++;
            for (int d = digits - 1; d >= 0 && n < capacity - 1; d--)
            {
                int nibble = (int)((value >> (d * 4)) & 0xF);
                buffer[n++] = (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
            }
            return n;
        }
    }
}

namespace System
{
    public static class Environment
    {
        /// <summary>As in .NET: report the message and terminate. Here: report and halt.</summary>
        public static void FailFast(string message) => Internal.Runtime.FailFast.Fail(message);
    }
}
