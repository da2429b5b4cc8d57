// SHA-256 (FIPS 180-4), allocation-free and incremental, for the compiled policy's integrity check and
// source hash (hv/Core/Guard/GuardPolicyImage.cs). Compiled twice (tiny corelib + net10; the tests check
// it against .NET's). Slow and small on purpose: it runs once per policy, at boot or Protect.
using System;

namespace Vigil.Hypervisor.Core.Guard
{
    public unsafe struct Sha256
    {
        public const int DigestBytes = 32;

        private fixed uint _state[8];
        private fixed byte _block[64];
        private int _buffered;
        private ulong _length;
        private bool _started;

        /// <summary>The SHA-256 of <paramref name="data"/> into <paramref name="digest"/> (32 bytes).</summary>
        public static void Hash(ReadOnlySpan<byte> data, Span<byte> digest)
        {
            var h = default(Sha256);
            h.Append(data);
            h.Finish(digest);
        }

        /// <summary>Adds <paramref name="data"/> to the message.</summary>
        public void Append(ReadOnlySpan<byte> data)
        {
            Start();
            for (int i = 0; i < data.Length; i++) Add(data[i]);
        }

        /// <summary>Adds <paramref name="count"/> zero bytes to the message.</summary>
        public void AppendZeros(int count)
        {
            Start();
            for (int i = 0; i < count; i++) Add(0);
        }

        /// <summary>Pads, writes the digest (big-endian words) into the first 32 bytes of <paramref name="digest"/>, and resets.</summary>
        public void Finish(Span<byte> digest)
        {
            Start();
            ulong bits = _length * 8;
            Add(0x80);
            while (_buffered != 56) Add(0);
            for (int i = 7; i >= 0; i--) Add((byte)(bits >> (8 * i)));
            for (int i = 0; i < 8; i++)
            {
                uint s = _state[i];
                digest[4 * i] = (byte)(s >> 24);
                digest[(4 * i) + 1] = (byte)(s >> 16);
                digest[(4 * i) + 2] = (byte)(s >> 8);
                digest[(4 * i) + 3] = (byte)s;
            }
            this = default;
        }

        private void Start()
        {
            if (_started) return;
            _started = true;
            _state[0] = 0x6a09e667; _state[1] = 0xbb67ae85; _state[2] = 0x3c6ef372; _state[3] = 0xa54ff53a;
            _state[4] = 0x510e527f; _state[5] = 0x9b05688c; _state[6] = 0x1f83d9ab; _state[7] = 0x5be0cd19;
        }

        private void Add(byte b)
        {
            _block[_buffered++] = b;
            _length++;
            if (_buffered == 64)
            {
                Compress();
                _buffered = 0;
            }
        }

        private static uint Rotr(uint x, int n) => (x >> n) | (x << (32 - n));

        private void Compress()
        {
            uint* w = stackalloc uint[64];
            for (int t = 0; t < 16; t++)
            {
                w[t] = ((uint)_block[4 * t] << 24) | ((uint)_block[(4 * t) + 1] << 16) | ((uint)_block[(4 * t) + 2] << 8) | _block[(4 * t) + 3];
            }
            for (int t = 16; t < 64; t++)
            {
                uint s0 = Rotr(w[t - 15], 7) ^ Rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
                uint s1 = Rotr(w[t - 2], 17) ^ Rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
                w[t] = w[t - 16] + s0 + w[t - 7] + s1;
            }
            uint a = _state[0], b = _state[1], c = _state[2], d = _state[3], e = _state[4], f = _state[5], g = _state[6], h = _state[7];
            ReadOnlySpan<byte> k = RoundConstants;
            for (int t = 0; t < 64; t++)
            {
                uint kt = ((uint)k[4 * t] << 24) | ((uint)k[(4 * t) + 1] << 16) | ((uint)k[(4 * t) + 2] << 8) | k[(4 * t) + 3];
                uint t1 = h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kt + w[t];
                uint t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
                h = g;
                g = f;
                f = e;
                e = d + t1;
                d = c;
                c = b;
                b = a;
                a = t1 + t2;
            }
            _state[0] += a; _state[1] += b; _state[2] += c; _state[3] += d;
            _state[4] += e; _state[5] += f; _state[6] += g; _state[7] += h;
        }

