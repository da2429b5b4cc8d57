using System;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;
using Vigil.Abi;

namespace Vigil.Agent;

/// <summary>
/// vigild, the in-guest agent: `vigild status` (the Status hypercall), `vigild cpuid` (Vigil's CPUID leaf as every
/// CPU sees it), and the kernel guard: `vigild protect [--strict] [--lock]`, `vigild lock`, `vigild events [--after N]
/// [--follow] [--json]` (GuardCommands). Exit codes: 0 ok, 1 no Vigil / hypercall failed / refused, 2 bad usage.
/// </summary>
internal static unsafe class Program
{
    private const string Usage = """
        usage: vigild <command>
          status                             the hypervisor's status: CPUs under protection, exits per reason, the guard
          cpuid                              show Vigil's CPUID leaf 0x40000000 as each online CPU sees it
          protect [--strict | --policy FILE] [--lock]
                                             guard the running kernel (root; hints from /proc/kallsyms; the secret
                                             goes to /run/vigild.secret); --lock locks in the same call;
                                             --strict: the built-in strict rules (text patches into code
                                             loaded after protect, e.g. ftrace hooks of new modules, blocked);
                                             --policy FILE: put a compiled policy (`vigil policy compile`) in
                                             force instead of the one in force (before lock only)
          lock                               lock the guard: nothing can be unguarded or relaxed until reset
          run [--jsonl FILE]                 the service: this boot's state, then every guard event as it comes, with a
                                             syslog priority for the journal (block: warning, audit: notice), and
                                             one JSON object per line appended to FILE
          confirm [--retry]                  the OS is up and protected: reset vigil.efi's fail-safe boot counter
                                             (protect does it too); --retry also after an unprotected boot, so
                                             the next boot tries the hypervisor again
          install --esp DIR --efi DIR [--loader PATH] [--options TEXT] [--log-port PORT] [--dry-run]
                                             `vigil install` from the guest (root): vigil.efi into EFI/vigil on the
                                             ESP mounted at DIR, a boot entry first in BootOrder (efivarfs)
          uninstall --esp DIR [--dry-run]    undo install
          events [--after N] [--follow] [--json]
                                             the guard's events after sequence N (root: needs the secret);
                                             --follow keeps reading, --json prints one JSON object per line
        """;

