using System;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;
using Vigil.Abi;

namespace Vigil.Agent;

/// <summary>
/// vigild, the in-guest agent. Today: `vigild status` (the Status hypercall) and `vigild cpuid`
/// (Vigil's CPUID leaf as every CPU sees it). Exit codes: 0 ok, 1 no Vigil / hypercall failed,
/// 2 bad usage.
/// </summary>
internal static unsafe class Program
{
    private const string Usage = """
        usage: vigild <command>
          status    ask the hypervisor for its status: CPUs under protection, exits per reason
          cpuid     show Vigil's CPUID leaf 0x40000000 as each online CPU sees it
        """;

    private static int Main(string[] args)
    {
        if (args.Length != 1)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }
        return args[0] switch
        {
            "status" => Status(),
            "cpuid" => CpuidOnEveryCpu(),
            "help" or "--help" or "-h" => Help(),
            _ => BadUsage(args[0]),
        };
    }

    private static int Help()
    {
        Console.WriteLine(Usage);
        return 0;
    }

    private static int BadUsage(string command)
    {
        Console.Error.WriteLine($"vigild: unknown command '{command}'");
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

    private static bool VigilPresent(out string vendor)
    {
        vendor = VendorOfHypervisor();
        return vendor == "VigilVigilVi";
    }

    private static int Status()
    {
        if (!VigilPresent(out string vendor))
        {
            Console.Error.WriteLine($"vigild: no Vigil hypervisor here (CPUID 0x40000000 vendor is '{vendor.Trim()}')");
            return 1;
        }
        var v0 = X86Base.CpuId(0, 0);
        bool amd = v0.Ebx == 0x68747541;   // "Auth"enticAMD
        if (!HypercallStub.Initialize(amd))
        {
            Console.Error.WriteLine("vigild: cannot map the hypercall stub (mmap/mprotect failed)");
            return 1;
        }
        var report = new StatusReport();
        Span<ulong> regs = [Hypercall.Rax(HypercallFunction.Status), (ulong)&report, (ulong)sizeof(StatusReport), 0, 0];
        HypercallStub.Call(regs);
        var status = (HypercallStatus)regs[0];
        if (status != HypercallStatus.Success)
        {
            Console.Error.WriteLine($"vigild: the Status hypercall failed: {status} (needs {regs[2]} bytes)");
            return 1;
        }
        if (report.Signature != StatusReport.ExpectedSignature)
        {
            Console.Error.WriteLine($"vigild: the status report has a bad signature 0x{report.Signature:X16}");
            return 1;
        }
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
