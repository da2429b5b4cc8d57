// Reading and writing guest memory named by a guest-linear address (hypercall buffers, instruction
// bytes): a walk of the guest's page tables in whatever paging mode it runs (SDM Vol 3A 4.1.1,
// APM Vol 2 5.1): paging off (linear = physical), 32-bit paging (SDM 4.3, 4 MiB pages with PSE and
// PSE-36), PAE (SDM 4.4), 4-level and 5-level (CR4.LA57, SDM 4.5), with the canonical check and the
// access checks the guest's own CPU would make, then a physical copy.
// Every physical address the walk touches comes from the guest — CR3, the table pointer in each
// entry at every level, the final page — so each one is checked against the memory's PhysicalBounds
// before it is read: what the host maps (its identity map ends at the top of the memory map; device
// memory above it is not mapped for the host) and the hypervisor's reservation (the guest sees a
// blank or decoy page there, never the hypervisor's memory). An address that fails is a status for
// the caller (Unreachable, Forbidden), never a host page fault (issue #9: a 4-level walk of a
// 5-level guest read a PML5 entry as a PML4 entry and faulted the host at CR2 0x380001A48).
// Physical memory is reached through TMemory (identity map in the host, a fake in the tests).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using System.Runtime.CompilerServices;

namespace Vigil.Hypervisor.Core
{
    /// <summary>
    /// Guest-physical memory as the host reads it. <see cref="ReadUInt64"/> and <see cref="WriteByte"/> are raw
    /// accesses: callers check the address against <see cref="Bounds"/> first (GuestMemory and GuestCode always do).
    /// </summary>
    public interface IPhysicalMemory
    {
        /// <summary>Where the host may read and write guest memory on the guest's behalf.</summary>
        PhysicalBounds Bounds { get; }

        /// <summary>8 bytes at an address inside <see cref="Bounds"/>, all in one page: 8-byte aligned, but for GuestCode.FetchHead's instruction bytes (x86 reads those unaligned).</summary>
        ulong ReadUInt64(ulong address);

        void WriteByte(ulong address, byte value);

        /// <summary>8 bytes at an 8-byte aligned address inside <see cref="Bounds"/>.</summary>
        void WriteUInt64(ulong address, ulong value);
    }

    /// <summary>The outcome of a walk or copy; everything but <see cref="Ok"/> leaves guest memory untouched.</summary>
    public enum WalkResult
    {
        Ok,
        NotPresent,
        NotWritable,
        NotUser,

        /// <summary>A reserved bit is set in an entry (the CPU would raise #PF with RSVD), or a mode Vigil does not walk.</summary>
        Reserved,

        /// <summary>The address lies in the hypervisor's reservation.</summary>
        Forbidden,

        /// <summary>A table or page the host does not map (above the host's identity map): nothing read.</summary>
        Unreachable,

        /// <summary>A 64-bit linear address that is not canonical for the paging mode (the CPU would raise #GP).</summary>
        NonCanonical,
    }

    /// <summary>
    /// The physical range the host may touch for the guest: [0, <see cref="Limit"/>) minus the hypervisor's
    /// reservation [<see cref="ReservedBase"/>, +<see cref="ReservedSize"/>). The default value allows nothing.
    /// </summary>
    public readonly struct PhysicalBounds
    {
        public PhysicalBounds(ulong limit, ulong reservedBase, ulong reservedSize)
        {
            Limit = limit;
            ReservedBase = reservedBase;
            ReservedSize = reservedSize;
        }

        /// <summary>The end of the host's identity map.</summary>
        public ulong Limit { get; }

        public ulong ReservedBase { get; }

        public ulong ReservedSize { get; }

        /// <summary>Whether [<paramref name="address"/>, +<paramref name="length"/>) may be accessed: Ok, Unreachable or Forbidden.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public WalkResult Check(ulong address, ulong length)
        {
            if (length == 0) length = 1;
            if (address >= Limit || length > Limit - address) return WalkResult.Unreachable;
            if (ReservedSize != 0 && address < ReservedBase + ReservedSize && address + length > ReservedBase) return WalkResult.Forbidden;
            return WalkResult.Ok;
        }
    }