        /// <summary>K[0..63] (FIPS 180-4 4.2.2), big-endian: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.</summary>
        private static ReadOnlySpan<byte> RoundConstants =>
        [
            0x42, 0x8a, 0x2f, 0x98, 0x71, 0x37, 0x44, 0x91, 0xb5, 0xc0, 0xfb, 0xcf, 0xe9, 0xb5, 0xdb, 0xa5,
            0x39, 0x56, 0xc2, 0x5b, 0x59, 0xf1, 0x11, 0xf1, 0x92, 0x3f, 0x82, 0xa4, 0xab, 0x1c, 0x5e, 0xd5,
            0xd8, 0x07, 0xaa, 0x98, 0x12, 0x83, 0x5b, 0x01, 0x24, 0x31, 0x85, 0xbe, 0x55, 0x0c, 0x7d, 0xc3,
            0x72, 0xbe, 0x5d, 0x74, 0x80, 0xde, 0xb1, 0xfe, 0x9b, 0xdc, 0x06, 0xa7, 0xc1, 0x9b, 0xf1, 0x74,
            0xe4, 0x9b, 0x69, 0xc1, 0xef, 0xbe, 0x47, 0x86, 0x0f, 0xc1, 0x9d, 0xc6, 0x24, 0x0c, 0xa1, 0xcc,
            0x2d, 0xe9, 0x2c, 0x6f, 0x4a, 0x74, 0x84, 0xaa, 0x5c, 0xb0, 0xa9, 0xdc, 0x76, 0xf9, 0x88, 0xda,
            0x98, 0x3e, 0x51, 0x52, 0xa8, 0x31, 0xc6, 0x6d, 0xb0, 0x03, 0x27, 0xc8, 0xbf, 0x59, 0x7f, 0xc7,
            0xc6, 0xe0, 0x0b, 0xf3, 0xd5, 0xa7, 0x91, 0x47, 0x06, 0xca, 0x63, 0x51, 0x14, 0x29, 0x29, 0x67,
            0x27, 0xb7, 0x0a, 0x85, 0x2e, 0x1b, 0x21, 0x38, 0x4d, 0x2c, 0x6d, 0xfc, 0x53, 0x38, 0x0d, 0x13,
            0x65, 0x0a, 0x73, 0x54, 0x76, 0x6a, 0x0a, 0xbb, 0x81, 0xc2, 0xc9, 0x2e, 0x92, 0x72, 0x2c, 0x85,
            0xa2, 0xbf, 0xe8, 0xa1, 0xa8, 0x1a, 0x66, 0x4b, 0xc2, 0x4b, 0x8b, 0x70, 0xc7, 0x6c, 0x51, 0xa3,
            0xd1, 0x92, 0xe8, 0x19, 0xd6, 0x99, 0x06, 0x24, 0xf4, 0x0e, 0x35, 0x85, 0x10, 0x6a, 0xa0, 0x70,
            0x19, 0xa4, 0xc1, 0x16, 0x1e, 0x37, 0x6c, 0x08, 0x27, 0x48, 0x77, 0x4c, 0x34, 0xb0, 0xbc, 0xb5,
            0x39, 0x1c, 0x0c, 0xb3, 0x4e, 0xd8, 0xaa, 0x4a, 0x5b, 0x9c, 0xca, 0x4f, 0x68, 0x2e, 0x6f, 0xf3,
            0x74, 0x8f, 0x82, 0xee, 0x78, 0xa5, 0x63, 0x6f, 0x84, 0xc8, 0x78, 0x14, 0x8c, 0xc7, 0x02, 0x08,
            0x90, 0xbe, 0xff, 0xfa, 0xa4, 0x50, 0x6c, 0xeb, 0xbe, 0xf9, 0xa3, 0xf7, 0xc6, 0x71, 0x78, 0xf2,
        ];
    }
}
