using System;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using Vigil.Tool.Emulators;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

// Issue #9 on QEMU SVM: what stopped Vigil on machines with 5-level paging and with device memory above the
// memory map. Both conditions share the 2-CPU boot (fewer boots); 5-level paging alone is also booted on 1 CPU.
//   - CPU model with +la57: Debian's kernel switches to 5-level paging right after the EFI stub; the
//     hypervisor's guest page walks (instruction bytes for skipping, hypercall buffers) must follow it and
//     never read an address the host cannot map (it took a host #PF at CR2 0x380001A48 before).
//   - an ivshmem-plain device whose 64-bit BAR 2 (64 MiB of shared memory) OVMF places far above RAM
//     (0xE000000000 with 512 MiB of RAM): the guest writes and reads it back through /dev/mem (smoke.sh); the
//     nested map must cover it (it ended in an unexpected #NPF before).

/// <summary>QEMU SVM with 5-level paging, 1 CPU.</summary>
public sealed class SvmLa57Boot1() : SvmBoot(1, "qemu-svm-la57-1cpu", SvmPagingAndDevice.La57CpuModel);

/// <summary>QEMU SVM with 5-level paging and a 64-bit BAR device, 2 CPUs.</summary>
public sealed class SvmLa57DeviceBoot2() : SvmBoot(2, "qemu-svm-la57-bar-2cpu", SvmPagingAndDevice.La57CpuModel, SvmPagingAndDevice.IvshmemArguments);

public static class SvmPagingAndDevice
{
    /// <summary>The SVM model with LA57 (Ice Lake server and later, Zen 4 have it).</summary>
    public const string La57CpuModel = EmulatorOptions.SvmCpuModel + ",+la57";

    /// <summary>64 MiB of RAM behind an ivshmem-plain device's 64-bit prefetchable BAR 2.</summary>
    public static readonly string[] IvshmemArguments = ["-object", "memory-backend-ram,id=hm,size=64M", "-device", "ivshmem-plain,memdev=hm"];
}

/// <summary>Everything an SVM boot must show, and the guest on 57-bit virtual addresses with the hypervisor unharmed.</summary>
public abstract class SvmLa57Checks(SvmBoot boot, ITestOutputHelper output) : SvmBootChecks(boot, output)
{
    [Fact]
    public void The_guest_runs_5_level_paging_with_57_bit_virtual_addresses()
    {
        string? line = Boot.Transcript.On(EmulatorSetup.Com1).Select(l => l.Text).FirstOrDefault(t => t.Contains("VIGIL-GUEST: paging ", StringComparison.Ordinal));
        Assert.NotNull(line);
        Output.WriteLine(line);
        Assert.Contains("levels=5 la57=yes", line, StringComparison.Ordinal);
        Assert.Contains("57 bits virtual", line, StringComparison.Ordinal);
        Assert.False(Boot.Transcript.Contains(EmulatorSetup.Com2, "host exception"), "the hypervisor faulted");
    }
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class SvmLa57Boot1Tests(SvmLa57Boot1 boot, ITestOutputHelper output) : SvmLa57Checks(boot, output), IClassFixture<SvmLa57Boot1>;

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class SvmLa57DeviceBoot2Tests(SvmLa57DeviceBoot2 boot, ITestOutputHelper output) : SvmLa57Checks(boot, output), IClassFixture<SvmLa57DeviceBoot2>
{
    [Fact]
    public void A_64_bit_bar_above_the_memory_map_round_trips_through_devmem()
    {
        string? line = Boot.Transcript.On(EmulatorSetup.Com1).Select(l => l.Text).FirstOrDefault(t => t.Contains("VIGIL-GUEST: bar ", StringComparison.Ordinal));
        Assert.True(line != null, $"the guest found no ivshmem device; see {Boot.TranscriptPath}");
        Output.WriteLine(line);
        Match m = Regex.Match(line!, @"bar \S+ 0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+) round-trip (\d) of 2");
        Assert.True(m.Success, line);
        ulong start = ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        ulong end = ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        // Above 4 GiB, where the memory map (512 MiB of RAM) and the old nested map ended.
        Assert.True(start >= 1UL << 32, $"BAR at 0x{start:X}: not above the memory map, the test proves nothing");
        Assert.Equal((64UL << 20) - 1, end - start);
        Assert.Equal("2", m.Groups[3].Value);
        Assert.False(Boot.Transcript.Contains(EmulatorSetup.Com2, "unexpected exit"), "the hypervisor stopped a guest CPU on an unexpected exit");
    }

    [Fact]
    public void The_nested_map_reaches_maxphyaddr()
        => Assert.True(Boot.Transcript.Contains(EmulatorSetup.Com2, "nested tables for 0x10000000000 bytes (MAXPHYADDR 40"),
            "the nested map should cover QEMU's 40-bit physical address space");
}
