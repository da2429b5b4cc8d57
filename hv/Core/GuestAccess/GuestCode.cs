// The guest's instruction bytes at CS:RIP, for sizing (InstructionLength) an instruction an exit
// emulates when the CPU gives no length (no NRIP save under QEMU, APM Vol 2 15.7.1; EPT violations,
// SDM Vol 3C 28.2.5). Linear address = CS.base + RIP (truncated to 32 bits outside 64-bit mode),
// translated page by page in the guest's current paging mode by GuestMemory.Translate: paging off
// (real mode, firmware, AP start-up: linear = physical), 32-bit, PAE, 4-level and 5-level paging —
// an instruction may cross into a second page, translated on its own. Every page is checked against
// the memory's bounds (the host's identity map, the hypervisor's reservation) and the caller's
// forbidden range before a byte is read: what cannot be read ends the fetch, never faults the host.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core
{
    public static class GuestCode
    {
        /// <summary>
        /// Copies up to <paramref name="code"/>.Length bytes of the guest's code at <paramref name="linear"/>; returns
        /// how many were read (fewer when a later page does not translate, is unreachable or forbidden; 0 when the
        /// first does not). <paramref name="is64"/> says whether the linear address is 64 bits wide (64-bit mode).
        /// </summary>
        public static int Fetch<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, bool is64, System.Span<byte> code, ulong forbiddenBase, ulong forbiddenSize)
            where TMemory : struct, IPhysicalMemory
        {
            ulong physical = 0;
            for (int i = 0; i < code.Length; i++)
            {
                ulong address = linear + (ulong)i;
                if (!is64) address &= 0xFFFF_FFFF;
                if (i == 0 || (address & 0xFFF) == 0)
                {
                    // A new page: translate it (every mode, paging off included) and check all of it.
                    if (GuestMemory.Translate(ref memory, paging, address, write: false, out physical) != WalkResult.Ok) return i;
                    ulong page = physical & ~0xFFFUL;
                    if (page + 0x1000 > forbiddenBase && page < forbiddenBase + forbiddenSize) return i;
                    if (memory.Bounds.Check(page, 0x1000) != WalkResult.Ok) return i;
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
