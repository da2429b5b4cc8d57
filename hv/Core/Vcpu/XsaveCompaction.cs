// Whether the guest may be offered the compacted XSAVE format: XSAVEC and XSAVES (CPUID.(0DH,1):EAX bits 1 and 3).
// An OS that uses it sizes its save areas from CPUID.(0DH,1):EBX, "the size in bytes of the XSAVE area containing all
// states enabled by XCR0 | IA32_XSS" (SDM Vol 2A CPUID, Table 3-8), and finds each component where the compacted
// format puts it: after the 512-byte legacy region and the 64-byte header, in the order of the state-component
// numbers, each one rounded up to 64 bytes when CPUID.(0DH,i):ECX[1] is set (SDM Vol 1 13.4.3).
//
// A CPU whose EBX disagrees with that layout does not implement the format the manual describes. Bochs 2.7 is one:
// its EBX is the standard-format size (bochs/cpu/cpuid.cc, get_std_cpuid_xsave_leaf, subleaf 1: the offset of the
// topmost enabled component in the standard format plus its size, 2688 for x87|SSE|AVX|AVX-512 where the compacted
// size is 2432), and its XSAVEC/XSAVES store the AVX component and all later ones 160 bytes below their compacted
// offsets, partly under the header written after them (bochs/cpu/xsave.cc, BX_CPU_C::XSAVEC: the running offset
// starts at the SSE area, 160, instead of 576; fixed after 2.7 by Bochs commit e54048c16), while its XRSTOR(S) reads
// them from 576 on. Linux 6.1 notices the size (arch/x86/kernel/fpu/xstate.c, paranoid_xstate_size_valid: "XSAVE
// consistency problem: size 2432 != kernel_size 2688") and turns XSAVE off altogether: the guest loses AVX.
//
// Such a CPU gets XSAVEC and XSAVES hidden, so the guest uses the standard format (XSAVE/XSAVEOPT/XRSTOR at the
// offsets of CPUID.(0DH,i):EBX, sized by CPUID.(0DH,0):EBX), which Bochs 2.7 gets right. Correcting EBX instead is
// never safe: the layout the CPU really writes would still be wrong (register state lost across a context switch),
// and a size smaller than what the CPU writes would let it write past the guest's buffers. On a CPU that agrees (all
// real hardware: the check is the one Linux itself makes before it trusts the format) nothing changes.
//
// The answer must not depend on when the guest asks: Linux reads the feature bits once, early, while XCR0 may still
// hold x87|SSE (or x87|SSE|AVX, where both formats have the same size), and sizes its buffers later with every
// component enabled. So the size is checked for the guest's XCR0 | IA32_XSS and for XCR0 holding every component the
// CPU supports (CPUID.(0DH,0):EDX:EAX). Neither XCR0 nor IA32_XSS is switched by VM entry/exit or VMRUN/#VMEXIT: in
// root mode they are the guest's, and CPUID executed here answers for them. XCR0 is raised to the full set for one
// CPUID and the guest's value put back; the guest's enabled components keep their state (XSETBV changes no state of a
// component enabled before and after; KVM switches XCR0 around guest state the same way on every entry and exit).
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    public static class XsaveCompaction
    {
        /// <summary>CPUID.(0DH,1):EAX bit 1: XSAVEC and the compacted format (with XGETBV ECX=1 in bit 2, left alone).</summary>
        public const uint XsavecBit = 1u << 1;

        /// <summary>CPUID.(0DH,1):EAX bit 3: XSAVES/XRSTORS and IA32_XSS.</summary>
        public const uint XsavesBit = 1u << 3;

        /// <summary>IA32_XSS (SDM Vol 4, Table 2-2).</summary>
        public const uint XssMsr = 0xDA0;

        /// <summary>The legacy region (512 bytes) and the XSAVE header (64 bytes): where the first extended component starts (SDM Vol 1 13.4.3).</summary>
        public const uint LegacyAndHeaderSize = 576;

        /// <summary>CPUID.(0DH,i):ECX bit 1: component i is 64-byte aligned in the compacted format.</summary>
        private const uint Align64Bit = 1u << 1;

        /// <summary>
        /// Edits the answer of CPUID leaf 0DH subleaf 1 (the hardware's, after <see cref="CpuidPolicy.ForGuest"/>): hides
        /// XSAVEC, XSAVES and the IA32_XSS bits when the CPU's compacted size disagrees with its compacted layout.
        /// </summary>
        public static void Filter<T>(ref T vcpu, ref uint eax, uint ebx, ref uint ecx, ref uint edx) where T : struct, IVcpu
        {
            if ((eax & (XsavecBit | XsavesBit)) == 0) return;
            if (SizeMatchesLayout(ref vcpu, ebx)) return;
            eax &= ~(XsavecBit | XsavesBit);
            ecx = edx = 0;   // the IA32_XSS bits: nothing can be enabled without XSAVES
        }

        /// <summary>
        /// True when CPUID.(0DH,1):EBX (<paramref name="reportedSize"/>, read under the guest's XCR0 | IA32_XSS) is the
        /// compacted size of those components, and the same holds with every XCR0 component the CPU supports enabled.
        /// </summary>
        public static bool SizeMatchesLayout<T>(ref T vcpu, uint reportedSize) where T : struct, IVcpu
        {
            ulong xss = vcpu.TryRead(XssMsr, out ulong value) ? value : 0;   // #GP without XSAVES: nothing enabled there
            ulong xcr0 = vcpu.Xcr0;
            uint expected = CompactedSize(ref vcpu, xcr0 | xss);
            if (expected == 0 || expected != reportedSize) return false;

            vcpu.HostCpuid(0xD, 0, out CpuidResult d);
            ulong supported = ((ulong)d.Edx << 32) | d.Eax;
            if ((xcr0 | supported) == xcr0 || !XsetbvExit.ValidXcr0(supported, supported)) return true;   // nothing more to see

            vcpu.LoadXcr0(supported);
            vcpu.HostCpuid(0xD, 1, out CpuidResult full);
            vcpu.LoadXcr0(xcr0);
            uint fullExpected = CompactedSize(ref vcpu, supported | xss);
            return fullExpected != 0 && fullExpected == full.Ebx;
        }

        /// <summary>
        /// The size of a compacted XSAVE area holding the components of <paramref name="mask"/>, from the CPU's own
        /// description of them (CPUID.(0DH,i):EAX size, ECX[1] alignment; SDM Vol 1 13.4.3); 0 when the CPU describes a
        /// component of the mask with size 0 (there is then no layout to trust).
        /// </summary>
        public static uint CompactedSize<T>(ref T vcpu, ulong mask) where T : struct, IVcpu
        {
            uint size = LegacyAndHeaderSize;
            for (int i = 2; i < 64; i++)
            {
                if ((mask & (1UL << i)) == 0) continue;
                vcpu.HostCpuid(0xD, (uint)i, out CpuidResult component);   // EAX: size, ECX: flags
                if (component.Eax == 0) return 0;
                if ((component.Ecx & Align64Bit) != 0) size = (size + 63) & ~63u;
                size += component.Eax;
            }
            return size;
        }
    }
}
