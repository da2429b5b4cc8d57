// The hypercall dispatcher (VMCALL/VMMCALL), vendor-neutral: the back end hands over the guest's
// registers and paging state; the dispatcher validates everything, writes results into the
// registers (RAX = HypercallStatus) and guest memory, and never trusts a guest pointer: buffers
// are reached through the guest's own page tables with its access rights, and never inside the
// hypervisor's reservation. The back end advances RIP (or injects #UD for a call not for Vigil).
// Runs on the exit path: no allocation (the report is built in per-CPU scratch memory, cleared and copied
// 8 bytes at a time). A guest can make these calls at will, so their records are rate-limited, never
// silent: per CPU the 1st, 2nd, 4th, 8th... answered Status call and refusal go to the log ring, each
// with the running count (a record drained to the UART costs thousands of instructions and a guest
// looping on a refused call would flood the log).
// Compiled twice: into the hypervisor (no runtime) and into the tests.
using Vigil.Abi;
using Vigil.Hypervisor.Core.Vcpu;

namespace Vigil.Hypervisor.Core
{
    public static unsafe class Hypercalls
    {
        private static Vendor s_vendor;
        private static ulong s_reservedBase;
        private static ulong s_reservedSize;
        private static byte* s_scratch;
        private static uint s_cpuCount;
        private static LogCounts s_logged;

        /// <summary>Slots of the per-CPU call counters behind the rate-limited records (CPU index modulo this).</summary>
        private const int CountSlots = 64;

        private struct LogCounts
        {
            public fixed ulong Rejected[CountSlots];
            public fixed ulong Status[CountSlots];
        }

        /// <summary>Per-CPU scratch bytes the dispatcher needs (one report per CPU).</summary>
        public static ulong ScratchBytesPerCpu => ((ulong)sizeof(StatusReport) + 4095) & ~4095UL;

        public static void Initialize(Vendor vendor, ulong reservedBase, ulong reservedSize, byte* scratch, uint cpuCount)
        {
            s_vendor = vendor;
            s_reservedBase = reservedBase;
            s_reservedSize = reservedSize;
            s_scratch = scratch;
            s_cpuCount = cpuCount;
            s_logged = default;
        }

        /// <summary>This CPU's scratch area (<see cref="ScratchBytesPerCpu"/> bytes), or null before Initialize.</summary>
        public static byte* Scratch(uint cpu) => cpu < s_cpuCount && s_scratch != null ? s_scratch + (cpu * ScratchBytesPerCpu) : null;

        /// <summary>
        /// Handles a hypercall whose RAX carries the signature, with the vCPU (the guard's calls read its registers and
        /// state) and the platform seam of the guard (nested map, lock, random); returns the status also stored in RAX.
        /// </summary>
        public static HypercallStatus Dispatch<T, TMemory, TPlatform>(ref T vcpu, ref TMemory memory, ref TPlatform platform)
            where T : struct, IVcpu
            where TMemory : struct, IPhysicalMemory
            where TPlatform : struct, Guard.IGuardPlatform
        {
            ulong function = vcpu.Registers.Rax & Hypercall.FunctionMask;
            if (!Guard.GuardHypercalls.Handles((HypercallFunction)(ushort)function))
                return Dispatch(ref memory, ref vcpu.Registers, VcpuState.Paging(ref vcpu), vcpu.Index);
            HypercallStatus status = Guard.GuardHypercalls.Dispatch((HypercallFunction)(ushort)function, ref vcpu, ref memory, ref platform);
            vcpu.Registers.Rax = (ulong)status;
            if (status != HypercallStatus.Success) LogRejected(vcpu.Index, function, vcpu.Cr3, status);
            return status;
        }

        /// <summary>True when RAX carries Vigil's signature (otherwise the guest gets #UD, as on bare metal).</summary>
        public static bool IsForVigil(ulong rax) => (rax & Hypercall.SignatureMask) == Hypercall.Signature;

        /// <summary>Handles a hypercall whose RAX carries the signature; returns the status also stored in RAX.</summary>
        public static HypercallStatus Dispatch<TMemory>(ref TMemory memory, ref GuestRegisters regs, in GuestPaging paging, uint cpu)
            where TMemory : struct, IPhysicalMemory
        {
            ulong function = regs.Rax & Hypercall.FunctionMask;
            HypercallStatus status = (HypercallFunction)(ushort)function switch
            {
                HypercallFunction.Status => Status(ref memory, ref regs, paging, cpu),
                _ => HypercallStatus.UnknownFunction,
            };
            regs.Rax = (ulong)status;
            if (status != HypercallStatus.Success) LogRejected(cpu, function, paging.Cr3, status);
            return status;
        }

        /// <summary>Whether the <paramref name="count"/>-th call of a kind is logged: 1, 2, 4, 8... (log2 of the calls, with the count).</summary>
        public static bool Logged(ulong count) => (count & (count - 1)) == 0;

        private static void LogRejected(uint cpu, ulong function, ulong cr3, HypercallStatus status)
        {
            ulong n = ++s_logged.Rejected[cpu % CountSlots];
            if (Logged(n)) LogRings.Write(cpu, LogEvent.HypercallRejected, function, cr3, (ulong)status, n);
        }

        /// <summary>RBX = guest-virtual buffer, RCX = its size. RCX returns the size the report needs.</summary>
        private static HypercallStatus Status<TMemory>(ref TMemory memory, ref GuestRegisters regs, in GuestPaging paging, uint cpu)
            where TMemory : struct, IPhysicalMemory
        {
            ulong needed = (ulong)sizeof(StatusReport);
            ulong size = regs.Rcx;
            regs.Rcx = needed;
            if (size < needed) return HypercallStatus.BadBufferSize;
            if (cpu >= s_cpuCount || s_scratch == null) return HypercallStatus.NotPermitted;

            var report = (StatusReport*)(s_scratch + (cpu * ScratchBytesPerCpu));
            byte* raw = (byte*)report;
            ulong words = needed / 8;
            for (ulong i = 0; i < words; i++) ((ulong*)raw)[i] = 0;
            for (ulong i = words * 8; i < needed; i++) raw[i] = 0;
            report->Signature = StatusReport.ExpectedSignature;
            report->Version = Hypercall.Version;
            report->Vendor = s_vendor;
            report->ReservedBytes = s_reservedSize;
            report->ReservedBase = s_reservedBase;
            uint count = ExitStatistics.CpuCount < StatusReport.MaxCpus ? ExitStatistics.CpuCount : StatusReport.MaxCpus;
            report->CpuCount = count;
            for (uint i = 0; i < count; i++)
            {
                CpuStatus* source = ExitStatistics.Cpu(i);
                report->Cpus[(int)i] = *source;
                if (source->Virtualized != 0) report->VirtualizedCount++;
            }
            Guard.GuardHypercalls.FillStatus(&report->Guard, Guard.GuardHypercalls.SecretMatches(regs.Rdx));
            Guard.PolicyStore.FillStatus(&report->Policy);
            WalkResult result = GuestMemory.CopyToGuest(ref memory, paging, regs.Rbx, new System.ReadOnlySpan<byte>(raw, (int)needed), s_reservedBase, s_reservedSize);
            if (result != WalkResult.Ok) return HypercallStatus.BadAddress;
            ulong calls = ++s_logged.Status[cpu % CountSlots];
            if (Logged(calls)) LogRings.Write(cpu, LogEvent.StatusReported, paging.Cr3, regs.Rbx, count, calls);
            return HypercallStatus.Success;
        }
    }
}
