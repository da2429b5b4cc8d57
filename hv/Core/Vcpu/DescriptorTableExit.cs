// Descriptor-table instructions that exit while the guard is armed, emulated as the CPU executes them
// (SDM Vol 2A LGDT/LIDT, SGDT, SIDT, Vol 2A/2B LLDT, LTR, SLDT, STR; Vol 3A 3.5.1, 8.2.3, 8.2.4):
//   VMX "descriptor-table exiting" makes all eight exit (SDM Vol 3C 26.1.3; reasons 46/47); SVM intercepts
//   only the writes the guard wants, LIDT/LGDT (#VMEXIT 0x6A IDTR_WRITE, 0x6B GDTR_WRITE, APM Vol 2 Table C-1; decoded from the bytes,
//   Decoding/SystemInstruction). The back end computes the operand's linear address (VMX: instruction
//   information, Tables 28-10/28-11) and the operand size; here memory is read and written through the
//   guest's own page walk (a failure is the #PF the CPU would raise), LIDT/LGDT are judged
//   (hv/Core/Guard/GuardRegisters: Allow loads, Block skips, BlockAndFault #GP(0)), and the rest is done:
//   SGDT/SIDT store limit and base (8 bytes of base in 64-bit mode, else 4; a 16-bit operand stores 24 bits),
//   SLDT/STR store the selector (a register operand zero-extended), LLDT/LTR load the descriptor from the GDT
//   (16 bytes in IA-32e mode) with the checks that raise #GP(selector) or #NP(selector), and LTR marks the TSS busy.
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off. Compiled twice; no allocation.
using System;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Hypervisor.Core.Vcpu
{
    public enum DescriptorTableInstruction
    {
        Sgdt,
        Sidt,
        Lgdt,
        Lidt,
        Sldt,
        Str,
        Lldt,
        Ltr,
    }

    public static unsafe class DescriptorTableExit
    {
        private const uint Unusable = 1u << 16;   // VMX access rights "segment unusable" (SDM Vol 3C 25.4.1)

        /// <summary>
        /// LGDT/LIDT/SGDT/SIDT with the operand at <paramref name="linear"/>; <paramref name="operand16"/>: a 16-bit operand size
        /// outside 64-bit mode (24-bit base).
        /// </summary>
        public static VcpuAction Table<T, TMemory, TCpus>(ref T vcpu, ref TMemory memory, ref TCpus cpus, DescriptorTableInstruction which, ulong linear, bool operand16)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TCpus : struct, INestedMapCpus
        {
            if (vcpu.Cpl != 0 && which is DescriptorTableInstruction.Lgdt or DescriptorTableInstruction.Lidt) return VcpuState.GeneralProtection(ref vcpu);
            bool is64 = vcpu.Mode == CpuMode.Bits64;
            int size = is64 ? 10 : 6;
            byte* bytes = stackalloc byte[10];
            var operand = new Span<byte>(bytes, size);
            GuestPaging paging = VcpuState.Paging(ref vcpu);
            vcpu.ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out ulong idtBase, out uint idtLimit);
            if (which is DescriptorTableInstruction.Sgdt or DescriptorTableInstruction.Sidt)
            {
                ulong b = which == DescriptorTableInstruction.Sgdt ? gdtBase : idtBase;
                uint l = which == DescriptorTableInstruction.Sgdt ? gdtLimit : idtLimit;
                if (!is64) b &= operand16 ? 0xFF_FFFFUL : 0xFFFF_FFFFUL;
                bytes[0] = (byte)l;
                bytes[1] = (byte)(l >> 8);
                for (int i = 0; i < size - 2; i++) bytes[2 + i] = (byte)(b >> (8 * i));
                WalkResult w = GuestMemory.CopyToGuest(ref memory, paging, linear, operand, vcpu.ReservedBase, vcpu.ReservedSize);
                return w == WalkResult.Ok ? VcpuAction.Skip : Fault(ref vcpu, linear, w, write: true);
            }
            WalkResult r = Read(ref memory, paging, linear, operand);
            if (r != WalkResult.Ok) return Fault(ref vcpu, linear, r, write: false);
            uint limit = (uint)(bytes[0] | (bytes[1] << 8));
            ulong baseAddress = 0;
            for (int i = 0; i < size - 2; i++) baseAddress |= (ulong)bytes[2 + i] << (8 * i);
            if (!is64 && operand16) baseAddress &= 0xFF_FFFF;
            bool idt = which == DescriptorTableInstruction.Lidt;
            if (is64 && !GuestMemory.IsCanonical(baseAddress, (vcpu.Cr4 & (1UL << 12)) != 0)) return VcpuState.GeneralProtection(ref vcpu);
            switch (GuardRegisters.DescriptorTable(ref vcpu, ref cpus, idt, baseAddress, limit))
            {
                case PinOutcome.Retry: return VcpuAction.Resume;
                case PinOutcome.Fault: return VcpuState.GeneralProtection(ref vcpu);
                case PinOutcome.Block: return VcpuAction.Skip;
            }
            if (idt) vcpu.LoadDescriptorTables(gdtBase, gdtLimit, baseAddress, limit);
            else vcpu.LoadDescriptorTables(baseAddress, limit, idtBase, idtLimit);
            return VcpuAction.Skip;
        }

        /// <summary>SLDT/STR into a register (<paramref name="register"/> 0-15, 4 = RSP) or, when <paramref name="register"/> is -1, 2 bytes at <paramref name="linear"/>.</summary>
        public static VcpuAction StoreSelector<T, TMemory>(ref T vcpu, ref TMemory memory, bool taskRegister, int register, ulong linear)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            ushort selector = vcpu.Selector(taskRegister ? SegmentRegister.Tr : SegmentRegister.Ldtr);
            if (register >= 0)
            {
                if (register == 4) vcpu.Rsp = selector;
                else vcpu.Registers.Set(register, selector);
                return VcpuAction.Skip;
            }
            byte* bytes = stackalloc byte[2];
            bytes[0] = (byte)selector;
            bytes[1] = (byte)(selector >> 8);
            WalkResult w = GuestMemory.CopyToGuest(ref memory, VcpuState.Paging(ref vcpu), linear, new ReadOnlySpan<byte>(bytes, 2), vcpu.ReservedBase, vcpu.ReservedSize);
            return w == WalkResult.Ok ? VcpuAction.Skip : Fault(ref vcpu, linear, w, write: true);
        }

        /// <summary>LLDT/LTR from a register or (<paramref name="register"/> -1) 2 bytes at <paramref name="linear"/>.</summary>
        public static VcpuAction LoadSelector<T, TMemory>(ref T vcpu, ref TMemory memory, bool taskRegister, int register, ulong linear)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
        {
            if (vcpu.Cpl != 0) return VcpuState.GeneralProtection(ref vcpu);
            GuestPaging paging = VcpuState.Paging(ref vcpu);
            ushort selector;
            if (register >= 0)
            {
                selector = (ushort)(register == 4 ? vcpu.Rsp : vcpu.Registers.Get(register));
            }
            else
            {
                byte* raw = stackalloc byte[2];
                WalkResult r = Read(ref memory, paging, linear, new Span<byte>(raw, 2));
                if (r != WalkResult.Ok) return Fault(ref vcpu, linear, r, write: false);
                selector = (ushort)(raw[0] | (raw[1] << 8));
            }
            SegmentRegister target = taskRegister ? SegmentRegister.Tr : SegmentRegister.Ldtr;
            if ((selector & ~3) == 0)
            {
                if (taskRegister) return VcpuState.GeneralProtection(ref vcpu);   // LTR of a null selector: #GP(0)
                vcpu.LoadSegment(SegmentRegister.Ldtr, selector, 0, 0, Unusable);   // LLDT 0: LDTR unusable
                return VcpuAction.Skip;
            }
            vcpu.ReadDescriptorTables(out ulong gdtBase, out uint gdtLimit, out _, out _);
            bool longMode = (vcpu.Efer & (1UL << 10)) != 0;
            int descriptorBytes = longMode ? 16 : 8;
            ulong offset = (ulong)(selector & ~7);
            if ((selector & 4) != 0 || offset + (ulong)descriptorBytes - 1 > gdtLimit) return GpSelector(ref vcpu, selector);   // must be in the GDT
            byte* d = stackalloc byte[16];
            ulong at = gdtBase + offset;
            WalkResult result = Read(ref memory, paging, at, new Span<byte>(d, descriptorBytes));
            if (result != WalkResult.Ok) return Fault(ref vcpu, at, result, write: false);
            ulong low = 0, high = 0;
            for (int i = 0; i < 8; i++) low |= (ulong)d[i] << (8 * i);
            for (int i = 8; i < descriptorBytes; i++) high |= (ulong)d[i] << (8 * (i - 8));
            uint type = (uint)(low >> 40) & 0x1F;   // S bit and type
            bool present = ((low >> 47) & 1) != 0;
            if (taskRegister ? type != 0x09 && type != 0x01 : type != 0x02) return GpSelector(ref vcpu, selector);   // available TSS / LDT
            if (!present) return Exception(ref vcpu, VcpuEvent.SegmentNotPresent, selector);
            ulong baseAddress = ((low >> 16) & 0xFF_FFFF) | (((low >> 56) & 0xFF) << 24) | (longMode ? (high & 0xFFFF_FFFF) << 32 : 0);
            uint limit = (uint)((low & 0xFFFF) | (((low >> 48) & 0xF) << 16));
            bool granular = ((low >> 55) & 1) != 0;
            if (granular) limit = (limit << 12) | 0xFFF;
            uint rights = (uint)((low >> 40) & 0xFF) | (uint)(((low >> 52) & 0xF) << 12);
            if (taskRegister)
            {
                rights |= 2;   // busy (type 9 -> B, 1 -> 3)
                // The CPU marks the descriptor busy in memory; the kernel does LTR with its writable GDT alias loaded.
                if (GuestMemory.Translate(ref memory, paging, at + 5, write: false, out ulong physical) == WalkResult.Ok && memory.Bounds.Check(physical, 1) == WalkResult.Ok)
                    memory.WriteByte(physical, (byte)(d[5] | 2));
            }
            vcpu.LoadSegment(target, selector, baseAddress, limit, rights);
            return VcpuAction.Skip;
        }

        /// <summary>Copies guest-linear memory into <paramref name="data"/> (nothing partial counts: the first failure is returned).</summary>
        public static WalkResult Read<TMemory>(ref TMemory memory, in GuestPaging paging, ulong linear, Span<byte> data) where TMemory : struct, IPhysicalMemory
        {
            ulong page = ulong.MaxValue, physical = 0;
            for (int i = 0; i < data.Length; i++)
            {
                ulong va = linear + (ulong)i;
                if ((va & ~0xFFFUL) != page)
                {
                    page = va & ~0xFFFUL;
                    WalkResult r = GuestMemory.Translate(ref memory, paging, va, write: false, out physical);
                    if (r != WalkResult.Ok) return r;
                    physical &= ~0xFFFUL;
                    r = memory.Bounds.Check(physical, 0x1000);
                    if (r != WalkResult.Ok) return r;
                }
                ulong pa = physical | (va & 0xFFF);
                data[i] = (byte)(memory.ReadUInt64(pa & ~7UL) >> (int)((pa & 7) * 8));
            }
            return WalkResult.Ok;
        }

        /// <summary>The fault the CPU would raise for an operand that does not translate: #PF (CR2 = address), #GP for a non-canonical one.</summary>
        private static VcpuAction Fault<T>(ref T vcpu, ulong linear, WalkResult result, bool write) where T : struct, IVcpu
        {
            if (result == WalkResult.NonCanonical) return VcpuState.GeneralProtection(ref vcpu);
            uint error = (result is WalkResult.NotWritable or WalkResult.NotUser or WalkResult.Reserved ? 1u : 0u) | (write ? 2u : 0u) | (vcpu.Cpl == 3 ? 4u : 0u)
                | (result == WalkResult.Reserved ? 8u : 0u);
            vcpu.LoadCr2(linear);
            vcpu.Injected = VcpuEvent.Exception(VcpuEvent.PageFault, error);
            return VcpuAction.Resume;
        }

        private static VcpuAction GpSelector<T>(ref T vcpu, ushort selector) where T : struct, IVcpu => Exception(ref vcpu, VcpuEvent.GeneralProtection, selector);

        private static VcpuAction Exception<T>(ref T vcpu, byte vector, ushort selector) where T : struct, IVcpu
        {
            vcpu.Injected = VcpuEvent.Exception(vector, (uint)(selector & ~3));
            return VcpuAction.Resume;
        }
    }
}
