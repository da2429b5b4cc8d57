// The settings in \EFI\vigil\vigil.conf and their defaults.
// Compiled twice: into vigil.efi (no runtime) and into the unit tests (net10.0).
using Vigil.Platform;

namespace Vigil.Boot.Config
{
    public sealed class VigilConfig
    {
        /// <summary>Where vigil.efi looks for its configuration on the volume it was started from.</summary>
        public const string Path = "\\EFI\\vigil\\vigil.conf";

        /// <summary>The test guest's Linux kernel (its EFI stub) as built by `vigil guest`.</summary>
        public const string DefaultLoader = "\\EFI\\vigil\\linux.efi";

        /// <summary>The guest console on COM1 and the test guest's initramfs.</summary>
        public const string DefaultOptions = "console=ttyS0 initrd=\\EFI\\vigil\\initrd.img";

        /// <summary>The compiled policy the tools put on every ESP (`vigil policy compile policy/default.policy`).</summary>
        public const string DefaultPolicy = "\\EFI\\vigil\\default.pol";

        /// <summary>COM2: Vigil's log stays off the guest console (COM1).</summary>
        public const ushort DefaultLogPort = 0x2F8;

        /// <summary>The OS loader to start, an absolute path on the same volume.</summary>
        public string Loader { get; set; } = DefaultLoader;

        /// <summary>Load options (the command line) handed to the OS loader.</summary>
        public string Options { get; set; } = DefaultOptions;

        /// <summary>I/O port base of the UART Vigil logs to; 0 = no serial log.</summary>
        public ushort LogPort { get; set; } = DefaultLogPort;

        /// <summary>The compiled policy to load (an absolute path on the same volume); null: the built-in rules on purpose (`policy = built-in`).</summary>
        public string? Policy { get; set; } = DefaultPolicy;

        /// <summary>Start the hypervisor (true) or boot the OS unprotected on purpose (false, for measurements).</summary>
        public bool Hypervisor { get; set; } = true;

        /// <summary>Human-readable name of a log port: "COM2 (0x2F8)", "0x3E0", "none".</summary>
        public static string PortName(ushort port)
        {
            string hex = "0x" + Hex.Format(port);
            return port switch
            {
                0 => "none",
                0x3F8 => "COM1 (" + hex + ")",
                0x2F8 => "COM2 (" + hex + ")",
                0x3E8 => "COM3 (" + hex + ")",
                0x2E8 => "COM4 (" + hex + ")",
                _ => hex,
            };
        }
    }
}
