// Vigil's own PE32+ loader: copies an image (the hypervisor) into memory the caller reserved,
// section by section, and applies its base relocations for the address it was placed at.
// No imports are supported (Vigil's images have none). PE/COFF specification §2-§6.
// Compiled twice: into vigil.efi (no runtime) and into the unit tests (net10.0).
namespace Vigil.Boot.Loader
{
    public enum PeLoadError
    {
        None,
        TooSmall,
        NotMz,
        NotPe,
        NotAmd64,
        NotPe32Plus,
        HasImports,
        SectionOutOfFile,
        SectionOutOfImage,
        BadRelocations,
        UnsupportedRelocation,
        DestinationTooSmall,
    }

    /// <summary>The facts of a validated PE32+ image needed to place it.</summary>
    public readonly struct PeImageInfo
    {
        public PeImageInfo(ulong preferredBase, uint sizeOfImage, uint sizeOfHeaders, uint entryPointRva, int sectionTable, int sectionCount, uint relocationRva, uint relocationSize)
        {
            PreferredBase = preferredBase;
            SizeOfImage = sizeOfImage;
            SizeOfHeaders = sizeOfHeaders;
            EntryPointRva = entryPointRva;
            SectionTable = sectionTable;
            SectionCount = sectionCount;
            RelocationRva = relocationRva;
            RelocationSize = relocationSize;
        }

        public ulong PreferredBase { get; }

        public uint SizeOfImage { get; }

        public uint SizeOfHeaders { get; }

        public uint EntryPointRva { get; }

        public int SectionTable { get; }

        public int SectionCount { get; }

        public uint RelocationRva { get; }

        public uint RelocationSize { get; }
    }

    public static class PeImage
    {
        private const int ImageRelBasedAbsolute = 0;
        private const int ImageRelBasedDir64 = 10;

        public static string Describe(PeLoadError error) => error switch
        {
            PeLoadError.None => "no error",
            PeLoadError.TooSmall => "the file is too small to be a PE image",
            PeLoadError.NotMz => "no MZ header",
            PeLoadError.NotPe => "no PE signature",
            PeLoadError.NotAmd64 => "not an x86-64 image",
            PeLoadError.NotPe32Plus => "not a PE32+ image",
            PeLoadError.HasImports => "the image imports functions (Vigil's loader resolves none)",
            PeLoadError.SectionOutOfFile => "a section's raw data lies outside the file",
            PeLoadError.SectionOutOfImage => "a section lies outside SizeOfImage",
            PeLoadError.BadRelocations => "the base relocation table is malformed",
            PeLoadError.UnsupportedRelocation => "a base relocation type other than DIR64",
            PeLoadError.DestinationTooSmall => "the destination is smaller than SizeOfImage",
            _ => "unknown error",
        };

        /// <summary>Validates the headers of <paramref name="file"/>.</summary>
        public static PeLoadError Parse(System.ReadOnlySpan<byte> file, out PeImageInfo info)
        {
            info = default;
            if (file.Length < 0x40) return PeLoadError.TooSmall;
            if (file[0] != (byte)'M' || file[1] != (byte)'Z') return PeLoadError.NotMz;
            int nt = (int)U32(file, 0x3C);
            if (nt < 0 || nt > file.Length - 24 - 112) return PeLoadError.TooSmall;
            if (U32(file, nt) != 0x00004550) return PeLoadError.NotPe;
            if (U16(file, nt + 4) != 0x8664) return PeLoadError.NotAmd64;
            int sectionCount = U16(file, nt + 6);
            int optionalSize = U16(file, nt + 20);
            int optional = nt + 24;
            if (U16(file, optional) != 0x20B) return PeLoadError.NotPe32Plus;
            if (optionalSize < 112 + (6 * 8)) return PeLoadError.NotPe32Plus;
            uint entry = U32(file, optional + 16);
            ulong imageBase = U64(file, optional + 24);
            uint sizeOfImage = U32(file, optional + 56);
            uint sizeOfHeaders = U32(file, optional + 60);
            int directories = optional + 112;
            uint importSize = U32(file, directories + (1 * 8) + 4);
            if (importSize != 0) return PeLoadError.HasImports;
            uint relocRva = U32(file, directories + (5 * 8));
            uint relocSize = U32(file, directories + (5 * 8) + 4);
            int sections = optional + optionalSize;
            if (sections + (sectionCount * 40) > file.Length || sizeOfHeaders > file.Length || sizeOfHeaders > sizeOfImage) return PeLoadError.TooSmall;
            for (int i = 0; i < sectionCount; i++)
            {
                int s = sections + (i * 40);
                uint virtualSize = U32(file, s + 8);
                uint virtualAddress = U32(file, s + 12);
                uint rawSize = U32(file, s + 16);
                uint rawPointer = U32(file, s + 20);
                if ((ulong)rawPointer + rawSize > (ulong)file.Length) return PeLoadError.SectionOutOfFile;
                ulong extent = virtualSize > rawSize ? virtualSize : rawSize;
                if (virtualAddress + extent > sizeOfImage) return PeLoadError.SectionOutOfImage;
            }
            if ((ulong)relocRva + relocSize > sizeOfImage) return PeLoadError.BadRelocations;
            info = new PeImageInfo(imageBase, sizeOfImage, sizeOfHeaders, entry, sections, sectionCount, relocRva, relocSize);
            return PeLoadError.None;
        }

