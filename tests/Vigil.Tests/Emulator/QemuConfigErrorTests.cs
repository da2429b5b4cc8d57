using System;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;
using Xunit;

namespace Vigil.Tests.Emulator;

/// <summary>A vigil.conf full of mistakes and an ESP without any OS loader (QEMU TCG, no guest).</summary>
public sealed class QemuConfigErrorBoot() : EmulatorBoot(
    "qemu-config-errors",
    new EspLayoutSpec(EspTarget.Qemu, Scenario: null, Config: BadConfig),
    new EmulatorSpec(Tool.Emulators.Emulator.QemuTcg),
    TimeSpan.FromSeconds(120),
    stopWhen: t => t.Contains(EmulatorSetup.Com2, "returning to the firmware boot manager"))
{
    public const string BadConfig = """
        # a config with three bad lines
        loader = \EFI\nowhere\missing.efi
        log_port = banana
        frobnicate = yes
        options = quiet
        """;
}

[Trait("Category", "Emulator")]
[Collection("Emulators")]
public sealed class QemuConfigErrorTests(QemuConfigErrorBoot boot) : IClassFixture<QemuConfigErrorBoot>
{
    private Transcript T => boot.Transcript;

    [Fact]
    public void Every_bad_line_is_named_with_the_default_used()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2,
            "vigil: WARNING: vigil.conf line 3: log_port 'banana' is not com1-com4, none, or an I/O port like 0x2f8; using the default COM2 (0x2F8)"));
        Assert.True(T.Contains(EmulatorSetup.Com2,
            "vigil: WARNING: vigil.conf line 4: unknown key 'frobnicate' (known: loader, options, log_port, hypervisor, policy); line ignored"));
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: options  = quiet"));
    }

    [Fact]
    public void Missing_loader_is_reported_with_every_path_looked_for()
    {
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: ERROR: no OS loader found on the boot volume. Looked for:"));
        Assert.True(T.Contains(EmulatorSetup.Com2, "\\EFI\\nowhere\\missing.efi (configured)"));
        Assert.True(T.Contains(EmulatorSetup.Com2, "\\EFI\\vigil\\linux.efi"));
        Assert.True(T.Contains(EmulatorSetup.Com2, "\\EFI\\debian\\grubx64.efi"));
        Assert.True(T.Contains(EmulatorSetup.Com2, "vigil: ERROR: nothing to start; returning to the firmware boot manager"));
        Assert.False(T.TimedOut, $"vigil.efi never gave up; see {boot.TranscriptPath}");
    }
}
