using System;
using System.Linq;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Vigil.Tool.Logs;
using Xunit;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// The per-CPU rings as the hypervisor holds them (LogRings: one block, one ring per CPU, found by CPU
/// index) and the records vendor-neutral code writes into them (CPU virtualized, hypercalls).
/// </summary>
[Collection("Hypervisor statics")]
public unsafe class LogRingsTests
{
    private const uint Cpus = 3;

    // Never freed: LogRings is static, and a test elsewhere in the collection must never write into freed memory.
    private static readonly byte* Storage = (byte*)NativeMemory.AlignedAlloc((nuint)LogRings.StorageBytes(Cpus), 4096);

    private static void WithRings(Action test)
    {
        new Span<byte>(Storage, (int)LogRings.StorageBytes(Cpus)).Fill(0xCC);
        Assert.True(LogRings.Initialize(Storage, Cpus, Vendor.IntelVmx));
        try
        {
            test();
        }
        finally
        {
            LogRings.Initialize(null, 0, Vendor.None);   // back to "before start-up": writes are dropped
        }
    }

    private static LogDecoding Drain(uint cpu)
    {
        var sink = new BufferSink();
        LogRings.Of(cpu)->Drain(ref sink, 1000);
        return LogDecoder.Decode(sink.Bytes.ToArray());
    }

    [Fact]
    public void Every_cpu_gets_a_page_aligned_ring_of_512_records_in_7_pages()
    {
        Assert.Equal(7UL * 4096, LogRings.StrideBytes);
        WithRings(() =>
        {
            Assert.Equal(Cpus, LogRings.Count);
            for (uint i = 0; i < Cpus; i++)
            {
                LogRing* ring = LogRings.Of(i);
                Assert.Equal((ulong)Storage + (i * LogRings.StrideBytes), (ulong)ring);
                Assert.Equal(LogRings.RecordsPerCpu, ring->Capacity);
                Assert.Equal((int)i, ring->Cpu);
                Assert.False(ring->Pending);
            }
            Assert.True(LogRings.Of(Cpus) == null);
            Assert.False(LogRings.AnyPending());
        });
    }

    [Fact]
    public void A_record_goes_to_its_cpus_ring_and_nowhere_else()
    {
        WithRings(() =>
        {
            LogRings.Write(2, LogEvent.FatalExit, 0x30, 0xFFFF_FFFF_8100_0000, 1, 2);
            LogRings.Write(Cpus, LogEvent.FatalExit);   // no such CPU: dropped, not written anywhere
            Assert.True(LogRings.AnyPending());
            Assert.Equal(0u, LogRings.Of(0)->Count);
            Assert.Equal(0u, LogRings.Of(1)->Count);
            LogDecoding d = Drain(2);
            LogEntry entry = Assert.Single(d.Entries);
            Assert.Equal(2, entry.Record.Cpu);
            Assert.Equal(LogSeverity.Error, entry.Record.Severity);
            Assert.Equal("[cpu 2] error: exit 0x30 at rip 0xffffffff81000000 cannot be handled (detail 0x1, 0x2): the guest stops on this cpu", entry.Text);
            Assert.False(LogRings.AnyPending());
        });
    }

    [Fact]
    public void Before_start_up_writes_are_dropped_quietly()
    {
        LogRings.Initialize(null, 0, Vendor.None);
        LogRings.Write(0, LogEvent.HypervisorStarted, 1);
        Assert.True(LogRings.Of(0) == null);
        Assert.False(LogRings.AnyPending());
    }

    [Fact]
    public void Marking_a_cpu_virtualized_logs_its_apic_id_and_the_vendor()
    {
        WithRings(() =>
        {
            IntPtr statistics = (IntPtr)NativeMemory.AllocZeroed((nuint)ExitStatistics.StorageBytes(Cpus));
            try
            {
                ExitStatistics.Initialize((CpuStatus*)statistics, Cpus, null);
                ExitStatistics.MarkVirtualized(1, 6);
                LogEntry entry = Assert.Single(Drain(1).Entries);
                Assert.Equal(LogEvent.CpuVirtualized, entry.Record.Event);
                Assert.Equal("[cpu 1] info: cpu virtualized (apic id 6, vendor 1)", entry.Text);
            }
            finally
            {
                ExitStatistics.Initialize(null, 0, null);
                NativeMemory.Free((void*)statistics);
            }
        });
    }

