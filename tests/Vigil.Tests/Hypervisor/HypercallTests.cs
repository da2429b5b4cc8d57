using System;
using System.Runtime.InteropServices;
using Vigil.Abi;
using Vigil.Hypervisor.Core;
using Xunit;

namespace Vigil.Tests.Hypervisor;

[Collection("Hypervisor statics")]
public unsafe class HypercallTests
{
    private static readonly uint[] ApicIds = [0, 2];

    private static (FakeGuest Guest, GuestPaging Paging) Setup(out IntPtr storage, out IntPtr scratch)
    {
        storage = (IntPtr)NativeMemory.AllocZeroed((nuint)ExitStatistics.StorageBytes(2));
        scratch = (IntPtr)NativeMemory.AllocZeroed((nuint)(Hypercalls.ScratchBytesPerCpu * 2));
        fixed (uint* ids = ApicIds) ExitStatistics.Initialize((CpuStatus*)storage, 2, ids);
        Hypercalls.Initialize(Vendor.AmdSvm, 0x7000_0000, 0x200_0000, (byte*)scratch, 2);
        var g = new FakeGuest();
        for (ulong page = 0; page < 6; page++) g.Map(0x40_0000 + (page * 0x1000), 0x90_0000 + (page * 0x1000), FakeGuest.Present | FakeGuest.Writable | FakeGuest.User);
        return (g, FakeGuest.LongMode(g.Cr3, cpl: 3));
    }

    [Fact]
    public void Status_reports_every_cpu_and_its_exit_counts()
    {
        var (g, paging) = Setup(out IntPtr storage, out IntPtr scratch);
        try
        {
            ExitStatistics.MarkVirtualized(0, 0);
            ExitStatistics.MarkVirtualized(1, 2);
            ExitStatistics.Count(0, ExitReason.Cpuid);
            ExitStatistics.Count(0, ExitReason.Cpuid);
            ExitStatistics.Count(1, ExitReason.MsrWrite);
            var regs = new GuestRegisters { Rax = Hypercall.Rax(HypercallFunction.Status), Rbx = 0x40_0010, Rcx = 0x6000 };
            var memory = g.View;
            Assert.True(Hypercalls.IsForVigil(regs.Rax));
            Assert.Equal(HypercallStatus.Success, Hypercalls.Dispatch(ref memory, ref regs, paging, 1));
            Assert.Equal((ulong)HypercallStatus.Success, regs.Rax);
            Assert.Equal((ulong)sizeof(StatusReport), regs.Rcx);

            byte[] bytes = new byte[sizeof(StatusReport)];
            for (int i = 0; i < bytes.Length; i++) bytes[i] = g.Page(0x90_0010 + (ulong)i)[(0x10 + i) & 0xFFF];
            StatusReport report = MemoryMarshal.Read<StatusReport>(bytes);
            Assert.Equal(StatusReport.ExpectedSignature, report.Signature);
            Assert.Equal(Vendor.AmdSvm, report.Vendor);
            Assert.Equal(2u, report.CpuCount);
            Assert.Equal(2u, report.VirtualizedCount);
            Assert.Equal(0x200_0000UL, report.ReservedBytes);
            Assert.Equal(0x7000_0000UL, report.ReservedBase);
            Assert.Equal(2u, report.Cpus[1].ApicId);
            Assert.Equal(2UL, report.Cpus[0].TotalExits);
            Assert.Equal(2UL, report.Cpus[0].Exits[(int)ExitReason.Cpuid]);
            Assert.Equal(1UL, report.Cpus[1].Exits[(int)ExitReason.MsrWrite]);
        }
        finally
        {
            NativeMemory.Free((void*)storage);
            NativeMemory.Free((void*)scratch);
        }
    }

    [Fact]
    public void Bad_calls_get_an_error_code_and_write_nothing()
    {
        var (g, paging) = Setup(out IntPtr storage, out IntPtr scratch);
        try
        {
            var memory = g.View;
            var small = new GuestRegisters { Rax = Hypercall.Rax(HypercallFunction.Status), Rbx = 0x40_0000, Rcx = 16 };
            Assert.Equal(HypercallStatus.BadBufferSize, Hypercalls.Dispatch(ref memory, ref small, paging, 0));
            Assert.Equal((ulong)sizeof(StatusReport), small.Rcx);

            var unmapped = new GuestRegisters { Rax = Hypercall.Rax(HypercallFunction.Status), Rbx = 0x7777_0000, Rcx = 0x6000 };
            Assert.Equal(HypercallStatus.BadAddress, Hypercalls.Dispatch(ref memory, ref unmapped, paging, 0));

            var unknown = new GuestRegisters { Rax = Hypercall.Signature | 0x7FFF };
            Assert.Equal(HypercallStatus.UnknownFunction, Hypercalls.Dispatch(ref memory, ref unknown, paging, 0));
            Assert.False(Hypercalls.IsForVigil(0x1234));
            Assert.All(g.Page(0x90_0000), b => Assert.Equal(0, b));
        }
        finally
        {
            NativeMemory.Free((void*)storage);
            NativeMemory.Free((void*)scratch);
        }
    }
}

[CollectionDefinition("Hypervisor statics", DisableParallelization = true)]
public sealed class HypervisorStaticsCollection;
