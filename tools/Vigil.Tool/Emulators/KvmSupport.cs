using System.IO;

namespace Vigil.Tool.Emulators;

/// <summary>Whether QEMU/KVM with nested VT-x can run here (the third test path, real Intel hardware).</summary>
public static class KvmSupport
{
    /// <summary>Null when /dev/kvm is usable and the host CPU has VMX; otherwise the reason it is not.</summary>
    public static string? Problem()
    {
        if (!File.Exists("/proc/cpuinfo")) return "no /proc/cpuinfo (not Linux)";
        string cpuinfo = File.ReadAllText("/proc/cpuinfo");
        bool vmx = cpuinfo.Contains(" vmx", System.StringComparison.Ordinal);
        if (!vmx) return "the host CPU does not offer VMX (no 'vmx' flag in /proc/cpuinfo); nested VT-x needs an Intel host with KVM";
        if (!File.Exists("/dev/kvm")) return "/dev/kvm does not exist (kvm_intel not loaded?)";
        try
        {
            using var kvm = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
        }
        catch (System.Exception e) when (e is IOException or System.UnauthorizedAccessException)
        {
            return "/dev/kvm cannot be opened: " + e.Message;
        }
        string nested = "/sys/module/kvm_intel/parameters/nested";
        if (File.Exists(nested) && File.ReadAllText(nested).Trim() is not ("Y" or "1"))
        {
            return "kvm_intel is loaded with nested=0 (reload it with nested=1)";
        }
        if (!File.Exists(nested)) return "kvm_intel is not loaded (no " + nested + "), so KVM here cannot offer VT-x to a guest";
        return null;
    }
}
