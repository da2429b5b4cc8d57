// The hypervisor's log before and outside exit handling: text lines on the log UART, prefixed
// "vigil-hv: ". Used at start-up (boot services still running, one CPU at a time) and for fatal
// errors. Root-mode exit paths use the binary per-CPU rings instead (hv/Core/Logging/LogRings.cs). Each line
// holds the UART lock (LogUart) so it never lands inside another CPU's binary frame.
using Vigil.Platform;

namespace Vigil.Hypervisor
{
    internal struct HvLog
    {
        private readonly SerialPort _port;

        public HvLog(ushort port) { _port = new SerialPort(port); }

        public readonly void Info(string message) => Line("vigil-hv: ", message);

        public readonly void Warn(string message) => Line("vigil-hv: WARNING: ", message);

        public readonly void Error(string message) => Line("vigil-hv: ERROR: ", message);

        public readonly void Raw(System.ReadOnlySpan<char> text)
        {
            bool locked = LogUart.Acquire();
            _port.Write(text);
            _port.Write("\n");
            if (locked) LogUart.Release();
        }

        private readonly void Line(string prefix, string message)
        {
            bool locked = LogUart.Acquire();
            _port.Write(prefix);
            _port.Write(message);
            _port.Write("\n");
            if (locked) LogUart.Release();
        }
    }
}
