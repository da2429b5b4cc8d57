// The log UART as the byte sink of LogRing.Drain (root mode: port I/O only, no firmware).
using Vigil.Hypervisor.Core;
using Vigil.Platform;

namespace Vigil.Hypervisor
{
    internal readonly struct UartLogSink : ILogSink
    {
        private readonly SerialPort _port;

        public UartLogSink(ushort port) { _port = new SerialPort(port); }

        public void Write(byte value)
        {
            if (_port.Base != 0) _port.WriteByte(value);
        }
    }
}
