// The hypervisor's binary log record and its framing on the log UART. A record is fixed-size and
// blittable so root mode writes it without formatting (STYLE.md 9); the host tool (`vigil log`)
// formats it with the templates in LogEvents.cs. Compiled three times: into the hypervisor (no
// runtime), into the tool (the decoder) and, through the tool, into the tests.
//
// Frame on the wire (56 bytes):
//   FE 'V' 'L' 01 | record (48 bytes, little-endian, as in memory) | CRC-32 (little-endian)
// The UART also carries text (OVMF mirrors its console onto it; vigil.efi and the hypervisor print
// lines before the OS runs), so the decoder hunts for the marker inside arbitrary bytes: 0xFE never
// occurs in ASCII text, and the CRC-32 (IEEE 802.3, over the version byte and the record) rejects a
// frame that text was interleaved into or that lost bytes; the decoder reports it, skips its 56
// bytes unless another marker starts inside them (the broken frame lost bytes), and hunts on.
using System.Runtime.InteropServices;

namespace Vigil.Hypervisor.Core
{
    /// <summary>What a log level means (STYLE.md 9).</summary>
    public enum LogSeverity : byte
    {
        None = 0,

        /// <summary>The guest may be unprotected.</summary>
        Error = 1,

        /// <summary>Unexpected but handled.</summary>
        Warn = 2,

        /// <summary>Lifecycle: start-up, CPUs virtualized, policy locked.</summary>
        Info = 3,

        /// <summary>Per exit; compiled out unless the hypervisor is built with VIGIL_TRACE.</summary>
        Trace = 4,
    }

    /// <summary>One log entry as root mode writes it: no strings, no formatting.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LogRecord
    {
        public const int Size = 48;

        /// <summary>Per-CPU count of writes, dropped ones included: a gap is a lost or dropped record.</summary>
        public uint Sequence;

        public LogEvent Event;

        /// <summary>Index of the CPU that wrote it (launch order, not APIC ID).</summary>
        public byte Cpu;

        public LogSeverity Severity;

        /// <summary>Time stamp counter when it was written.</summary>
        public ulong Tsc;

        public ulong Arg0;
        public ulong Arg1;
        public ulong Arg2;
        public ulong Arg3;
    }

    /// <summary>Where framed bytes go: the log UART in the hypervisor, a buffer in the tests.</summary>
    public interface ILogSink
    {
        void Write(byte value);
    }

    public static unsafe class LogFrame
    {
        public const byte Marker = 0xFE;
        public const byte Tag1 = (byte)'V';
        public const byte Tag2 = (byte)'L';
        public const byte Version = 1;
        public const int HeaderSize = 4;
        public const int Size = HeaderSize + LogRecord.Size + 4;

        /// <summary>Writes one frame: marker, version, the record's bytes, CRC-32 of version and record.</summary>
        public static void Write<TSink>(ref TSink sink, in LogRecord record)
            where TSink : struct, ILogSink
        {
            LogRecord copy = record;
            byte* bytes = (byte*)&copy;
            sink.Write(Marker);
            sink.Write(Tag1);
            sink.Write(Tag2);
            sink.Write(Version);
            uint crc = Crc32Step(0xFFFF_FFFF, Version);
            for (int i = 0; i < LogRecord.Size; i++)
            {
                sink.Write(bytes[i]);
                crc = Crc32Step(crc, bytes[i]);
            }
            crc = ~crc;
            sink.Write((byte)crc);
            sink.Write((byte)(crc >> 8));
            sink.Write((byte)(crc >> 16));
            sink.Write((byte)(crc >> 24));
        }

        /// <summary>CRC-32 (IEEE 802.3, reflected 0xEDB88320) of <paramref name="data"/>.</summary>
        public static uint Crc32(System.ReadOnlySpan<byte> data)
        {
            uint crc = 0xFFFF_FFFF;
            for (int i = 0; i < data.Length; i++) crc = Crc32Step(crc, data[i]);
            return ~crc;
        }

        /// <summary>Bitwise, without a table: the UART is far slower than these eight shifts per byte.</summary>
        private static uint Crc32Step(uint crc, byte value)
        {
            crc ^= value;
            for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB8_8320 & (0u - (crc & 1)));
            return crc;
        }
    }
}
