// The vendor-neutral AP start-up protocol (hv/Core/Apic/ApStartup), the xAPIC page emulation
// (hv/Core/Apic/ApicPage, with a buffer standing in for the local APIC) and the MMIO MOV decoder.
using System.Runtime.InteropServices;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

// ApStartup keeps its table in statics: these tests must not run in parallel with each other.
[Collection(nameof(ApStartupTests))]
public sealed unsafe class ApStartupTests : System.IDisposable
{
    private const uint InitAssert = 0x0000_C500;     // INIT, level-triggered, assert
    private const uint InitDeassert = 0x0000_8500;   // INIT, level-triggered, de-assert
    private const uint Startup = 0x0000_0600;        // start-up, vector in bits 7:0
    private const uint AllExcludingSelf = 3u << 18;

    private readonly StartupSignal* _table;

    public ApStartupTests()
    {
        _table = (StartupSignal*)NativeMemory.AllocZeroed((nuint)ApStartup.BytesFor(4));
        uint[] apicIds = [0, 2, 4, 6];
        for (int i = 0; i < 4; i++) _table[i].ApicId = apicIds[i];
        ApStartup.Initialize(_table, 4);
    }

    public void Dispose()
    {
        ApStartup.SetAfterCaught(null);
        ApStartup.Initialize(null, 0);
        NativeMemory.Free(_table);
    }

    private void Virtualize(params uint[] indexes)
    {
        foreach (uint i in indexes) _table[i].Virtualized = 1;
    }

