// SVM intercepts of MOV to CR0/CR4 (with CLTS and LMSW, which the CR0 write intercept catches too, APM Vol
// 2 15.9), LIDT and LGDT, armed by the guard, without decode assists (QEMU TCG has none, APM Vol 2 15.33):
// the instruction is decoded from the guest's bytes at CS:RIP (Decoding/SystemInstruction) and emulated by
// the vendor-neutral handlers (ControlRegisterExit: validated like the hardware, pins judged;
// DescriptorTableExit). The decoded length is the step (no NRIP save either).
// Root mode (SVM host), on the CPU that exited, interrupts off. Compiled twice; no allocation.
using System;
using Vigil.Hypervisor.Core.Decoding;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public static unsafe class SystemInstructionExit
    {
        /// <summary>
        /// Emulates the intercepted instruction at CS:RIP. False when its bytes cannot be read or are not one of the
        /// forms above (the caller stops the guest: nothing else raises these intercepts). <paramref name="length"/> is
        /// the instruction's length when <paramref name="action"/> is Skip.
        /// </summary>
        public static bool Handle<T, TMemory, TCpus>(ref T vcpu, ref TMemory memory, ref TCpus cpus, out VcpuAction action, out int length)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TCpus : struct, INestedMapCpus
        {
            action = VcpuAction.Resume;
            length = 0;
            CpuMode mode = vcpu.Mode;
            bool is64 = mode == CpuMode.Bits64;
            ulong linear = is64 ? vcpu.Rip : (vcpu.CsBase + vcpu.Rip) & 0xFFFF_FFFF;
            byte* raw = stackalloc byte[InstructionLength.MaxLength];
            var code = new Span<byte>(raw, InstructionLength.MaxLength);
            int read = GuestCode.Fetch(ref memory, VcpuState.Paging(ref vcpu), linear, is64, code, vcpu.ReservedBase, vcpu.ReservedSize);
            if (read == 0) return false;
            ulong* regs = stackalloc ulong[16];
            for (int i = 0; i < 16; i++) regs[i] = i == 4 ? vcpu.Rsp : vcpu.Registers.Get(i);
            var context = new WriteContext { Registers = new ReadOnlySpan<ulong>(regs, 16), Rip = vcpu.Rip, Rflags = vcpu.Rflags, FsBase = vcpu.FsBase, GsBase = vcpu.GsBase };
            if (!SystemInstructionDecoder.Decode(code.Slice(0, read), is64, in context, out SystemInstruction s)) return false;
            length = s.Length;
            ulong value = s.Form is SystemForm.MoveToControlRegister or SystemForm.Lmsw ? regs[s.Register] : 0;
            if (!is64) value &= 0xFFFF_FFFF;   // outside 64-bit mode the operand is 32 bits
            switch (s.Form)
            {
                case SystemForm.MoveToControlRegister when s.ControlRegister == 0:
                    action = ControlRegisterExit.WriteCr0(ref vcpu, ref cpus, value);
                    return true;
                case SystemForm.MoveToControlRegister when s.ControlRegister == 4:
                    action = ControlRegisterExit.WriteCr4(ref vcpu, ref cpus, value);
                    return true;
                case SystemForm.Clts:
                    action = ControlRegisterExit.Clts(ref vcpu, ref cpus);
                    return true;
                case SystemForm.Lmsw:
                    action = ControlRegisterExit.Lmsw(ref vcpu, ref cpus, value);
                    return true;
                case SystemForm.Lgdt:
                case SystemForm.Lidt:
                    action = DescriptorTableExit.Table(ref vcpu, ref memory, ref cpus,
                        s.Form == SystemForm.Lidt ? DescriptorTableInstruction.Lidt : DescriptorTableInstruction.Lgdt, s.Address, operand16: false);
                    return true;
                default:
                    return false;
            }
        }
    }
}
