using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Core.Vcpu;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The breakpoint exit (hv/Core/Vcpu/BreakpointExit): an INT3/INTO/INTn still in memory is delivered with its length;
/// a breakpoint that is no longer there (another CPU's write replaced it: text_poke_bp's last byte) is not, and the
/// byte is handed to the back end for its atomic touch.
/// </summary>
public sealed class BreakpointExitTests
{
    private const ulong Code = 0xFFFF_FFFF_8100_0000, CodePhysical = 0x20_0000;

    private static (FakeVcpu Vcpu, FakeVcpuState State, FakeGuest Guest) New(params byte[] bytes)
    {
        var guest = new FakeGuest();
        guest.Map(Code, CodePhysical, FakeGuest.Present);
        for (int i = 0; i < bytes.Length; i++) guest.Page(CodePhysical + (ulong)i)[i] = bytes[i];
        var s = new FakeVcpuState { Rip = Code, Cr3 = guest.Cr3 };
        return (new FakeVcpu(s), s, guest);
    }

    private static BreakpointOutcome Run(FakeVcpu v, FakeGuest guest, out ulong stale)
    {
        FakeGuest.Memory memory = guest.View;
        return BreakpointExit.Handle(ref v, ref memory, out stale);
    }

    [Fact]
    public void An_int3_in_memory_is_delivered_as_a_software_exception_of_length_1()
    {
        var (v, s, guest) = New(0xCC, 0x90);
        Assert.Equal(BreakpointOutcome.Delivered, Run(v, guest, out _));
        Assert.Equal((EventType.SoftwareException, (byte)3, 1, false), (s.Injected.Type, s.Injected.Vector, s.Injected.InstructionLength, s.Injected.HasErrorCode));
        Assert.Equal(Code, s.Rip);   // the back end moves RIP where it must (SVM); VMX injects with the length
    }

    [Fact]
    public void A_replaced_breakpoint_is_not_delivered_and_its_byte_is_handed_back()
    {
        // text_poke_bp's last write: the INT3 became the JMP's first byte while the CPU still ran the INT3.
        var (v, s, guest) = New(0xE9, 0xF7, 0x02, 0x00, 0x00);
        Assert.Equal(BreakpointOutcome.Stale, Run(v, guest, out ulong stale));
        Assert.False(s.Injected.Valid);
        Assert.Equal(CodePhysical, stale);
        Assert.Equal(Code, s.Rip);   // resumed at the instruction now in memory
    }

    [Theory]
    [InlineData(new byte[] { 0xCD, 0x80 }, EventType.SoftwareInterrupt, 0x80, 2)]        // INT 0x80 (QEMU's INTn intercept)
    [InlineData(new byte[] { 0xCD, 0x03 }, EventType.SoftwareInterrupt, 0x03, 2)]        // INT 3, the two-byte form: an INTn
    [InlineData(new byte[] { 0x3E, 0xCC }, EventType.SoftwareException, 0x03, 2)]        // a prefix counts in the length
    [InlineData(new byte[] { 0x66, 0x48, 0xCD, 0x21 }, EventType.SoftwareInterrupt, 0x21, 4)]
    public void Software_interrupts_decode_with_vector_and_length(byte[] bytes, EventType type, int vector, int length)
    {
        VcpuEvent e = BreakpointExit.Decode(bytes, is64: true);
        Assert.Equal((true, type, (byte)vector, length), (e.Valid, e.Type, e.Vector, e.InstructionLength));
    }

    [Fact]
    public void Into_is_a_software_exception_outside_64_bit_mode_and_nothing_in_it()
    {
        VcpuEvent e = BreakpointExit.Decode([0xCE], is64: false);
        Assert.Equal((EventType.SoftwareException, (byte)4, 1), (e.Type, e.Vector, e.InstructionLength));
        Assert.False(BreakpointExit.Decode([0xCE], is64: true).Valid);
        Assert.False(BreakpointExit.Decode([0x48, 0x90], is64: true).Valid);   // REX.W NOP: no interrupt
        Assert.False(BreakpointExit.Decode([0xCD], is64: true).Valid);         // INTn without its vector byte
    }

    [Fact]
    public void Code_that_cannot_be_read_is_delivered_as_the_int3_the_exit_reports()
    {
        var (v, s, guest) = New(0xCC);
        s.Rip = 0xFFFF_FFFF_8200_0000;   // not mapped
        Assert.Equal(BreakpointOutcome.Delivered, Run(v, guest, out _));
        Assert.Equal((EventType.SoftwareException, (byte)3, 1), (s.Injected.Type, s.Injected.Vector, s.Injected.InstructionLength));
    }
}
