// A 16550-compatible UART driven by port I/O: usable from boot services and from root mode
// alike (no firmware calls). Polled, no interrupts.
namespace Vigil.Platform
{
    public struct SerialPort
    {
        public const ushort Com1 = 0x3F8;
        public const ushort Com2 = 0x2F8;
        public const ushort Com3 = 0x3E8;
        public const ushort Com4 = 0x2E8;

        private const ushort Data = 0;              // THR/RBR, or DLL with DLAB
        private const ushort InterruptEnable = 1;   // IER, or DLM with DLAB
        private const ushort FifoControl = 2;
        private const ushort LineControl = 3;
        private const ushort ModemControl = 4;
        private const ushort LineStatus = 5;
        private const ushort Scratch = 7;
        private const byte TransmitHoldingEmpty = 0x20;

        private readonly ushort _base;

        public SerialPort(ushort basePort) { _base = basePort; }

        public readonly ushort Base => _base;

        /// <summary>False when no UART answers at this address (the scratch register does not hold a value).</summary>
        public readonly bool Present
        {
            get
            {
                if (_base == 0) return false;
                Cpu.OutByte((ushort)(_base + Scratch), 0x5A);
                if (Cpu.InByte((ushort)(_base + Scratch)) != 0x5A) return false;
                Cpu.OutByte((ushort)(_base + Scratch), 0xA5);
                return Cpu.InByte((ushort)(_base + Scratch)) == 0xA5;
            }
        }

        /// <summary>115200 baud, 8 data bits, no parity, one stop bit, FIFOs on, interrupts off.</summary>
        public readonly void Initialize()
        {
            Cpu.OutByte((ushort)(_base + InterruptEnable), 0x00);
            Cpu.OutByte((ushort)(_base + LineControl), 0x80);     // DLAB: divisor follows
            Cpu.OutByte((ushort)(_base + Data), 0x01);            // divisor 1 = 115200 baud
            Cpu.OutByte((ushort)(_base + InterruptEnable), 0x00);
            Cpu.OutByte((ushort)(_base + LineControl), 0x03);     // 8N1, DLAB off
            Cpu.OutByte((ushort)(_base + FifoControl), 0xC7);     // enable and clear FIFOs
            Cpu.OutByte((ushort)(_base + ModemControl), 0x03);    // DTR, RTS
        }

        public readonly void WriteByte(byte value)
        {
            // Bounded wait: a wedged or absent UART must not hang the caller.
            for (int spin = 0; spin < 100000; spin++)
            {
                if ((Cpu.InByte((ushort)(_base + LineStatus)) & TransmitHoldingEmpty) != 0) break;
                Cpu.Pause();
            }
            Cpu.OutByte((ushort)(_base + Data), value);
        }

        /// <summary>Writes UTF-16 text as ASCII ('?' for anything else), LF as CR LF.</summary>
        public readonly void Write(System.ReadOnlySpan<char> text)
        {
            if (_base == 0) return;
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (c == '\n') WriteByte((byte)'\r');
                WriteByte(c < 0x80 ? (byte)c : (byte)'?');
            }
        }
    }
}