    [Fact]
    public void Every_hypercall_leaves_a_record_answered_or_rejected_with_its_status()
    {
        WithRings(() =>
        {
            IntPtr statistics = (IntPtr)NativeMemory.AllocZeroed((nuint)ExitStatistics.StorageBytes(Cpus));
            IntPtr scratch = (IntPtr)NativeMemory.AllocZeroed((nuint)(Hypercalls.ScratchBytesPerCpu * Cpus));
            try
            {
                ExitStatistics.Initialize((CpuStatus*)statistics, Cpus, null);
                Hypercalls.Initialize(Vendor.IntelVmx, 0x7000_0000, 0x200_0000, (byte*)scratch, Cpus);
                var g = new FakeGuest();
                for (ulong page = 0; page < 6; page++) g.Map(0x40_0000 + (page * 0x1000), 0x90_0000 + (page * 0x1000), FakeGuest.Present | FakeGuest.Writable | FakeGuest.User);
                GuestPaging paging = FakeGuest.LongMode(g.Cr3, cpl: 3);
                var memory = g.View;

                var ok = new GuestRegisters { Rax = Hypercall.Rax(HypercallFunction.Status), Rbx = 0x40_0010, Rcx = 0x6000 };
                Assert.Equal(HypercallStatus.Success, Hypercalls.Dispatch(ref memory, ref ok, paging, 1));
                var small = new GuestRegisters { Rax = Hypercall.Rax(HypercallFunction.Status), Rbx = 0x40_0000, Rcx = 16 };
                Assert.Equal(HypercallStatus.BadBufferSize, Hypercalls.Dispatch(ref memory, ref small, paging, 1));
                var unknown = new GuestRegisters { Rax = Hypercall.Signature | 0x7FFF };
                Assert.Equal(HypercallStatus.UnknownFunction, Hypercalls.Dispatch(ref memory, ref unknown, paging, 1));

                LogDecoding d = Drain(1);
                Assert.Equal(
                    [
                        $"[cpu 1] info: status hypercall answered: 3 cpus reported to the buffer at 0x400010 (cr3 0x{g.Cr3:x}); call 1 on this cpu (logged at 1, 2, 4, 8...)",
                        $"[cpu 1] warn: hypercall 0x{(ulong)HypercallFunction.Status:x} (cr3 0x{g.Cr3:x}) rejected: status 2; refusal 1 on this cpu (logged at 1, 2, 4, 8...)",
                        $"[cpu 1] warn: hypercall 0x7fff (cr3 0x{g.Cr3:x}) rejected: status 1; refusal 2 on this cpu (logged at 1, 2, 4, 8...)",
                    ],
                    d.Entries.Select(e => e.Text));
                Assert.Equal([0u, 1u, 2u], d.Entries.Select(e => e.Record.Sequence));

                // A guest looping on a refused (or answered) call: the 1st, 2nd, 4th, 8th... go to the log with the count.
                for (int i = 0; i < 97; i++)
                {
                    var again = new GuestRegisters { Rax = Hypercall.Signature | 0x7FFF };
                    Assert.Equal(HypercallStatus.UnknownFunction, Hypercalls.Dispatch(ref memory, ref again, paging, 1));
                }
                LogDecoding flood = Drain(1);
                Assert.Equal([4UL, 8UL, 16UL, 32UL, 64UL], flood.Entries.Select(e => e.Record.Arg3));
                Assert.False(LogRings.AnyPending());
            }
            finally
            {
                Hypercalls.Initialize(Vendor.None, 0, 0, null, 0);
                ExitStatistics.Initialize(null, 0, null);
                NativeMemory.Free((void*)statistics);
                NativeMemory.Free((void*)scratch);
            }
        });
    }

    // ---- the one word every exit reads (MayHavePending) ----

    /// <summary>What the drainer does with a locked instruction before it looks at the rings: the word to 1.</summary>
    private static void TakeDrain()
    {
        *LogRings.DrainedWord = 1;
        Assert.False(LogRings.MayHavePending);
    }

    [Fact]
    public void After_a_drain_took_the_word_only_a_write_or_MarkUndrained_makes_the_rings_pending_again()
    {
        WithRings(() =>
        {
            try
            {
                TakeDrain();
                Assert.False(LogRings.MayHavePending);   // stays taken without writes
                for (uint cpu = 0; cpu < Cpus; cpu++)
                {
                    TakeDrain();
                    LogRings.Write(cpu, LogEvent.HypervisorStarted, cpu);
                    Assert.True(LogRings.MayHavePending, $"after a write on cpu {cpu}");
                    Assert.Equal(0u, *LogRings.DrainedWord);
                }
                TakeDrain();
                LogRings.Write(Cpus, LogEvent.FatalExit);   // no such CPU: nothing written, nothing pending
                Assert.False(LogRings.MayHavePending);
                LogRings.MarkUndrained();                  // records left after the drain's budget
                Assert.True(LogRings.MayHavePending);

                // A full ring drops the record: the drop report is pending too.
                for (uint i = 0; i < LogRings.RecordsPerCpu; i++) LogRings.Write(1, LogEvent.HypervisorStarted, i);
                TakeDrain();
                LogRings.Write(1, LogEvent.HypervisorStarted, 0xD0);
                Assert.True(LogRings.Of(1)->Dropped > 0);
                Assert.True(LogRings.MayHavePending);
            }
            finally
            {
                LogRings.MarkUndrained();
            }
        });
    }

    [Fact]
    public void A_write_before_start_up_leaves_the_word_taken()
    {
        LogRings.Initialize(null, 0, Vendor.None);
        try
        {
            TakeDrain();
            LogRings.Write(0, LogEvent.HypervisorStarted, 1);
            Assert.False(LogRings.MayHavePending);
            Assert.Equal(1u, *LogRings.DrainedWord);
        }
        finally
        {
            LogRings.MarkUndrained();
        }
    }
}