    private static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }
        string command = args[0];
        var rest = args.AsSpan(1);
        switch (command)
        {
            case "status" when rest.Length == 0: return Status();
            case "cpuid" when rest.Length == 0: return CpuidOnEveryCpu();
            case "lock" when rest.Length == 0: return GuardCommands.Lock();
            case "help" or "--help" or "-h": return Help();
            case "protect":
                bool lockToo = false, strict = false;
                string? policy = null;
                for (int i = 0; i < rest.Length; i++)
                {
                    switch (rest[i])
                    {
                        case "--lock" when !lockToo: lockToo = true; break;
                        case "--strict" when !strict: strict = true; break;
                        case "--policy" when policy == null && i + 1 < rest.Length: policy = rest[++i]; break;
                        default: return BadUsage("protect takes only --strict, --policy FILE and --lock");
                    }
                }
                if (strict && policy != null) return BadUsage("protect: --strict and --policy choose the rules both; give one");
                int protectedRc = GuardCommands.Protect(lockToo, strict, policy);
                if (protectedRc == 0) ResetBootCounterAfterProtect();
                return protectedRc;
            case "run" when rest.Length == 0: return RunCommand.Run(null);
            case "run" when rest.Length == 2 && rest[0] == "--jsonl": return RunCommand.Run(rest[1]);
            case "run": return BadUsage("run takes only --jsonl FILE");
            case "install" or "uninstall": return InstallCommand.Run(command, rest);
            case "confirm" when rest.Length == 0: return BootCounterFile.Confirm(retry: false);
            case "confirm" when rest.Length == 1 && rest[0] == "--retry": return BootCounterFile.Confirm(retry: true);
            case "confirm": return BadUsage("confirm takes only --retry");
            case "events":
                ulong after = 0;
                bool follow = false, json = false;
                for (int i = 0; i < rest.Length; i++)
                {
                    switch (rest[i])
                    {
                        case "--follow": follow = true; break;
                        case "--json": json = true; break;
                        case "--after" when i + 1 < rest.Length && ulong.TryParse(rest[i + 1], out after): i++; break;
                        default: return BadUsage($"events: bad argument '{rest[i]}'");
                    }
                }
                return GuardCommands.Events(after, follow, json);
            case "status" or "cpuid" or "lock": return BadUsage($"{command} takes no arguments");
            default: return BadUsage($"unknown command '{command}'");
        }
    }

    /// <summary>The OS is up and protected: the fail-safe boot counter goes back to 0 (a failure is a warning only).</summary>
    private static void ResetBootCounterAfterProtect()
    {
        string? problem = BootCounterFile.Reset();
        if (problem != null) Console.Error.WriteLine("vigild: warning: cannot reset the boot counter: " + problem);
        else Console.WriteLine("vigild: boot counter reset: this boot is confirmed");
    }

    private static int Help()
    {
        Console.WriteLine(Usage);
        return 0;
    }

    private static int BadUsage(string problem)
    {
        Console.Error.WriteLine($"vigild: {problem}");
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static string VendorOfHypervisor()
    {
        var r = X86Base.CpuId(unchecked((int)Hypercall.CpuidVendorLeaf), 0);
        Span<byte> text = stackalloc byte[12];
        BitConverter.TryWriteBytes(text, r.Ebx);
        BitConverter.TryWriteBytes(text[4..], r.Ecx);
        BitConverter.TryWriteBytes(text[8..], r.Edx);
        return Encoding.ASCII.GetString(text).Replace('\0', ' ');
    }

    public static bool VigilPresent(out string vendor)
    {
        vendor = VendorOfHypervisor();
        return vendor == "VigilVigilVi";
    }

    private static int Status()
    {
        string boot = BootStateFile.Describe();
        string counter = BootCounterFile.Describe();
        if (!Hypervisor.Ready())
        {
            Console.Error.WriteLine(boot);
            Console.Error.WriteLine(counter);
            return 1;
        }
        Console.WriteLine(boot);
        Console.WriteLine(counter);
        StatusReport report = default;
        if (!Hypervisor.Status(ref report)) return 1;
        string vendorName = report.Vendor switch { Vendor.IntelVmx => "Intel VMX + EPT", Vendor.AmdSvm => "AMD SVM + NPT", _ => "unknown" };
        Console.WriteLine($"vigild: Vigil interface {report.Version >> 16}.{(report.Version >> 8) & 0xFF}.{report.Version & 0xFF} on {vendorName}: "
            + $"{report.VirtualizedCount} of {report.CpuCount} CPUs virtualized, {report.ReservedBytes >> 10} KiB reserved at 0x{report.ReservedBase:X}");
        for (int i = 0; i < (int)report.CpuCount && i < StatusReport.MaxCpus; i++)
        {
            CpuStatus cpu = report.Cpus[i];
            var line = new StringBuilder($"vigild: cpu {i} (apic {cpu.ApicId}): {(cpu.Virtualized != 0 ? "virtualized" : "NOT virtualized")}, {cpu.TotalExits} exits");
            string separator = ": ";
            for (int r = 0; r < ExitReasons.Count; r++)
            {
                if (cpu.Exits[r] == 0) continue;
                line.Append(separator).Append(ExitReasons.Name((ExitReason)r)).Append(' ').Append(cpu.Exits[r]);
                separator = ", ";
            }
            Console.WriteLine(line.ToString());
        }
        GuardCommands.PrintStatus(report);
        return report.VirtualizedCount == report.CpuCount ? 0 : 1;
    }

    private static int CpuidOnEveryCpu()
    {
        int seen = 0, vigil = 0;
        for (int cpu = 0; cpu < 64; cpu++)
        {
            ulong mask = 1UL << cpu;
            if (SchedSetAffinity(0, sizeof(ulong), &mask) != 0) continue;
            seen++;
            bool present = VigilPresent(out string vendor);
            if (present) vigil++;
            Console.WriteLine($"vigild: cpu {cpu} CPUID 0x40000000 vendor '{vendor.Trim()}'{(present ? "" : " (not Vigil)")}");
        }
        Console.WriteLine($"vigild: {vigil} of {seen} CPUs see Vigil's CPUID leaf");
        return seen > 0 && vigil == seen ? 0 : 1;
    }

    [DllImport("libc", EntryPoint = "sched_setaffinity")]
    private static extern int SchedSetAffinity(int pid, nuint size, ulong* mask);
}
