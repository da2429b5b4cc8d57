using System;
using System.Diagnostics;
using System.IO;
using System.Text;
using Vigil.Tool.Emulators;
using Vigil.Tool.Images;

namespace Vigil.Tool.Commands;

/// <summary>
/// `vigil bench`: the numbers the notes report, measured, never asserted: image sizes, the time of a
/// full rebuild of vigil.efi through the no-runtime chain, and boot timelines in QEMU and Bochs.
/// </summary>
internal static class BenchCommand
{
    public static int Run(Options options)
    {
        string root = options.Optional("--root") ?? Repository.Root();
        bool bochs = !options.Flag("--no-bochs");
        options.EnsureAllUsed();

        var report = new StringBuilder();
        void Say(string line)
        {
            Console.WriteLine(line);
            report.AppendLine(line);
        }

        Say($"vigil bench, {DateTime.UtcNow:u}, {Environment.ProcessorCount} host CPUs");
        var build = Stopwatch.StartNew();
        HostProcess.RunChecked("dotnet", "build", Path.Combine(root, "boot", "Vigil.Boot", "Vigil.Boot.csproj"), "-c", "Release", "--no-restore", "--no-incremental", "-v", "q", "-nologo");
        Say($"rebuild of vigil.efi (csc + ilc + stubs + lld-link, MSBuild included): {build.Elapsed.TotalSeconds:F1} s");
        foreach (string image in Directory.GetFiles(Path.Combine(root, "out", "efi"), "*.efi"))
        {
            Say($"{Path.GetFileName(image)}: {new FileInfo(image).Length:N0} bytes");
        }

        // Each emulator boots twice in the same run: under Vigil, and with `hypervisor = off`.
        foreach (bool hypervisor in new[] { true, false })
        {
            Boot(root, "qemu", EspTarget.Qemu, Emulator.QemuTcg, hypervisor, Say);
            if (bochs) Boot(root, "bochs", EspTarget.Bochs, Emulator.Bochs, hypervisor, Say);
        }

        string path = Path.Combine(root, "out", "bench", "report.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, report.ToString());
        Console.WriteLine($"bench: report in {path}");
        return 0;
    }

    private static void Boot(string root, string name, EspTarget target, Emulator emulator, bool hypervisor, Action<string> say)
    {
        string work = Path.Combine(root, "out", "bench", name + (hypervisor ? "" : "-off"));
        string disk = Path.Combine(work, "disk.img");
        string config = EspLayout.DefaultConfig(target, "smoke") + (hypervisor ? "" : "hypervisor = off\n");
        new EspLayout { Root = root, Target = target, Scenario = "smoke", Config = config }.Build(disk, Path.Combine(work, "esp"));
        var command = EmulatorSetup.Create(root, new EmulatorOptions { Emulator = emulator, Disk = disk, WorkDirectory = work });
        Transcript t = EmulatorRun.Run(command, TimeSpan.FromMinutes(15),
            stopWhen: x => x.Contains(EmulatorSetup.Com1, "reboot: Power down") || x.Contains(EmulatorSetup.Com1, "Kernel panic"));
        string At(string port, string text) => t.FirstSeen(port, text) is double s ? $"{s,6:F1} s" : "  never";
        say($"{name} boot, 1 CPU, hypervisor {(hypervisor ? "on" : "off")} (wall seconds from emulator start):");
        say($"  vigil.efi banner      {At(EmulatorSetup.Com2, "vigil: Vigil ")}");
        say($"  OS loader started     {At(EmulatorSetup.Com2, "vigil: starting ")}");
        say($"  Linux banner          {At(EmulatorSetup.Com1, "Linux version")}");
        say($"  init (boot-to-init)   {At(EmulatorSetup.Com1, "VIGIL-GUEST: init started")}");
        say($"  power-off             {At(EmulatorSetup.Com1, "reboot: Power down")}");
        if (hypervisor) say($"  hypervisor            {(t.Contains(EmulatorSetup.Com2, "CPUs run under the hypervisor") ? "running" : "NOT running (see " + work + "/transcript.txt)")}");
    }
}
