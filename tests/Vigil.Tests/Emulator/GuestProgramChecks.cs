using System;
using System.Linq;
using Vigil.Tool.Emulators;
using Xunit;
using Xunit.Abstractions;

namespace Vigil.Tests.Emulator;

/// <summary>
/// What the guest programs of the smoke scenario (tests/guest/programs) report, for both back ends: a debugger
/// single-stepping over CPUID (emulated by the hypervisor) gets its SIGTRAP at the next instruction with DR6.BS
/// behind it, and user space finds AVX enabled the way it checks for it (CPUID.1:ECX.OSXSAVE, XGETBV) and runs it.
/// </summary>
internal static class GuestProgramChecks
{
    public static void SingleStepOverCpuid(Transcript t)
    {
        string[] lines = Lines(t, "VIGIL-GUEST: singlestep");
        Assert.True(lines.Length > 0, "the singlestep program did not run");
        Assert.Contains(lines, l => l.Contains("singlestep nop: ok", StringComparison.Ordinal));   // the control: no exit involved
        Assert.True(lines.Any(l => l.Contains("singlestep cpuid: ok", StringComparison.Ordinal)), string.Join("\n", lines));
        Assert.Contains(lines, l => l.EndsWith("singlestep rc=0", StringComparison.Ordinal));
    }

    public static void AvxWorks(Transcript t, ITestOutputHelper output)
    {
        string? line = Lines(t, "VIGIL-GUEST: avx: ").FirstOrDefault();
        Assert.True(line != null, "the avx program did not run");
        output.WriteLine(line);
        foreach (string fpu in Lines(t, "VIGIL-GUEST: fpu: ")) output.WriteLine(fpu);
        // Bochs 2.7's corei7_skylake_x contradicts itself in CPUID leaf 0xD (compacted size against component layout) and
        // Linux 6.1 turned XSAVE off there even without Vigil; Vigil hides XSAVEC/XSAVES on such a CPU (hv/Core/Vcpu/
        // XsaveCompaction), so the kernel keeps XSAVE in the standard format and AVX works on every emulator.
        string? problem = Lines(t, "XSAVE consistency problem").FirstOrDefault();
        Assert.True(problem == null, "the guest kernel disabled XSAVE: " + problem);
        Assert.Contains("avx: ok", line, StringComparison.Ordinal);
        Assert.True(t.Contains(EmulatorSetup.Com1, "VIGIL-GUEST: avx rc=0"));
    }

    private static string[] Lines(Transcript t, string prefix)
        => t.On(EmulatorSetup.Com1).Select(l => l.Text).Where(l => l.Contains(prefix, StringComparison.Ordinal)).ToArray();
}