    /// <summary>What the guest was running with when it called (from the VMCS/VMCB).</summary>
    public readonly struct GuestPaging
    {
        public GuestPaging(ulong cr0, ulong cr3, ulong cr4, ulong efer, int cpl)
        {
            Cr0 = cr0;
            Cr3 = cr3;
            Cr4 = cr4;
            Efer = efer;
            Cpl = cpl;
        }

        public ulong Cr0 { get; }

        public ulong Cr3 { get; }

        public ulong Cr4 { get; }

        public ulong Efer { get; }

        public int Cpl { get; }

        /// <summary>CR0.PG.</summary>
        public bool PagingEnabled
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (Cr0 & (1UL << 31)) != 0;
        }

        /// <summary>CR0.PG and EFER.LMA: 4-level or 5-level paging (SDM Vol 3A 4.1.1).</summary>
        public bool LongModePaging
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => PagingEnabled && (Efer & (1UL << 10)) != 0;
        }

        /// <summary>CR4.LA57 in long mode: 5-level paging, 57-bit linear addresses (SDM Vol 3A 4.5.1).</summary>
        public bool FiveLevel
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => LongModePaging && (Cr4 & (1UL << 12)) != 0;
        }

        /// <summary>CR4.PAE: PAE paging outside long mode.</summary>
        public bool Pae
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (Cr4 & (1UL << 5)) != 0;
        }

        /// <summary>CR4.PSE: 4 MiB pages in 32-bit paging.</summary>
        public bool Pse
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (Cr4 & (1UL << 4)) != 0;
        }

        /// <summary>EFER.NXE: bit 63 of PAE and long-mode entries is XD rather than reserved.</summary>
        public bool NoExecuteEnabled
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (Efer & (1UL << 11)) != 0;
        }

        public bool WriteProtect
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => (Cr0 & (1UL << 16)) != 0;
        }
    }

    /// <summary>A leaf of the guest's page tables as <see cref="GuestMemory.Lookup"/> found it.</summary>
    public struct GuestPage
    {
        /// <summary>The physical address of the leaf's page (aligned to <see cref="Size"/>).</summary>
        public ulong Physical;

        /// <summary>Bytes the leaf maps (4 KiB, 2 MiB, 1 GiB), or the region of the not-present entry that ended the walk.</summary>
        public ulong Size;

        /// <summary>R/W set at every level.</summary>
        public bool Writable;

        /// <summary>U/S set at every level.</summary>
        public bool User;

        /// <summary>XD set at some level (with EFER.NXE).</summary>
        public bool NoExecute;
    }

    public static class GuestMemory
    {
        private const ulong Present = 1;
        private const ulong Writable = 1 << 1;
        private const ulong User = 1 << 2;
        private const ulong LargePage = 1 << 7;
        private const ulong ExecuteDisable = 1UL << 63;
        private const ulong AddressMask = 0x000F_FFFF_FFFF_F000;   // bits 51:12 of PAE and long-mode entries
        private const ulong AddressMask32 = 0xFFFF_F000;           // bits 31:12 of 32-bit entries

        /// <summary>
        /// Translates one linear address in the guest's current paging mode, checking every table it reads and the
        /// final address against <see cref="IPhysicalMemory.Bounds"/>. With paging off the linear address (its low
        /// 32 bits) is the physical one. The PDPTEs of PAE paging are read from memory (the CPU uses the copies it
        /// loaded with CR3, SDM Vol 3A 4.4.1: they differ only if the guest changed them without reloading CR3).
        /// </summary>
        public static WalkResult Translate<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, bool write, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            if (!paging.PagingEnabled)
            {
                ulong address = virtualAddress & 0xFFFF_FFFF;
                WalkResult check = memory.Bounds.Check(address, 1);
                if (check == WalkResult.Ok) physical = address;
                return check;
            }
            if (paging.LongModePaging) return WalkLong(ref memory, paging, virtualAddress, write, out physical);
            if (paging.Pae) return WalkPae(ref memory, paging, virtualAddress & 0xFFFF_FFFF, write, out physical);
            return Walk32(ref memory, paging, virtualAddress & 0xFFFF_FFFF, write, out physical);
        }

        /// <summary>
        /// Whether <paramref name="virtualAddress"/> is canonical in long mode: bits 63:47 (4-level) or 63:56 (5-level)
        /// all equal (SDM Vol 3A 3.3.7.1, 4.5).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool IsCanonical(ulong virtualAddress, bool fiveLevel)
        {
            int bits = fiveLevel ? 57 : 48;
            long signExtended = (long)(virtualAddress << (64 - bits)) >> (64 - bits);
            return (ulong)signExtended == virtualAddress;
        }

        /// <summary>4-level and 5-level paging (SDM Vol 3A 4.5): the leaf as <see cref="Lookup"/> walks to it, then the access checks.</summary>
        private static WalkResult WalkLong<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, bool write, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            WalkResult result = Lookup(ref memory, paging, virtualAddress, out GuestPage page);
            if (result != WalkResult.Ok) return result;
            var rights = new Rights(paging) { AllWritable = page.Writable, AllUser = page.User };
            return Finish(ref memory, rights, write, page.Physical | (virtualAddress & (page.Size - 1)), out physical);
        }

        /// <summary>
        /// PAE paging (SDM Vol 3A 4.4): CR3 bits 31:5 locate 4 PDPTEs; PDPTEs carry no access rights and have
        /// reserved bits 2:1 and 8:5 (SDM Table 4-8); then a 2-level walk of 8-byte entries.
        /// </summary>
        private static WalkResult WalkPae<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, bool write, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            ulong reserved = paging.NoExecuteEnabled ? 0 : ExecuteDisable;
            WalkResult read = ReadEntry(ref memory, (paging.Cr3 & 0xFFFF_FFE0) + ((virtualAddress >> 30) * 8), out ulong pdpte);
            if (read != WalkResult.Ok) return read;
            if ((pdpte & Present) == 0) return WalkResult.NotPresent;
            if ((pdpte & 0x1E6UL) != 0) return WalkResult.Reserved;
            var rights = new Rights(paging);
            ulong table = pdpte & AddressMask;
            for (int level = 2; level >= 1; level--)
            {
                int shift = 12 + (9 * (level - 1));
                read = ReadEntry(ref memory, table + (((virtualAddress >> shift) & 0x1FF) * 8), out ulong entry);
                if (read != WalkResult.Ok) return read;
                if ((entry & Present) == 0) return WalkResult.NotPresent;
                if ((entry & reserved) != 0) return WalkResult.Reserved;
                rights.Add(entry);
                if (level == 2 && (entry & LargePage) == 0)
                {
                    table = entry & AddressMask;
                    continue;
                }
                ulong pageMask = (1UL << shift) - 1;
                return Finish(ref memory, rights, write, (entry & AddressMask & ~pageMask) | (virtualAddress & pageMask), out physical);
            }
            return WalkResult.Reserved;
        }

        /// <summary>
        /// 32-bit paging (SDM Vol 3A 4.3): 4-byte entries, 10 bits per level; a PDE with PS and CR4.PSE maps 4 MiB,
        /// its bits 20:13 giving physical bits 39:32 (PSE-36) and bit 21 reserved.
        /// </summary>
        private static WalkResult Walk32<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, bool write, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            var rights = new Rights(paging);
            WalkResult read = ReadEntry32(ref memory, (paging.Cr3 & AddressMask32) + ((virtualAddress >> 22) * 4), out ulong pde);
            if (read != WalkResult.Ok) return read;
            if ((pde & Present) == 0) return WalkResult.NotPresent;
            rights.Add(pde);
            if ((pde & LargePage) != 0 && paging.Pse)
            {
                if ((pde & (1UL << 21)) != 0) return WalkResult.Reserved;
                ulong page = (pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32);
                return Finish(ref memory, rights, write, page | (virtualAddress & 0x3F_FFFF), out physical);
            }
            read = ReadEntry32(ref memory, (pde & AddressMask32) + (((virtualAddress >> 12) & 0x3FF) * 4), out ulong pte);
            if (read != WalkResult.Ok) return read;
            if ((pte & Present) == 0) return WalkResult.NotPresent;
            rights.Add(pte);
            return Finish(ref memory, rights, write, (pte & AddressMask32) | (virtualAddress & 0xFFF), out physical);
        }

        /// <summary>One 8-byte entry, its address checked against the bounds first.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static WalkResult ReadEntry<TMemory>(ref TMemory memory, ulong address, out ulong entry)
            where TMemory : struct, IPhysicalMemory
        {
            entry = 0;
            WalkResult check = memory.Bounds.Check(address, 8);
            if (check != WalkResult.Ok) return check;
            entry = memory.ReadUInt64(address);
            return WalkResult.Ok;
        }

        /// <summary>One 4-byte entry (32-bit paging), read as half of the aligned 8 bytes around it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static WalkResult ReadEntry32<TMemory>(ref TMemory memory, ulong address, out ulong entry)
            where TMemory : struct, IPhysicalMemory
        {
            entry = 0;
            WalkResult check = memory.Bounds.Check(address & ~7UL, 8);
            if (check != WalkResult.Ok) return check;
            entry = (memory.ReadUInt64(address & ~7UL) >> (int)((address & 4) * 8)) & 0xFFFF_FFFF;
            return WalkResult.Ok;
        }

        /// <summary>The access checks at the leaf, then the bounds check of the final address.</summary>
        private static WalkResult Finish<TMemory>(ref TMemory memory, in Rights rights, bool write, ulong address, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            if (rights.IsUser && !rights.AllUser) return WalkResult.NotUser;
            // Supervisor writes ignore R/W only when CR0.WP is clear (SDM Vol 3A 4.6.1).
            if (write && !rights.AllWritable && (rights.IsUser || rights.WriteProtect)) return WalkResult.NotWritable;
            WalkResult check = memory.Bounds.Check(address, 1);
            if (check == WalkResult.Ok) physical = address;
            return check;
        }

        /// <summary>R/W and U/S accumulated over the levels of a walk (the most restrictive wins, SDM Vol 3A 4.6.1).</summary>
        private struct Rights
        {
            public bool AllWritable;
            public bool AllUser;
            public readonly bool IsUser;
            public readonly bool WriteProtect;

            public Rights(in GuestPaging paging)
            {
                AllWritable = true;
                AllUser = true;
                IsUser = paging.Cpl == 3;
                WriteProtect = paging.WriteProtect;
            }

            public void Add(ulong entry)
            {
                AllWritable &= (entry & Writable) != 0;
                AllUser &= (entry & User) != 0;
            }
        }

        /// <summary>
        /// The leaf that maps <paramref name="virtualAddress"/> in long-mode paging (4-level or 5-level; anything else is
        /// Reserved), with the rights accumulated over every level (SDM Vol 3A 4.6.1: R/W and U/S the most restrictive,
        /// XD set at any level), for a walk over a region: <see cref="GuestPage.Size"/> says how far the answer holds, also
        /// when nothing is mapped (the size of the not-present entry's region), so the caller skips whole tables. Every
        /// table read is bounds-checked; the leaf's own page is not (the caller decides what to do with it).
        /// </summary>
        public static WalkResult Lookup<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, out GuestPage page)
            where TMemory : struct, IPhysicalMemory
        {
            page = default;
            page.Size = 4096;
            if (!paging.LongModePaging) return WalkResult.Reserved;
            bool fiveLevel = paging.FiveLevel;
            if (!IsCanonical(virtualAddress, fiveLevel)) return WalkResult.NonCanonical;
            ulong reserved = paging.NoExecuteEnabled ? 0 : ExecuteDisable;
            // Rights as bit masks (AND of R/W and U/S, OR of XD) and the bounds read once: this walk runs several times
            // per guarded write and per hypercall buffer page.
            ulong allOf = Writable | User, anyOf = 0;
            PhysicalBounds bounds = memory.Bounds;
            ulong table = paging.Cr3 & AddressMask;
            for (int level = fiveLevel ? 5 : 4; level >= 1; level--)
            {
                int shift = 12 + (9 * (level - 1));
                ulong address = table + (((virtualAddress >> shift) & 0x1FF) * 8);
                WalkResult read = bounds.Check(address, 8);
                if (read != WalkResult.Ok)
                {
                    page.Size = 1UL << shift;
                    return read;
                }
                ulong entry = memory.ReadUInt64(address);
                bool large = (entry & LargePage) != 0;
                if ((entry & Present) == 0 || (entry & reserved) != 0 || (large && level >= 4))
                {
                    page.Size = 1UL << shift;
                    return (entry & Present) == 0 ? WalkResult.NotPresent : WalkResult.Reserved;   // PS is reserved in PML5E and PML4E
                }
                allOf &= entry;
                anyOf |= entry;
                if (level > 1 && !large)
                {
                    table = entry & AddressMask;
                    continue;
                }
                page.Size = 1UL << shift;
                page.Physical = entry & AddressMask & ~(page.Size - 1);
                page.Writable = (allOf & Writable) != 0;
                page.User = (allOf & User) != 0;
                page.NoExecute = (anyOf & ExecuteDisable) != 0;
                return WalkResult.Ok;
            }
            return WalkResult.Reserved;
        }

        /// <summary>
        /// Copies the guest buffer at <paramref name="virtualAddress"/> into <paramref name="data"/>, page by page, with
        /// the guest's read rights (U/S for CPL 3); nothing is read outside the memory's bounds (the hypervisor's memory
        /// among them). On failure <paramref name="data"/> is cleared.
        /// </summary>
        public static WalkResult CopyFromGuest<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, System.Span<byte> data)
            where TMemory : struct, IPhysicalMemory
        {
            int done = 0;
            while (done < data.Length)
            {
                ulong va = virtualAddress + (ulong)done;
                WalkResult result = Translate(ref memory, paging, va, write: false, out ulong pa);
                int chunk = (int)System.Math.Min((ulong)(data.Length - done), 4096 - (va & 0xFFF));
                if (result == WalkResult.Ok) result = memory.Bounds.Check(pa, (ulong)chunk);
                if (result != WalkResult.Ok)
                {
                    data.Clear();
                    return result;
                }
                for (int i = 0; i < chunk; i++) data[done + i] = ReadByte(ref memory, pa + (ulong)i);
                done += chunk;
            }
            return WalkResult.Ok;
        }

        /// <summary>One byte, as part of the aligned 8 bytes around it (the address is inside the bounds).</summary>
        private static byte ReadByte<TMemory>(ref TMemory memory, ulong address)
            where TMemory : struct, IPhysicalMemory
            => (byte)(memory.ReadUInt64(address & ~7UL) >> (int)((address & 7) * 8));

        /// <summary>
        /// Copies <paramref name="data"/> to the guest buffer at <paramref name="virtualAddress"/>, page by page;
        /// nothing is written unless the whole buffer translates, is writable, lies inside the memory's bounds and
        /// outside [<paramref name="forbiddenBase"/>, +<paramref name="forbiddenSize"/>) (the hypervisor's memory;
        /// the bounds exclude it too) and outside the pages the guard protects.
        /// </summary>
        public static WalkResult CopyToGuest<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, System.ReadOnlySpan<byte> data, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            // First pass: check every page, so a failure leaves the guest buffer untouched.
            for (int pass = 0; pass < 2; pass++)
            {
                int done = 0;
                while (done < data.Length)
                {
                    ulong va = virtualAddress + (ulong)done;
                    WalkResult result = Translate(ref memory, paging, va, write: true, out ulong pa);
                    if (result != WalkResult.Ok) return result;
                    int chunk = (int)System.Math.Min((ulong)(data.Length - done), 4096 - (va & 0xFFF));
                    if (pa + (ulong)chunk > forbiddenBase && pa < forbiddenBase + forbiddenSize) return WalkResult.Forbidden;
                    // Never into a page the guard protects (a ring-0 caller with CR0.WP clear passes the walk's write check).
                    if (Guard.GuardState.ObjectAt(pa) != Vigil.Abi.GuardObject.None) return WalkResult.Forbidden;
                    result = memory.Bounds.Check(pa, (ulong)chunk);
                    if (result != WalkResult.Ok) return result;
                    if (pass == 1) Write(ref memory, pa, data.Slice(done, chunk));
                    done += chunk;
                }
            }
            return WalkResult.Ok;
        }

        /// <summary>
        /// <paramref name="data"/> to the physical range at <paramref name="address"/> (checked by the caller): bytes up to an
        /// 8-byte boundary, then 8 at a time (a Status report is some 20 KiB: byte stores made it ~400,000 instructions).
        /// </summary>
        private static unsafe void Write<TMemory>(ref TMemory memory, ulong address, System.ReadOnlySpan<byte> data)
            where TMemory : struct, IPhysicalMemory
        {
            int i = 0;
            for (; i < data.Length && ((address + (ulong)i) & 7) != 0; i++) memory.WriteByte(address + (ulong)i, data[i]);
            fixed (byte* source = &data[0])
            {
                for (; i + 8 <= data.Length; i += 8)
                    memory.WriteUInt64(address + (ulong)i, *(ulong*)(source + i));
            }
            for (; i < data.Length; i++) memory.WriteByte(address + (ulong)i, data[i]);
        }
    }
}