    [Fact]
    public void Init_sipi_sipi_to_a_virtualized_ap_is_caught_and_starts_it_once_at_the_vector()
    {
        Virtualize(0, 1);
        ApStartup.OnPark(1);   // the firmware parked it: it waits in the host
        Assert.True(ApStartup.OnIcrWrite(0, InitAssert, 2));
        Assert.True(ApStartup.OnIcrWrite(0, InitDeassert, 2));
        Assert.False(ApStartup.TryStart(1, out _));   // no start-up IPI yet
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x9A, 2));
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x9B, 2));   // the second SIPI of the pair is dropped
        Assert.True(ApStartup.TryStart(1, out uint vector));
        Assert.Equal(0x9Au, vector);
        Assert.Equal((uint)ApState.Running, _table[1].State);
        Assert.False(ApStartup.TryStart(1, out _));
    }

    [Fact]
    public void A_start_up_ipi_without_init_first_changes_nothing()
    {
        Virtualize(0, 1);
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x10, 2));
        Assert.False(ApStartup.TryStart(1, out _));
        Assert.Equal((uint)ApState.Running, _table[1].State);
    }

    [Fact]
    public void Ipis_to_cpus_not_virtualized_or_other_modes_are_sent_for_real()
    {
        Virtualize(0, 1);
        Assert.False(ApStartup.OnIcrWrite(0, InitAssert, 4));            // CPU 2 is not virtualized
        Assert.False(ApStartup.OnIcrWrite(0, InitAssert, 9));            // no such APIC ID
        Assert.False(ApStartup.OnIcrWrite(0, 0x0000_00FD, 2));           // fixed interrupt, vector 0xFD
        Assert.False(ApStartup.OnIcrWrite(0, 0x0000_0400, 2));           // NMI
        Assert.False(ApStartup.OnIcrWrite(0, InitAssert | (1u << 11), 2));   // logical destination
        Assert.False(ApStartup.OnIcrWrite(0, InitAssert, 0));            // to itself
        Assert.Equal((uint)ApState.Running, _table[1].State);
    }

    [Fact]
    public void A_broadcast_is_caught_only_when_every_other_cpu_is_virtualized()
    {
        Virtualize(0, 1, 2);
        Assert.False(ApStartup.OnIcrWrite(0, InitAssert | AllExcludingSelf, 0));   // CPU 3 would miss it
        Assert.Equal((uint)ApState.Running, _table[1].State);
        Virtualize(3);
        Assert.True(ApStartup.OnIcrWrite(0, InitAssert | AllExcludingSelf, 0));
        Assert.True(ApStartup.OnIcrWrite(0, Startup | AllExcludingSelf | 0x20, 0));
        Assert.Equal((uint)ApState.Running, _table[0].State);   // not the sender
        for (uint i = 1; i < 4; i++)
        {
            Assert.True(ApStartup.TryStart(i, out uint vector));
            Assert.Equal(0x20u, vector);
        }
    }

    [Fact]
    public void An_init_exit_keeps_a_start_up_already_pending()
    {
        Virtualize(0, 1);
        Assert.True(ApStartup.OnIcrWrite(0, InitAssert, 2));
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x33, 2));
        ApStartup.OnInit(1);
        ApStartup.OnPark(1);
        Assert.True(ApStartup.TryStart(1, out uint vector));
        Assert.Equal(0x33u, vector);
    }

    private static uint s_callbacks;
    private static uint s_lastLow;

    private static void RecordCaught(uint sender, uint low, uint destination)
    {
        s_callbacks++;
        s_lastLow = low;
    }

    [Fact]
    public void The_back_end_hears_of_every_caught_ipi_and_only_of_those()
    {
        Virtualize(0, 1);
        s_callbacks = 0;
        ApStartup.SetAfterCaught(&RecordCaught);
        Assert.True(ApStartup.OnIcrWrite(0, InitAssert, 2));
        Assert.Equal(1u, s_callbacks);
        Assert.Equal(InitAssert, s_lastLow);
        Assert.False(ApStartup.OnIcrWrite(0, 0x0000_00FD, 2));   // sent for real: no callback
        Assert.Equal(1u, s_callbacks);
    }

    [Fact]
    public void A_kick_nmi_is_consumed_once_and_a_cpu_in_the_init_state_must_wait()
    {
        Virtualize(0, 1);
        Assert.False(ApStartup.MustWait(1));
        Assert.True(ApStartup.OnIcrWrite(0, InitAssert, 2));
        Assert.True(ApStartup.MustWait(1));
        ApStartup.MarkKick(1);
        Assert.True(ApStartup.ConsumeKick(1));
        Assert.False(ApStartup.ConsumeKick(1));   // the next NMI is the guest's
        Assert.True(ApStartup.OnIcrWrite(0, Startup | 0x9A, 2));
        Assert.True(ApStartup.TryStart(1, out _));
        Assert.False(ApStartup.MustWait(1));
        Assert.False(ApStartup.MustWait(7));       // no such CPU
    }

    [Fact]
    public void The_xapic_icr_write_is_caught_and_other_writes_reach_the_apic()
    {
        Virtualize(0, 1);
        ApStartup.OnPark(1);
        byte* apic = (byte*)NativeMemory.AllocZeroed(4096);
        try
        {
            var regs = default(GuestRegisters);
            ulong rsp = 0;
            byte[] movEdx = [0x89, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];   // mov [rax], edx
            *(uint*)(apic + ApicPage.IcrHigh) = 2u << 24;
            regs.Rdx = InitAssert;
            Assert.Equal(2, ApicPage.Emulate(apic, ApicPage.IcrLow, movEdx, ref regs, ref rsp, 0));
            Assert.Equal(0u, *(uint*)(apic + ApicPage.IcrLow));   // caught: never written
            Assert.Equal((uint)ApState.WaitForSipi, _table[1].State);

            regs.Rdx = 0x0000_00FD;   // a fixed IPI goes to the APIC
            Assert.Equal(2, ApicPage.Emulate(apic, ApicPage.IcrLow, movEdx, ref regs, ref rsp, 0));
            Assert.Equal(0xFDu, *(uint*)(apic + ApicPage.IcrLow));

            byte[] eoiImmediate = [0xC7, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];   // mov dword [rip+0], 0
            *(uint*)(apic + 0xB0) = 0xFFFF_FFFF;
            Assert.Equal(10, ApicPage.Emulate(apic, 0xB0, eoiImmediate, ref regs, ref rsp, 0));
            Assert.Equal(0u, *(uint*)(apic + 0xB0));

            byte[] loadR9 = [0x44, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];   // mov r9d, [rax]
            *(uint*)(apic + 0x20) = 0x0200_0000;
            regs.R9 = ulong.MaxValue;
            Assert.Equal(3, ApicPage.Emulate(apic, 0x20, loadR9, ref regs, ref rsp, 0));
            Assert.Equal(0x0200_0000UL, regs.R9);   // zero-extended

            byte[] xchg = [0x87, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            Assert.Equal(0, ApicPage.Emulate(apic, 0xB0, xchg, ref regs, ref rsp, 0));
        }
        finally
        {
            NativeMemory.Free(apic);
        }
    }

    [Theory]
    [InlineData(0xFEE0_0D00UL, 0x0000_0002_0000_C500UL, true)]    // x2APIC (EN, EXTD, BSP), INIT to APIC ID 2
    [InlineData(0xFEE0_0D00UL, 0x0000_0002_0000_1500UL, false)]   // bit 12 is reserved in x2APIC mode
    [InlineData(0xFEE0_0D00UL, 0x0000_0002_0010_0500UL, false)]   // bit 20 too
    [InlineData(0xFEE0_0900UL, 0x0000_0002_0000_C500UL, false)]   // xAPIC mode: the MSR does not exist
    public void X2apic_icr_writes_the_cpu_would_fault_are_not_done_in_the_host(ulong apicBase, ulong value, bool writable)
        => Assert.Equal(writable, ApicPage.X2ApicIcrWritable(apicBase, value));

    [Fact]
    public void The_trapped_page_comes_from_ia32_apic_base_and_a_disabled_apic_traps_nothing()
    {
        Assert.Equal(0xFEE0_0000UL, ApicPage.Initialize(0xFEE0_0900));
        Assert.True(ApicPage.Contains(0xFEE0_0300));
        Assert.False(ApicPage.Contains(0xFEE0_1000));
        Assert.Equal(0UL, ApicPage.Initialize(0xFEE0_0100));   // global enable (bit 11) clear
        Assert.False(ApicPage.Contains(0xFEE0_0300));
    }

    [Theory]
    [InlineData(new byte[] { 0x89, 0x10 }, 2, true, false, 2)]                      // mov [rax], edx
    [InlineData(new byte[] { 0x8B, 0x87, 0x20, 0x03, 0, 0 }, 6, false, false, 0)]   // mov eax, [rdi+0x320]
    [InlineData(new byte[] { 0x44, 0x89, 0x4C, 0x24, 0x08 }, 5, true, false, 9)]    // mov [rsp+8], r9d
    [InlineData(new byte[] { 0xC7, 0x05, 1, 2, 3, 4, 0xB0, 0, 0, 0 }, 10, true, true, 0)]   // mov dword [rip+x], 0xB0
    [InlineData(new byte[] { 0x8B, 0x04, 0x25, 0x00, 0x03, 0xE0, 0xFE }, 7, false, false, 0)]  // mov eax, [0xFEE00300]
    public void Mmio_moves_decode_with_length_direction_and_register(byte[] code, int length, bool store, bool immediate, int register)
    {
        var padded = new byte[15];
        code.CopyTo(padded, 0);
        Assert.True(MmioInstruction.Decode(padded, out MmioInstruction insn));
        Assert.Equal(length, insn.Length);
        Assert.Equal(store, insn.IsStore);
        Assert.Equal(immediate, insn.HasImmediate);
        if (!immediate) Assert.Equal(register, insn.Register);
        else Assert.Equal(0xB0UL, insn.Immediate);
    }

    [Fact]
    public void Other_instructions_are_refused_not_guessed()
    {
        Assert.False(MmioInstruction.Decode(new byte[] { 0x87, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, out _));   // xchg
        Assert.False(MmioInstruction.Decode(new byte[] { 0x89, 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, out _));   // register form
    }
}
