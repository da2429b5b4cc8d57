// VMX root, interrupts off, before every VM entry: this CPU's part of the kernel guard (hv/Core/Guard).
// When the guard's generation or the guest's long-mode paging changed since this CPU last armed
// (GuardArming), the VMCS is set for GuardState.Protected:
//   - CR0/CR4 guest/host masks (SDM Vol 3C 25.6.6): the launch masks plus the pinned bits (Pins.Cr0Set,
//     Cr4Set), so a MOV to CR0/CR4, CLTS or LMSW changing one exits (ControlRegisterHandler →
//     ControlRegisterExit judges a write that clears one). The read shadows first take the guest's current
//     view of CR0/CR4, so the guest keeps reading what it wrote for every bit;
//   - "descriptor-table exiting" (secondary control bit 2, SDM Vol 3C 25.6.2), only while the guest runs
//     with long-mode paging: LGDT/LIDT/LLDT/LTR/SGDT/SIDT/SLDT/STR exit (reasons 46, 47) and are emulated
//     (Handlers/DescriptorTableHandler); the real-mode and 32-bit steps of a CPU's start-up run natively;
//   - #BP in the exception bitmap (SDM Vol 3C 25.6.3) in the same modes: a breakpoint that is no longer in
//     memory is not delivered (hv/Core/Vcpu/BreakpointExit);
//   - the write bits of EFER and the syscall MSRs in the shared MSR bitmap (SDM Vol 3C 25.6.9): set while
//     Protected (every CPU writes the same bits).
// Before that, on every entry while protected: this CPU's GDT compared with its snapshot at most once per
// GuardDescriptors.CheckInterval (the fixed descriptors are checked, never write-protected).
using System.Runtime.CompilerServices;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Guard;
using Vigil.Hypervisor.Core.Msr;
using Vigil.Hypervisor.Native;

namespace Vigil.Hypervisor.Vmx
{
    internal static unsafe class VmxGuard
    {
        private const ulong BreakpointBit = 1UL << 3;   // #BP in the exception bitmap (SDM Vol 3C 25.6.3)

        /// <summary>Before every VM entry: nothing but a few compares unless the guard changed, the mode changed or a GDT check is due.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void BeforeEntry(ref VmxVcpu v)
        {
            bool rearm = GuardArming.BeforeEntry(ref v, out bool protect, out bool longPaging);
            if (GuardState.Protected)
            {
                ulong now = Vigil.Platform.Cpu.Rdtsc();
                if (GuardDescriptors.Due(v.Index, now)) CheckDescriptors(ref v, now);
            }
            if (rearm) Arm(ref v, protect, longPaging);
        }

        /// <summary>The GDT's fixed descriptors: compared with the snapshot now and then (hv/Core/Guard/GuardDescriptors).</summary>
        private static void CheckDescriptors(ref VmxVcpu v, ulong now)
        {
            var memory = new HostPhysicalMemory();
            var cpus = default(VmxNestedMapCpus);
            GuardDescriptors.BeforeEntry(ref v, ref memory, ref cpus, now);
        }

        /// <summary>The CR masks, exception bitmap, descriptor-table exiting and MSR bitmap bits for <paramref name="protect"/> in this mode.</summary>
        private static void Arm(ref VmxVcpu v, bool protect, bool longPaging)
        {
            VmxCpu* c = v.Exit->Cpu;
            ulong cr0Base = (c->Cr0Fixed0 | ~c->Cr0Fixed1) & ~((1UL << 0) | (1UL << 31));   // as at launch (VmxLaunch)
            ulong cr4Base = c->Cr4Fixed0 | ~c->Cr4Fixed1 | (1UL << 14);
            ulong cr0Mask = cr0Base | (protect ? GuardState.Pins.Cr0Set : 0);
            ulong cr4Mask = cr4Base | (protect ? GuardState.Pins.Cr4Set : 0);
            if (cr0Mask != c->Cr0Mask)
            {
                Write(VmcsField.Cr0ReadShadow, v.Cr0);   // the guest's view under the old mask
                Write(VmcsField.Cr0GuestHostMask, cr0Mask);
                c->Cr0Mask = cr0Mask;
            }
            if (cr4Mask != c->Cr4Mask)
            {
                Write(VmcsField.Cr4ReadShadow, v.Cr4);
                Write(VmcsField.Cr4GuestHostMask, cr4Mask);
                c->Cr4Mask = cr4Mask;
            }
            ulong exceptions = Read(VmcsField.ExceptionBitmap);
            ulong wantedExceptions = protect && longPaging ? exceptions | BreakpointBit : exceptions & ~BreakpointBit;
            if (wantedExceptions != exceptions) Write(VmcsField.ExceptionBitmap, wantedExceptions);
            if (VmxBackEnd.HasDescriptorTableExiting)
            {
                ulong secondary = Read(VmcsField.SecondaryProcessorBasedVmExecutionControls);
                ulong wanted = protect && longPaging ? secondary | (ulong)SecondaryControls.DescriptorTableExiting : secondary & ~(ulong)SecondaryControls.DescriptorTableExiting;
                if (wanted != secondary) Write(VmcsField.SecondaryProcessorBasedVmExecutionControls, wanted);
            }
            byte* bitmap = (byte*)VmxBackEnd.MsrBitmap;
            for (int i = 0; i < GuardMsrs.GuardedCount; i++)
            {
                int bit = MsrPolicy.VmxReadBit(GuardMsrs.Guarded(i));
                if (bit < 0) continue;
                bit += 2048 * 8;   // the write bitmaps follow the read bitmaps
                if (protect) bitmap[bit >> 3] |= (byte)(1 << (bit & 7));
                else bitmap[bit >> 3] &= (byte)~(1 << (bit & 7));
            }
        }

        private static ulong Read(VmcsField field) => HvStubs.VmReadValue((uint)field);

        private static void Write(VmcsField field, ulong value) => HvStubs.VmWrite((uint)field, value);
    }
}
