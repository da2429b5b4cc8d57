using System.Collections.Generic;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Vigil.Tool.Stubs;

/// <summary>
/// Every machine-code stub linked into Vigil's no-runtime images. Each is assembled by Iced at build
/// time (`vigil stubs`); its C# binding and a listing are generated from this table (`vigil generate`).
/// Calling convention: Microsoft x64 (ILC targets Windows x64): arguments in rcx, rdx, r8, r9,
/// result in rax; rax, rcx, rdx, r8-r11 are volatile.
/// </summary>
internal static partial class StubCatalog
{
    public static IReadOnlyList<Stub> Stubs { get; } = [.. RuntimeStubs(), .. CpuStubs(), .. HostStubs(), .. SafeMsrStubs(), .. SvmStubs(), .. VmxStubs()];

    public static IReadOnlyList<DataSymbol> Data { get; } =
    [
        // Normally randomized by the runtime at start-up; a fixed value still catches overruns.
        new("__security_cookie", "GS stack cookie read by functions with stack buffers.", [0x32, 0xA2, 0xDF, 0x2D, 0x99, 0x2B, 0x00, 0x00]),
        new("RhpTrapThreads", "Polled after suppressed-transition calls; zero: never trap.", [0, 0, 0, 0]),
        .. VmxData(),
    ];

    private static IEnumerable<Stub> RuntimeStubs()
    {
        // No GC, so the write barriers are plain stores.
        yield return new("RhpAssignRef", StubBinding.None, "", "Write barrier: [rcx] = rdx.", e =>
        {
            e.Asm.mov(__qword_ptr[rcx], rdx);
            e.Asm.ret();
        });
        yield return new("RhpCheckedAssignRef", StubBinding.None, "", "Checked write barrier: [rcx] = rdx.", e =>
        {
            e.Asm.mov(__qword_ptr[rcx], rdx);
            e.Asm.ret();
        });
        yield return new("RhpByRefAssignRef", StubBinding.None, "", "By-ref write barrier: [rdi] = [rsi]; rdi += 8; rsi += 8 (rcx clobbered).", e =>
        {
            e.Asm.mov(rcx, __qword_ptr[rsi]);
            e.Asm.mov(__qword_ptr[rdi], rcx);
            e.Asm.add(rdi, 8);
            e.Asm.add(rsi, 8);
            e.Asm.ret();
        });
        // Interface call sites do `lea r11, [cell]; call [r11]`; the cell starts out pointing here.
        // Save the argument registers, ask the C# resolver (this, cell) for the target, restore, jump.
        yield return new("RhpInitialDynamicInterfaceDispatch", StubBinding.None, "", "Interface dispatch through vigil_resolve_interface (no cache).", e =>
        {
            var a = e.Asm;
            a.push(rcx);
            a.push(rdx);
            a.push(r8);
            a.push(r9);
            a.sub(rsp, 104);                       // 32 shadow + 8 pad + 4 x 16 xmm: rsp stays 16-byte aligned
            a.movdqu(__xmmword_ptr[rsp + 40], xmm0);
            a.movdqu(__xmmword_ptr[rsp + 56], xmm1);
            a.movdqu(__xmmword_ptr[rsp + 72], xmm2);
            a.movdqu(__xmmword_ptr[rsp + 88], xmm3);
            a.mov(rdx, r11);
            e.CallExternal("vigil_resolve_interface");
            a.movdqu(xmm0, __xmmword_ptr[rsp + 40]);
            a.movdqu(xmm1, __xmmword_ptr[rsp + 56]);
            a.movdqu(xmm2, __xmmword_ptr[rsp + 72]);
            a.movdqu(xmm3, __xmmword_ptr[rsp + 88]);
            a.add(rsp, 104);
            a.pop(r9);
            a.pop(r8);
            a.pop(rdx);
            a.pop(rcx);
            a.jmp(rax);
        });
        // RyuJIT calls this in the prologue of a frame larger than 3 pages (smaller ones probe inline) with
        // R11 = the lowest address of the new frame; RAX is scratch, RSP and R11 stay. It touches one word
        // per page from the page below RSP down to R11's, in order, so a frame that would overrun a host
        // stack faults on its guard page (hv/Host/HostEnvironment.cs) instead of jumping over it.
        yield return new("RhpStackProbe", StubBinding.None, "", "Stack probe for large frames: touches each page from below RSP down to R11.", e =>
        {
            var a = e.Asm;
            Label next = a.CreateLabel();
            a.mov(rax, rsp);
            a.and(rax, -4096);
            a.Label(ref next);
            a.sub(rax, 4096);
            a.test(__dword_ptr[rax], eax);
            a.cmp(rax, r11);
            a.jg(next);
            a.ret();
        });
        yield return new("vigil_rtr_header", StubBinding.Runtime, "byte* ReadyToRunHeader()", "Address of the module's ReadyToRun header (emitted by ILC).", e =>
        {
            e.LeaRaxExternal("__ReadyToRunHeader");
            e.Asm.ret();
        });
        yield return new("vigil_image_base", StubBinding.Runtime, "byte* ImageBase()", "Load address of this PE image (the linker's __ImageBase).", e =>
        {
            e.LeaRaxExternal("__ImageBase");
            e.Asm.ret();
        });
        yield return new("vigil_read_rsp", StubBinding.Runtime, "ulong ReadRsp()", "The caller's stack pointer (after this call returns).", e =>
        {
            e.Asm.lea(rax, __[rsp + 8]);
            e.Asm.ret();
        });
        yield return new("vigil_halt_forever", StubBinding.Runtime, "void HaltForever()", "Disables interrupts and halts this CPU for good.", e =>
        {
            Label again = e.Asm.CreateLabel();
            e.Asm.Label(ref again);
            e.Asm.cli();
            e.Asm.hlt();
            e.Asm.jmp(again);
        });
    }

