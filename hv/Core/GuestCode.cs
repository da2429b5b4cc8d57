// The guest's instruction bytes at CS:RIP, for sizing (InstructionLength) an instruction an exit
// emulates when the CPU gives no length (no NRIP save under QEMU, APM Vol 2 15.7.1; EPT violations,
// SDM Vol 3C 28.2.5). Linear address = CS.base + RIP (truncated to 32 bits outside 64-bit mode);
// with paging off (real mode, or protected mode without CR0.PG) the linear address is the physical
// one; with paging on, each page is translated by the guest's 4-level walk (GuestMemory.Translate) —
// an instruction may cross into a second page, translated on its own. Legacy 32-bit and PAE paging
// are not walked (the guests Vigil protects page in long mode; the firmware runs identity-mapped long
// mode): fetching then yields nothing and the caller's defined outcome applies. Memory in the
// forbidden range (the hypervisor's) is never read.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public static class GuestCode
    {
        private const ulong PagingEnabled = 1UL << 31;   // CR0.PG

        /// <summary>
        /// Copies up to <paramref name="code"/>.Length bytes of the guest's code at <paramref name="linear"/>; returns
        /// how many were read (fewer when a later page does not translate or is forbidden; 0 when the first
        /// does not). <paramref name="is64"/> says whether the linear address is 64 bits wide (64-bit mode).
        /// </summary>
        public static int Fetch<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, bool is64, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            bool paged = (paging.Cr0 & PagingEnabled) != 0;
            ulong physical = 0;
            for (int i = 0; i < code.Length; i++)
            {
                ulong address = linear + (ulong)i;
                if (!is64) address &= 0xFFFF_FFFF;
                if (i == 0 || (address & 0xFFF) == 0)
                {
                    // A new page: translate it (paging) or take it as it is (no paging).
                    if (!paged) physical = address;
                    else if (GuestMemory.Translate(ref memory, paging, address, write: false, out physical) != WalkResult.Ok) return i;
                    ulong page = physical & ~0xFFFUL;
                    if (page + 0x1000 > forbiddenBase && page < forbiddenBase + forbiddenSize) return i;
                }
                else
                {
                    physical++;
                }
                code[i] = (byte)(memory.ReadUInt64(physical & ~7UL) >> (int)((physical & 7) * 8));
            }
            return code.Length;
        }
    }
}
