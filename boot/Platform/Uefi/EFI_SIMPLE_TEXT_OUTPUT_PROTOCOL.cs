// EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL (UEFI 2.10 §12.4).
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL
    {
        public void* Reset;
        public delegate* unmanaged<EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL*, char*, ulong> OutputString;
        public void* TestString;
        public void* QueryMode;
        public void* SetMode;
        public delegate* unmanaged<EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL*, ulong, ulong> SetAttribute;
        public void* ClearScreen;
        public void* SetCursorPosition;
        public void* EnableCursor;
        public void* Mode;

        // Text attributes (§12.4.7): foreground | background << 4.
        public const ulong EFI_LIGHTGRAY = 0x07;
        public const ulong EFI_LIGHTGREEN = 0x0A;
        public const ulong EFI_LIGHTCYAN = 0x0B;
        public const ulong EFI_LIGHTRED = 0x0C;
        public const ulong EFI_YELLOW = 0x0E;
        public const ulong EFI_WHITE = 0x0F;
    }
}
