using System;
using System.IO;
using System.Linq;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>Bochs started with a configuration line it refuses: it ends at once, before any firmware runs.</summary>
public sealed class BochsBrokenConfigBoot() : EmulatorBoot(
    "bochs-broken-config",
    new EspLayoutSpec(EspTarget.Bochs, Scenario: null),
    new EmulatorSpec(Tool.Emulators.Emulator.Bochs, ExtraArguments: [BadLine]),
    TimeSpan.FromSeconds(120),
    stopWhen: t => t.Contains(EmulatorSetup.Com1, GuestMarkers.PowerDown))
{
    public const string BadLine = "cpu: model=no_such_cpu_model";
}

/// <summary>QEMU started with a device it does not have: it ends at once with status 1.</summary>
public sealed class QemuBrokenConfigBoot() : EmulatorBoot(
    "qemu-broken-config",
    new EspLayoutSpec(EspTarget.Qemu, Scenario: null),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg, ExtraArguments: ["-device", BadDevice]),
    TimeSpan.FromSeconds(120))
{
    public const string BadDevice = "no-such-device";
}

/// <summary>
/// An emulator that dies is reported as that (issue #8): the boot fails with one message naming the emulator,
/// its exit status, how long it ran and its own last output — not as checks of the guest that could not run.
/// </summary>
[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class EmulatorFailureTests(BochsBrokenConfigBoot bochs, QemuBrokenConfigBoot qemu)
    : IClassFixture<BochsBrokenConfigBoot>, IClassFixture<QemuBrokenConfigBoot>
{
    [Fact]
    public void A_bochs_that_refuses_its_configuration_is_reported_with_status_time_and_its_last_words()
    {
        var failure = Assert.Throws<EmulatorFailedException>(() => bochs.Transcript);
        string message = failure.Message;
        Assert.StartsWith("EMULATOR FAILED (the emulator, not a finding about Vigil): Bochs (bochs) ended on its own with status 1 after ", message, StringComparison.Ordinal);
        Assert.Contains("before the run reached its end", message, StringComparison.Ordinal);
        Assert.Contains("last lines of its stderr and stdout (", message, StringComparison.Ordinal);
        Assert.Contains("cpu directive malformed", message, StringComparison.Ordinal);   // Bochs' own words about the bad line
        Assert.Contains("the serial ports printed nothing", message, StringComparison.Ordinal);

        // Every fact of a class reading the transcript gets the same report; the emulator is not started again.
        var again = Assert.Throws<EmulatorFailedException>(() => bochs.Transcript);
        Assert.Same(failure, again);
    }

    [Fact]
    public void A_qemu_that_refuses_a_device_is_reported_with_status_time_and_its_last_words()
    {
        string message = Assert.Throws<EmulatorFailedException>(() => qemu.Transcript).Message;
        Assert.StartsWith("EMULATOR FAILED (the emulator, not a finding about Vigil): QEMU (qemu-system-x86_64) ended on its own with status 1 after ", message, StringComparison.Ordinal);
        Assert.Contains("while a clean exit (status 0) was expected", message, StringComparison.Ordinal);
        Assert.Contains($"'{QemuBrokenConfigBoot.BadDevice}' is not a valid device model name", message, StringComparison.Ordinal);
        Assert.Contains("command: qemu-system-x86_64 ", message, StringComparison.Ordinal);
    }
}

/// <summary>The parts of the report that do not need an emulator.</summary>
public sealed class EmulatorFailureFormatTests
{
    [Theory]
    [InlineData(1, "with status 1")]
    [InlineData(134, "with status 134 (killed by signal 6, SIGABRT)")]
    [InlineData(139, "with status 139 (killed by signal 11, SIGSEGV)")]
    [InlineData(137, "with status 137 (killed by signal 9, SIGKILL)")]
    [InlineData(128 + 30, "with status 158 (killed by signal 30)")]
    [InlineData(255, "with status 255")]
    public void Exit_statuses_name_the_signal_that_ended_the_emulator(int code, string expected)
        => Assert.Equal(expected, EmulatorFailure.Status(code));

    [Fact]
    public void An_unknown_status_is_said_to_be_unknown() => Assert.Equal("(exit status unknown)", EmulatorFailure.Status(null));

    [Fact]
    public void Tail_keeps_the_last_non_empty_lines()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, string.Concat(Enumerable.Range(1, 40).Select(i => $"line {i}\n\n")));
            var tail = EmulatorFailure.Tail(path, 3);
            Assert.Equal(["line 38", "line 39", "line 40"], tail);
            Assert.Empty(EmulatorFailure.Tail(path + ".missing"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary>The Bochs configuration every run uses asks nothing of the host's sound (issue #8).</summary>
public sealed class BochsConfigurationTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bochs_uses_no_host_sound_device(bool interactive)
    {
        string work = Path.Combine(Path.GetTempPath(), "vigil-bochsrc-" + Guid.NewGuid().ToString("N"));
        try
        {
            EmulatorCommand command = EmulatorSetup.Create(Tool.Repository.Root(), new EmulatorOptions
            {
                Emulator = Tool.Emulators.Emulator.Bochs,
                Disk = Path.Combine(work, "disk.img"),
                WorkDirectory = work,
                Interactive = interactive,
            });
            string[] lines = File.ReadAllLines(command.Arguments[2]);
            Assert.Contains("sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy", lines);
            Assert.Contains("speaker: enabled=0", lines);
            Assert.DoesNotContain(lines, l => l.Contains("alsa", StringComparison.OrdinalIgnoreCase) || l.Contains("oss", StringComparison.OrdinalIgnoreCase));
            Assert.Single(lines, l => l.StartsWith("sound:", StringComparison.Ordinal));
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}
