// Memory types from the MTRRs (SDM Vol 3A 11.11, APM Vol 2 7.7): what the firmware programmed for
// each range of physical memory, read once at start-up and used to give every second-level (EPT/NPT)
// and host page the type the hardware would have used without Vigil. EPT ignores the MTRRs for guest
// accesses (SDM Vol 3C 29.3.7.2), so mapping MMIO as write-back there really makes it write-back
// (HyperPlatform #31); the types must come from here.
// Runs at initialization (BSP, before launch); nothing here allocates or throws.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    /// <summary>
    /// Memory types as the MTRRs, EPT entries (bits 5:3) and the PAT encode them (SDM Vol 3A Table 11-8,
    /// Table 11-10). 2 and 3 are reserved everywhere; 7 (UC-) exists only in the PAT and is not listed here.
    /// </summary>
    public enum MemoryType : byte
    {
        Uncacheable = 0,
        WriteCombining = 1,
        WriteThrough = 4,
        WriteProtected = 5,
        WriteBack = 6,
    }

    /// <summary>RDMSR, behind a struct-constrained generic: the hypervisor passes the instruction, tests a fake.</summary>
    public interface IMsrReader
    {
        ulong Read(uint msr);
    }

    /// <summary>
    /// A snapshot of the MTRRs: IA32_MTRRCAP, IA32_MTRR_DEF_TYPE, the 88 fixed ranges of the first MiB and
    /// the variable ranges. A plain value (fixed buffers, no references) that can live in hypervisor memory.
    /// </summary>
    public unsafe struct MtrrSet
    {
        /// <summary>Variable ranges kept; MTRRCAP.VCNT is 8-10 on real parts (SDM Vol 3A 11.11.1).</summary>
        public const int MaxVariableRanges = 32;

        /// <summary>8 x 64 KiB + 16 x 16 KiB + 64 x 4 KiB ranges cover 0-0xFFFFF (SDM Vol 3A 11.11.2.2).</summary>
        public const int FixedRangeCount = 88;

        /// <summary>The end of the fixed ranges: below it, enabled fixed ranges override everything else.</summary>
        public const ulong FixedRangeLimit = 0x10_0000;

        public const uint CapabilityMsr = 0xFE;          // IA32_MTRRCAP
        public const uint DefaultTypeMsr = 0x2FF;        // IA32_MTRR_DEF_TYPE
        public const uint PhysBase0Msr = 0x200;          // IA32_MTRR_PHYSBASEn = 0x200 + 2n
        public const uint PhysMask0Msr = 0x201;          // IA32_MTRR_PHYSMASKn = 0x201 + 2n
        public const uint Fix64K00000Msr = 0x250;        // IA32_MTRR_FIX64K_00000: 0x00000-0x7FFFF
        public const uint Fix16K80000Msr = 0x258;        // IA32_MTRR_FIX16K_80000: 0x80000-0x9FFFF
        public const uint Fix16KA0000Msr = 0x259;        // IA32_MTRR_FIX16K_A0000: 0xA0000-0xBFFFF
        public const uint Fix4KC0000Msr = 0x268;         // IA32_MTRR_FIX4K_C0000 .. _F8000 = 0x26F

        /// <summary>AMD SYSCFG and TOP_MEM2 (APM Vol 2 3.2.1, 7.9): see <see cref="ApplyAmdTopOfMemory2"/>.</summary>
        public const uint AmdSyscfgMsr = 0xC001_0010;

        public const uint AmdTopOfMemory2Msr = 0xC001_001D;

        private const ulong CapVcntMask = 0xFF;              // MTRRCAP bits 7:0: variable range count
        private const ulong CapFixedSupported = 1UL << 8;    // MTRRCAP.FIX
        private const ulong DefTypeMask = 0xFF;              // MTRR_DEF_TYPE bits 7:0
        private const ulong DefFixedEnable = 1UL << 10;      // MTRR_DEF_TYPE.FE
        private const ulong DefEnable = 1UL << 11;           // MTRR_DEF_TYPE.E
        private const ulong MaskValid = 1UL << 11;           // PHYSMASKn.V
        private const ulong AddressBits = 0x000F_FFFF_FFFF_F000;  // bits 51:12 of PHYSBASE/PHYSMASK
        private const ulong SyscfgMtrrTom2En = 1UL << 21;
        private const ulong SyscfgTom2ForceMemTypeWB = 1UL << 22;
        private const ulong FourGiB = 0x1_0000_0000;
        private const int TypeBitUncacheable = 1 << 0;
        private const int TypeBitWriteThrough = 1 << 4;
        private const int TypeBitWriteBack = 1 << 6;

        private fixed byte _fixed[FixedRangeCount];
        private fixed ulong _physBase[MaxVariableRanges];
        private fixed ulong _physMask[MaxVariableRanges];
        private ulong _capability;
        private ulong _defType;
        private ulong _tom2;   // AMD: [4 GiB, _tom2) defaults to WB instead of the default type; 0 = off
        private int _variableCount;

        /// <summary>A set from the two control MSRs' raw values; fixed and variable ranges start all zero (UC, invalid).</summary>
        public MtrrSet(ulong capability, ulong defaultType)
        {
            _capability = capability;
            _defType = defaultType;
            _variableCount = (int)System.Math.Min(capability & CapVcntMask, (ulong)MaxVariableRanges);
        }

        /// <summary>
        /// No MTRRs at all (CPUID.1:EDX.MTRR clear, SDM Vol 3A 11.11.1): every address has <paramref name="type"/>.
        /// Without MTRRs the PAT alone decides, which is what <see cref="MemoryType.WriteBack"/> here reproduces.
        /// </summary>
        public static MtrrSet Uniform(MemoryType type) => new MtrrSet(0, DefEnable | (ulong)type);

        /// <summary>
        /// Reads the MTRRs through <paramref name="msrs"/> (the caller has checked CPUID.1:EDX.MTRR). Only the MSRs
        /// MTRRCAP announces are read (the others raise #GP). False when the CPU has more variable ranges than
        /// <see cref="MaxVariableRanges"/>: the set then holds the first ones only and must not be trusted.
        /// </summary>
        public static bool Read<TMsr>(ref TMsr msrs, out MtrrSet set)
            where TMsr : struct, IMsrReader
        {
            ulong capability = msrs.Read(CapabilityMsr);
            set = new MtrrSet(capability, msrs.Read(DefaultTypeMsr));
            for (int i = 0; i < set._variableCount; i++)
            {
                set._physBase[i] = msrs.Read(PhysBase0Msr + (uint)(2 * i));
                set._physMask[i] = msrs.Read(PhysMask0Msr + (uint)(2 * i));
            }
            if ((capability & CapFixedSupported) != 0)
            {
                set.SetFixedRangeMsr(Fix64K00000Msr, msrs.Read(Fix64K00000Msr));
                set.SetFixedRangeMsr(Fix16K80000Msr, msrs.Read(Fix16K80000Msr));
                set.SetFixedRangeMsr(Fix16KA0000Msr, msrs.Read(Fix16KA0000Msr));
                for (uint msr = Fix4KC0000Msr; msr < Fix4KC0000Msr + 8; msr++) set.SetFixedRangeMsr(msr, msrs.Read(msr));
            }
            return (capability & CapVcntMask) <= MaxVariableRanges;
        }

        /// <summary>MTRR_DEF_TYPE.E: when clear, all of physical memory is UC (SDM Vol 3A 11.11.2.1).</summary>
        public readonly bool Enabled => (_defType & DefEnable) != 0;

        /// <summary>MTRR_DEF_TYPE.FE (and MTRRCAP.FIX): the fixed ranges govern the first MiB.</summary>
        public readonly bool FixedRangesEnabled
            => Enabled && (_defType & DefFixedEnable) != 0 && (_capability & CapFixedSupported) != 0;

        public readonly MemoryType DefaultType => Sanitize((byte)(_defType & DefTypeMask));

        /// <summary>Variable range pairs held (MTRRCAP.VCNT, at most <see cref="MaxVariableRanges"/>).</summary>
        public readonly int VariableCount => _variableCount;

        public readonly ulong Capability => _capability;

        public readonly ulong DefaultTypeRegister => _defType;

        /// <summary>
        /// Stores one fixed-range MSR's raw value: eight one-byte types, byte 0 for the lowest addresses
        /// (SDM Vol 3A 11.11.2.2). Bits 4:3 of each byte are AMD's RdMem/WrMem (APM Vol 2 7.7.3), not the
        /// type, so only bits 2:0 are kept. False for an MSR that is not a fixed-range MTRR.
        /// </summary>
        public bool SetFixedRangeMsr(uint msr, ulong value)
        {
            int first;
            if (msr == Fix64K00000Msr) first = 0;
            else if (msr == Fix16K80000Msr) first = 8;
            else if (msr == Fix16KA0000Msr) first = 16;
            else if (msr >= Fix4KC0000Msr && msr < Fix4KC0000Msr + 8) first = 24 + (8 * (int)(msr - Fix4KC0000Msr));
            else return false;
            for (int i = 0; i < 8; i++) _fixed[first + i] = (byte)((value >> (8 * i)) & 0x7);
            return true;
        }

        /// <summary>Stores variable range <paramref name="index"/>'s raw IA32_MTRR_PHYSBASEn / PHYSMASKn (SDM Vol 3A 11.11.2.3).</summary>
        public bool SetVariableRange(int index, ulong physBase, ulong physMask)
        {
            if (index < 0 || index >= _variableCount) return false;
            _physBase[index] = physBase;
            _physMask[index] = physMask;
            return true;
        }

        /// <summary>
        /// AMD: with SYSCFG.MtrrTom2En and SYSCFG.Tom2ForceMemTypeWB set, memory from 4 GiB up to TOP_MEM2 that no
        /// variable range covers is WB instead of the default type (APM Vol 2 3.2.1). The SVM back end reads
        /// both MSRs (they do not exist on Intel) and passes them here.
        /// </summary>
        public void ApplyAmdTopOfMemory2(ulong syscfg, ulong topOfMemory2)
        {
            bool force = (syscfg & SyscfgMtrrTom2En) != 0 && (syscfg & SyscfgTom2ForceMemTypeWB) != 0;
            _tom2 = force ? topOfMemory2 & 0x000F_FFFF_FF80_0000 : 0;   // TOP_MEM2 bits 51:23
        }

        /// <summary>
        /// The memory type of one physical address, with the precedence of SDM Vol 3A 11.11.4.1: MTRRs disabled
        /// → UC; below 1 MiB with fixed ranges enabled → the fixed range; one or more variable ranges match →
        /// UC if any is UC, WT if they are WT and WB, their type if all agree, otherwise (undefined) UC;
        /// no match → the default type.
        /// </summary>
        public readonly MemoryType TypeOf(ulong address)
        {
            if (!Enabled) return MemoryType.Uncacheable;
            if (address < FixedRangeLimit && FixedRangesEnabled) return FixedType(FixedIndex(address));
            int types = 0;
            for (int i = 0; i < _variableCount; i++)
            {
                ulong mask = _physMask[i];
                if ((mask & MaskValid) == 0) continue;
                mask &= AddressBits;
                if (((address ^ _physBase[i]) & mask) == 0) types |= 1 << (int)VariableType(i);
            }
            return types == 0 ? DefaultFor(address) : Combine(types);
        }

        /// <summary>
        /// True when every byte of the naturally aligned power-of-two region [<paramref name="regionBase"/>,
        /// +<paramref name="size"/>) (4 KiB, 2 MiB, 1 GiB) has one memory type, so one page may map it
        /// (SDM Vol 3A 11.11.9). Conservative: the region is uniform only if no valid variable range covers a
        /// part of it (outside the first MiB when the fixed ranges govern that), and all fixed ranges inside
        /// it agree. A 4 KiB page is always uniform. False for a region that is not aligned to its size.
        /// </summary>
        public readonly bool IsUniform(ulong regionBase, ulong size, out MemoryType type)
        {
            type = MemoryType.Uncacheable;
            if (size < 0x1000 || (size & (size - 1)) != 0 || (regionBase & (size - 1)) != 0) return false;
            if (!Enabled) return true;
            if (regionBase >= FixedRangeLimit || !FixedRangesEnabled) return VariableUniform(regionBase, size, out type);

            // The fixed ranges govern [regionBase, min(end, 1 MiB)): they must all agree.
            ulong end = regionBase + size;
            ulong fixedEnd = end < FixedRangeLimit ? end : FixedRangeLimit;
            type = FixedType(FixedIndex(regionBase));
            for (ulong a = regionBase; a < fixedEnd; a = FixedRangeEnd(a))
            {
                if (FixedType(FixedIndex(a)) != type) return false;
            }
            if (end <= FixedRangeLimit) return true;

            // Aligned and larger than 1 MiB, so it starts at 0: the rest [1 MiB, end) is the aligned blocks
            // [1, 2), [2, 4), ... MiB, which the variable ranges govern.
            for (ulong block = FixedRangeLimit; block < end; block <<= 1)
            {
                if (!VariableUniform(block, block, out MemoryType rest) || rest != type) return false;
            }
            return true;
        }

        /// <summary>The type of fixed range <paramref name="index"/> (0-87; see <see cref="FixedIndex"/>).</summary>
        public readonly MemoryType FixedType(int index) => Sanitize(_fixed[index]);

        /// <summary>Which of the 88 fixed ranges holds an address below 1 MiB.</summary>
        public static int FixedIndex(ulong address)
        {
            if (address < 0x8_0000) return (int)(address >> 16);                     // 64 KiB ranges
            if (address < 0xC_0000) return 8 + (int)((address - 0x8_0000) >> 14);    // 16 KiB ranges
            return 24 + (int)((address - 0xC_0000) >> 12);                           // 4 KiB ranges
        }

        private static ulong FixedRangeEnd(ulong address)
        {
            ulong size = address < 0x8_0000 ? 0x1_0000UL : address < 0xC_0000 ? 0x4000UL : 0x1000UL;
            return (address & ~(size - 1)) + size;
        }

        private readonly bool VariableUniform(ulong regionBase, ulong size, out MemoryType type)
        {
            type = MemoryType.Uncacheable;
            ulong inside = size - 1;
            int types = 0;
            for (int i = 0; i < _variableCount; i++)
            {
                ulong mask = _physMask[i];
                if ((mask & MaskValid) == 0) continue;
                mask &= AddressBits;
                // The range matches address A when (A ^ base) & mask == 0. In the region the bits above the
                // region's size are those of regionBase and the bits below take every value.
                if (((regionBase ^ _physBase[i]) & mask & ~inside) != 0) continue;   // matches nothing in it
                if ((mask & inside) != 0) return false;                                // matches a part of it
                types |= 1 << (int)VariableType(i);
            }
            if (types != 0)
            {
                type = Combine(types);
                return true;
            }
            if (_tom2 > FourGiB)
            {
                ulong end = regionBase + size;
                bool allIn = regionBase >= FourGiB && end <= _tom2;
                bool allOut = end <= FourGiB || regionBase >= _tom2;
                if (!allIn && !allOut) return false;
            }
            type = DefaultFor(regionBase);
            return true;
        }

        private readonly MemoryType VariableType(int index) => Sanitize((byte)_physBase[index]);

        private readonly MemoryType DefaultFor(ulong address)
            => address >= FourGiB && address < _tom2 ? MemoryType.WriteBack : DefaultType;

        /// <summary>Several matching variable ranges (SDM Vol 3A 11.11.4.1); <paramref name="types"/> is a bit per type.</summary>
        private static MemoryType Combine(int types)
        {
            if ((types & TypeBitUncacheable) != 0) return MemoryType.Uncacheable;
            if ((types & (types - 1)) == 0)
            {
                int t = 0;
                while ((types >> t) != 1) t++;
                return (MemoryType)t;
            }
            if (types == (TypeBitWriteThrough | TypeBitWriteBack)) return MemoryType.WriteThrough;
            return MemoryType.Uncacheable;   // undefined by the SDM: the safe choice
        }

        /// <summary>Reserved encodings (2, 3, 7 and up raise #GP when written) are read as UC.</summary>
        private static MemoryType Sanitize(byte value)
            => value == 1 || value == 4 || value == 5 || value == 6 ? (MemoryType)value : MemoryType.Uncacheable;
    }
}