    private static IEnumerable<Stub> CpuStubs()
    {
        // Port I/O (SDM Vol 2 IN/OUT).
        yield return new("vigil_inb", StubBinding.Cpu, "byte InByte(ushort port)", "in al, dx", e =>
        {
            e.Asm.mov(edx, ecx);
            e.Asm.xor(eax, eax);
            e.Asm.@in(al, dx);
            e.Asm.ret();
        });
        yield return new("vigil_inw", StubBinding.Cpu, "ushort InWord(ushort port)", "in ax, dx", e =>
        {
            e.Asm.mov(edx, ecx);
            e.Asm.xor(eax, eax);
            e.Asm.@in(ax, dx);
            e.Asm.ret();
        });
        yield return new("vigil_ind", StubBinding.Cpu, "uint InDword(ushort port)", "in eax, dx", e =>
        {
            e.Asm.mov(edx, ecx);
            e.Asm.@in(eax, dx);
            e.Asm.ret();
        });
        yield return new("vigil_outb", StubBinding.Cpu, "void OutByte(ushort port, byte value)", "out dx, al", e =>
        {
            e.Asm.mov(eax, edx);
            e.Asm.mov(edx, ecx);
            e.Asm.@out(dx, al);
            e.Asm.ret();
        });
        yield return new("vigil_outw", StubBinding.Cpu, "void OutWord(ushort port, ushort value)", "out dx, ax", e =>
        {
            e.Asm.mov(eax, edx);
            e.Asm.mov(edx, ecx);
            e.Asm.@out(dx, ax);
            e.Asm.ret();
        });
        yield return new("vigil_outd", StubBinding.Cpu, "void OutDword(ushort port, uint value)", "out dx, eax", e =>
        {
            e.Asm.mov(eax, edx);
            e.Asm.mov(edx, ecx);
            e.Asm.@out(dx, eax);
            e.Asm.ret();
        });

        // CPUID writes eax, ebx, ecx, edx of (leaf, subleaf) to result[0..3]. rbx is non-volatile.
        yield return new("vigil_cpuid", StubBinding.Cpu, "void Cpuid(uint leaf, uint subleaf, uint* result)", "cpuid; result = {eax, ebx, ecx, edx}", e =>
        {
            var a = e.Asm;
            a.push(rbx);
            a.mov(eax, ecx);
            a.mov(ecx, edx);
            a.cpuid();
            a.mov(__dword_ptr[r8], eax);
            a.mov(__dword_ptr[r8 + 4], ebx);
            a.mov(__dword_ptr[r8 + 8], ecx);
            a.mov(__dword_ptr[r8 + 12], edx);
            a.pop(rbx);
            a.ret();
        });

        // MSRs (SDM Vol 2 RDMSR/WRMSR): edx:eax.
        yield return new("vigil_rdmsr", StubBinding.Cpu, "ulong ReadMsr(uint msr)", "rdmsr", e =>
        {
            e.Asm.rdmsr();
            e.Asm.shl(rdx, 32);
            e.Asm.or(rax, rdx);
            e.Asm.ret();
        });
        yield return new("vigil_wrmsr", StubBinding.Cpu, "void WriteMsr(uint msr, ulong value)", "wrmsr", e =>
        {
            e.Asm.mov(rax, rdx);
            e.Asm.shr(rdx, 32);
            e.Asm.wrmsr();
            e.Asm.ret();
        });

        // WRMSR to an x2APIC register is not serializing, and an IPI sent through the ICR may overtake earlier
        // stores (SDM Vol 3A 11.12.3): MFENCE; LFENCE first, so what the target reads when the IPI arrives
        // (a nested-map generation, a kick flag) is visible to it.
        yield return new("vigil_wrmsr_fenced", StubBinding.Cpu, "void WriteMsrFenced(uint msr, ulong value)", "mfence; lfence; wrmsr", e =>
        {
            e.Asm.mfence();
            e.Asm.lfence();
            e.Asm.mov(rax, rdx);
            e.Asm.shr(rdx, 32);
            e.Asm.wrmsr();
            e.Asm.ret();
        });

        // Control registers.
        foreach (var (name, register) in new[] { ("Cr0", cr0), ("Cr2", cr2), ("Cr3", cr3), ("Cr4", cr4), ("Cr8", cr8) })
        {
            var cr = register;
            yield return new($"vigil_read_{name.ToLowerInvariant()}", StubBinding.Cpu, $"ulong Read{name}()", $"mov rax, {name.ToLowerInvariant()}", e =>
            {
                e.Asm.mov(rax, cr);
                e.Asm.ret();
            });
            yield return new($"vigil_write_{name.ToLowerInvariant()}", StubBinding.Cpu, $"void Write{name}(ulong value)", $"mov {name.ToLowerInvariant()}, rcx", e =>
            {
                e.Asm.mov(cr, rcx);
                e.Asm.ret();
            });
        }
        yield return new("vigil_xgetbv", StubBinding.Cpu, "ulong ReadXcr(uint index)", "xgetbv", e =>
        {
            e.Asm.xgetbv();
            e.Asm.shl(rdx, 32);
            e.Asm.or(rax, rdx);
            e.Asm.ret();
        });

        // Descriptor tables: the pseudo-descriptor is 10 bytes (limit:16, base:64).
        yield return new("vigil_sgdt", StubBinding.Cpu, "void StoreGdtr(void* descriptor)", "sgdt [rcx]", e =>
        {
            e.Asm.sgdt(__[rcx]);
            e.Asm.ret();
        });
        yield return new("vigil_sidt", StubBinding.Cpu, "void StoreIdtr(void* descriptor)", "sidt [rcx]", e =>
        {
            e.Asm.sidt(__[rcx]);
            e.Asm.ret();
        });
        yield return new("vigil_lgdt", StubBinding.Cpu, "void LoadGdtr(void* descriptor)", "lgdt [rcx]", e =>
        {
            e.Asm.lgdt(__[rcx]);
            e.Asm.ret();
        });
        yield return new("vigil_lidt", StubBinding.Cpu, "void LoadIdtr(void* descriptor)", "lidt [rcx]", e =>
        {
            e.Asm.lidt(__[rcx]);
            e.Asm.ret();
        });
        yield return new("vigil_str", StubBinding.Cpu, "ushort StoreTr()", "str ax", e =>
        {
            e.Asm.xor(eax, eax);
            e.Asm.str(ax);
            e.Asm.ret();
        });
        yield return new("vigil_sldt", StubBinding.Cpu, "ushort StoreLdtr()", "sldt ax", e =>
        {
            e.Asm.xor(eax, eax);
            e.Asm.sldt(ax);
            e.Asm.ret();
        });
        yield return new("vigil_ltr", StubBinding.Cpu, "void LoadTr(ushort selector)", "ltr cx", e =>
        {
            e.Asm.ltr(cx);
            e.Asm.ret();
        });
        foreach (var (name, register) in new[] { ("Cs", cs), ("Ds", ds), ("Es", es), ("Ss", ss), ("Fs", fs), ("Gs", gs) })
        {
            var segment = register;
            yield return new($"vigil_read_{name.ToLowerInvariant()}", StubBinding.Cpu, $"ushort Read{name}()", $"mov ax, {name.ToLowerInvariant()}", e =>
            {
                e.Asm.xor(eax, eax);
                e.Asm.mov(ax, segment);
                e.Asm.ret();
            });
        }
        yield return new("vigil_read_rflags", StubBinding.Cpu, "ulong ReadRflags()", "pushfq; pop rax", e =>
        {
            e.Asm.pushfq();
            e.Asm.pop(rax);
            e.Asm.ret();
        });

        // Time and waiting.
        yield return new("vigil_rdtsc", StubBinding.Cpu, "ulong Rdtsc()", "rdtsc", e =>
        {
            e.Asm.rdtsc();
            e.Asm.shl(rdx, 32);
            e.Asm.or(rax, rdx);
            e.Asm.ret();
        });
        // RDRAND sets CF when it delivered a random value, clears it (and the register) when the DRNG had none yet
        // (SDM Vol 2B RDRAND); callers check CPUID.01H:ECX.RDRAND[bit 30] first (#UD otherwise) and retry.
        yield return new("vigil_rdrand", StubBinding.Cpu, "uint Rdrand(ulong* value)", "rdrand rdx; [rcx] = rdx; returns CF (1: a random value was delivered)", e =>
        {
            var a = e.Asm;
            a.rdrand(rdx);
            a.setc(al);
            a.mov(__qword_ptr[rcx], rdx);
            a.movzx(eax, al);
            a.ret();
        });
        yield return new("vigil_hlt", StubBinding.Cpu, "void Halt()", "hlt", e =>
        {
            e.Asm.hlt();
            e.Asm.ret();
        });
        yield return new("vigil_pause", StubBinding.Cpu, "void Pause()", "pause", e =>
        {
            e.Asm.pause();
            e.Asm.ret();
        });
        yield return new("vigil_cli", StubBinding.Cpu, "void DisableInterrupts()", "cli", e =>
        {
            e.Asm.cli();
            e.Asm.ret();
        });
        yield return new("vigil_sti", StubBinding.Cpu, "void EnableInterrupts()", "sti", e =>
        {
            e.Asm.sti();
            e.Asm.ret();
        });

        // A spin lock for CPUs sharing one device (the log UART): the core library has no atomics.
        // LOCK CMPXCHG compares EAX with the lock word and stores EDX only if they are equal, as one
        // atomic read-modify-write; ZF tells whether it did (SDM Vol 2A CMPXCHG, Vol 3A 9.1.2.2).
        // The release is a plain store: x86 does not reorder a store with earlier loads or stores
        // (SDM Vol 3A 9.2.2), and the call keeps the compiler from moving memory accesses across it.
        yield return new("vigil_spin_try_acquire", StubBinding.Cpu, "uint SpinTryAcquire(uint* lockWord)",
            "lock cmpxchg [rcx], 1 if [rcx] is 0: returns 1 when this call took the lock, 0 when it was held", e =>
        {
            var a = e.Asm;
            a.mov(edx, 1);
            a.xor(eax, eax);
            a.@lock.cmpxchg(__dword_ptr[rcx], edx);
            a.sete(al);
            a.movzx(eax, al);
            a.ret();
        });
        // A store that changes nothing, done atomically (LOCK OR with 0 reads and writes the byte as one locked
        // operation, SDM Vol 2A OR, Vol 3A 9.1.2.2): for an emulator's code cache, a write to the code there.
        yield return new("vigil_touch_byte", StubBinding.Cpu, "void TouchByte(byte* address)", "lock or byte [rcx], 0", e =>
        {
            e.Asm.@lock.or(__byte_ptr[rcx], 0);
            e.Asm.ret();
        });
        yield return new("vigil_spin_release", StubBinding.Cpu, "void SpinRelease(uint* lockWord)", "mov dword [rcx], 0", e =>
        {
            e.Asm.mov(__dword_ptr[rcx], 0);
            e.Asm.ret();
        });
    }
}