        /// <summary>
        /// Places the image at <paramref name="destination"/>, whose address is <paramref name="loadAddress"/>:
        /// zero-fills it, copies headers and sections, and rebases every DIR64 relocation.
        /// </summary>
        public static PeLoadError Load(System.ReadOnlySpan<byte> file, System.Span<byte> destination, ulong loadAddress, out PeImageInfo info)
        {
            PeLoadError error = Parse(file, out info);
            if (error != PeLoadError.None) return error;
            if ((uint)destination.Length < info.SizeOfImage) return PeLoadError.DestinationTooSmall;
            destination.Slice(0, (int)info.SizeOfImage).Clear();
            file.Slice(0, (int)info.SizeOfHeaders).CopyTo(destination);
            for (int i = 0; i < info.SectionCount; i++)
            {
                int s = info.SectionTable + (i * 40);
                uint virtualSize = U32(file, s + 8);
                uint virtualAddress = U32(file, s + 12);
                uint rawSize = U32(file, s + 16);
                uint rawPointer = U32(file, s + 20);
                uint copy = rawSize < virtualSize || virtualSize == 0 ? rawSize : virtualSize;
                file.Slice((int)rawPointer, (int)copy).CopyTo(destination.Slice((int)virtualAddress));
            }
            return Relocate(destination.Slice(0, (int)info.SizeOfImage), info, loadAddress - info.PreferredBase);
        }

        private static PeLoadError Relocate(System.Span<byte> image, PeImageInfo info, ulong delta)
        {
            int block = (int)info.RelocationRva;
            int end = block + (int)info.RelocationSize;
            while (block + 8 <= end)
            {
                uint pageRva = U32(image, block);
                int blockSize = (int)U32(image, block + 4);
                if (blockSize < 8 || block + blockSize > end || (blockSize & 1) != 0) return PeLoadError.BadRelocations;
                for (int entry = block + 8; entry < block + blockSize; entry += 2)
                {
                    int value = U16(image, entry);
                    int type = value >> 12;
                    if (type == ImageRelBasedAbsolute) continue;   // padding
                    if (type != ImageRelBasedDir64) return PeLoadError.UnsupportedRelocation;
                    long target = pageRva + (value & 0xFFF);
                    if (target + 8 > image.Length) return PeLoadError.BadRelocations;
                    WriteU64(image, (int)target, U64(image, (int)target) + delta);
                }
                block += blockSize;
            }
            return block == end || info.RelocationSize == 0 ? PeLoadError.None : PeLoadError.BadRelocations;
        }

        private static ushort U16(System.ReadOnlySpan<byte> b, int at) => (ushort)(b[at] | (b[at + 1] << 8));

        private static uint U32(System.ReadOnlySpan<byte> b, int at) => (uint)(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24));

        private static ulong U64(System.ReadOnlySpan<byte> b, int at) => U32(b, at) | ((ulong)U32(b, at + 4) << 32);

        private static void WriteU64(System.Span<byte> b, int at, ulong value)
        {
            for (int i = 0; i < 8; i++) b[at + i] = (byte)(value >> (8 * i));
        }
    }
}
