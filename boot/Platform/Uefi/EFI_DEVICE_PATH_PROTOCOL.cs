// EFI_DEVICE_PATH_PROTOCOL (UEFI 2.10 §10.2-10.3): a packed sequence of nodes
// {Type, SubType, Length (16-bit, unaligned)} ending with an end-of-path node.
namespace Vigil.Platform.Uefi
{
    public unsafe struct EFI_DEVICE_PATH_PROTOCOL
    {
        public byte Type;
        public byte SubType;
        public byte Length0;
        public byte Length1;

        public const byte MEDIA_DEVICE_PATH = 0x04;
        public const byte MEDIA_FILEPATH_DP = 0x04;
        public const byte END_DEVICE_PATH_TYPE = 0x7F;
        public const byte END_ENTIRE_DEVICE_PATH_SUBTYPE = 0xFF;

        public static readonly EFI_GUID Guid = new(0x09576E91, 0x6D3F, 0x11D2, 0x8E, 0x39, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B);

        public readonly int Length => Length0 | (Length1 << 8);

        public readonly bool IsEnd => Type == END_DEVICE_PATH_TYPE && SubType == END_ENTIRE_DEVICE_PATH_SUBTYPE;
    }
}
