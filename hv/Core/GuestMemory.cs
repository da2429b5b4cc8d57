// Reading and writing guest memory named by a guest-virtual address, for hypercall buffers:
// a walk of the guest's 4-level page tables (SDM Vol 3A 4.5, APM Vol 2 5.3) with the access
// checks the guest's own CPU would make, then a physical copy that refuses the hypervisor's memory.
// Physical memory is reached through TMemory (identity map in the host, a fake in the tests).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public interface IPhysicalMemory
    {
        ulong ReadUInt64(ulong address);

        void WriteByte(ulong address, byte value);
    }

    public enum WalkResult
    {
        Ok,
        NotPresent,
        NotWritable,
        NotUser,
        Reserved,
        Forbidden,
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

        public bool LongModePaging => (Cr0 & (1UL << 31)) != 0 && (Efer & (1UL << 10)) != 0;

        public bool WriteProtect => (Cr0 & (1UL << 16)) != 0;
    }

    public static class GuestMemory
    {
        private const ulong Present = 1;
        private const ulong Writable = 1 << 1;
        private const ulong User = 1 << 2;
        private const ulong LargePage = 1 << 7;
        private const ulong AddressMask = 0x000F_FFFF_FFFF_F000;

        /// <summary>Translates one address; a 4-level walk only (the guests Vigil protects run in long mode).</summary>
        public static WalkResult Translate<TMemory>(ref TMemory memory, in GuestPaging paging, ulong virtualAddress, bool write, out ulong physical)
            where TMemory : struct, IPhysicalMemory
        {
            physical = 0;
            if (!paging.LongModePaging) return WalkResult.Reserved;
            bool user = paging.Cpl == 3;
            ulong table = paging.Cr3 & AddressMask;
            bool allWritable = true;
            bool allUser = true;
            for (int level = 4; level >= 1; level--)
            {
                int shift = 12 + (9 * (level - 1));
                ulong entry = memory.ReadUInt64(table + (((virtualAddress >> shift) & 0x1FF) * 8));
                if ((entry & Present) == 0) return WalkResult.NotPresent;
                allWritable &= (entry & Writable) != 0;
                allUser &= (entry & User) != 0;
                bool leaf = level == 1 || ((level == 2 || level == 3) && (entry & LargePage) != 0);
                if (level == 4 && (entry & LargePage) != 0) return WalkResult.Reserved;
                if (!leaf)
                {
                    table = entry & AddressMask;
                    continue;
                }
                if (user && !allUser) return WalkResult.NotUser;
                // Supervisor writes ignore R/W only when CR0.WP is clear (SDM Vol 3A 4.6.1).
                if (write && !allWritable && (user || paging.WriteProtect)) return WalkResult.NotWritable;
                ulong pageMask = (1UL << shift) - 1;
                physical = (entry & AddressMask & ~pageMask) | (virtualAddress & pageMask);
                return WalkResult.Ok;
            }
            return WalkResult.Reserved;
        }

        /// <summary>
        /// Copies <paramref name="data"/> to the guest buffer at <paramref name="virtualAddress"/>, page by
        /// page; nothing is written unless the whole buffer translates, is writable, and lies outside
        /// [<paramref name="forbiddenBase"/>, +<paramref name="forbiddenSize"/>) (the hypervisor's memory).
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
                    if (pass == 1)
                    {
                        for (int i = 0; i < chunk; i++) memory.WriteByte(pa + (ulong)i, data[done + i]);
                    }
                    done += chunk;
                }
            }
            return WalkResult.Ok;
        }
    }
}
