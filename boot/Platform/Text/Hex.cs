// Upper-case hexadecimal without prefix, the same in the no-runtime images and on .NET (the core
// library has no format strings). Compiled twice: into the images and into the tests.
namespace Vigil.Platform
{
    public static class Hex
    {
        public static string Format(ulong value)
        {
            System.Span<char> digits = stackalloc char[16];
            int n = 0;
            do
            {
                int nibble = (int)(value & 0xF);
                digits[15 - n] = (char)(nibble < 10 ? '0' + nibble : 'A' + nibble - 10);
                value >>= 4;
                n++;
            }
            while (value != 0);
            return string.Concat(digits.Slice(16 - n), System.ReadOnlySpan<char>.Empty);
        }
    }
}
