using System.Collections.Generic;
using System.Runtime.InteropServices;
using Iced.Intel;
using Vigil.Hypervisor.Core;
using static Iced.Intel.AssemblerRegisters;

namespace Vigil.Tool.Stubs;

/// <summary>Intel VMX stubs (SDM Vol 3C ch. 24-31): VMXON, VMREAD/VMWRITE, the launch and the exit entry point.</summary>
internal static partial class StubCatalog
{
    /// <summary>
    /// The C# entry points the VMX stubs call, as a table in the stubs' .data (the stubs are linked into
    /// every image, so they cannot name a symbol only the hypervisor defines). The hypervisor fills it
    /// before the first launch (hv/Vmx/VmxLaunch.cs); the slot numbers are these constants.
    /// </summary>
    public const string VmxCallbacks = "vigil_vmx_callbacks";

    /// <summary>Slot 0: <c>LaunchStatus Prepare(uint index, ulong guestRsp, ulong guestRip, ulong guestRflags)</c>.</summary>
    public const int VmxCallbackPrepare = 0;

    /// <summary>Slot 1: <c>LaunchStatus LaunchFailed(uint index)</c> (VMLAUNCH fell through).</summary>
    public const int VmxCallbackLaunchFailed = 1;

    /// <summary>Slot 2: <c>void Exit(GuestRegisters* registers, void* cpu)</c>.</summary>
    public const int VmxCallbackExit = 2;

    /// <summary>Slot 3: <c>void ResumeFailed(GuestRegisters* registers, void* cpu)</c> (VMRESUME fell through; never returns).</summary>
    public const int VmxCallbackResumeFailed = 3;

    public const int VmxCallbackCount = 4;

    private static IEnumerable<DataSymbol> VmxData()
    {
        yield return new(VmxCallbacks, "VMX C# entry points called by the launch and exit stubs (filled by the hypervisor).", new byte[8 * VmxCallbackCount]);
    }

    private static IEnumerable<Stub> VmxStubs()
    {
        // Every VMX instruction reports VMsucceed (CF = ZF = 0), VMfailInvalid (CF = 1: no current VMCS)
        // or VMfailValid (ZF = 1: the error number is in the VM-instruction error field), SDM Vol 3C 31.2.
        // The stubs return 0, 1 or 2 (Vigil.Hypervisor.Vmx.VmxResult).
        static void Status(StubEmitter e)
        {
            var a = e.Asm;
            Label invalid = a.CreateLabel();
            Label valid = a.CreateLabel();
            a.jc(invalid);
            a.jz(valid);
            a.xor(eax, eax);
            a.ret();
            a.Label(ref invalid);
            a.mov(eax, 1);
            a.ret();
            a.Label(ref valid);
            a.mov(eax, 2);
            a.ret();
        }

        yield return new("vigil_vmxon", StubBinding.Hypervisor, "ulong VmxOn(ulong* regionPhysical)", "vmxon [rcx]; 0 ok, 1 fail-invalid, 2 fail-valid", e =>
        {
            e.Asm.vmxon(__qword_ptr[rcx]);
            Status(e);
        });
        yield return new("vigil_vmxoff", StubBinding.Hypervisor, "ulong VmxOff()", "vmxoff", e =>
        {
            e.Asm.vmxoff();
            Status(e);
        });
        yield return new("vigil_vmclear", StubBinding.Hypervisor, "ulong VmClear(ulong* vmcsPhysical)", "vmclear [rcx]", e =>
        {
            e.Asm.vmclear(__qword_ptr[rcx]);
            Status(e);
        });
        yield return new("vigil_vmptrld", StubBinding.Hypervisor, "ulong VmPtrLoad(ulong* vmcsPhysical)", "vmptrld [rcx]", e =>
        {
            e.Asm.vmptrld(__qword_ptr[rcx]);
            Status(e);
        });
        yield return new("vigil_vmread", StubBinding.Hypervisor, "ulong VmRead(ulong field, ulong* value)", "vmread [rdx], rcx", e =>
        {
            e.Asm.vmread(__qword_ptr[rdx], rcx);
            Status(e);
        });
        // The exit path's reads (fields every VMCS has): the value in RAX, no status. A failed VMREAD leaves RAX as it
        // was (SDM Vol 3C 31.3, VMREAD): 0 then. Half the instructions of VmRead's call, store, status and load.
        yield return new("vigil_vmread_value", StubBinding.Hypervisor, "ulong VmReadValue(ulong field)", "xor eax, eax; vmread rax, rcx (0 when VMREAD fails)", e =>
        {
            e.Asm.xor(eax, eax);
            e.Asm.vmread(rax, rcx);
            e.Asm.ret();
        });
        yield return new("vigil_vmwrite", StubBinding.Hypervisor, "ulong VmWrite(ulong field, ulong value)", "vmwrite rcx, rdx", e =>
        {
            e.Asm.vmwrite(rcx, rdx);
            Status(e);
        });
        yield return new("vigil_invept", StubBinding.Hypervisor, "ulong Invept(ulong type, void* descriptor)", "invept rcx, [rdx] (128-bit descriptor)", e =>
        {
            e.Asm.invept(rcx, __xmmword_ptr[rdx]);
            Status(e);
        });
        yield return new("vigil_invvpid", StubBinding.Hypervisor, "ulong Invvpid(ulong type, void* descriptor)", "invvpid rcx, [rdx] (128-bit descriptor)", e =>
        {
            e.Asm.invvpid(rcx, __xmmword_ptr[rdx]);
            Status(e);
        });
        yield return new("vigil_xsetbv", StubBinding.Hypervisor, "void Xsetbv(uint index, ulong value)", "xsetbv (ecx = index, edx:eax = value)", e =>
        {
            e.Asm.mov(rax, rdx);
            e.Asm.shr(rdx, 32);
            e.Asm.xsetbv();
            e.Asm.ret();
        });
        yield return new("vigil_wbinvd", StubBinding.Hypervisor, "void Wbinvd()", "wbinvd (the host's answer to a guest INVD: never drop dirty lines)", e =>
        {
            e.Asm.wbinvd();
            e.Asm.ret();
        });
        yield return new("vigil_vmx_callbacks_address", StubBinding.Hypervisor, "void** VmxCallbacks()", "Address of the VMX callback table (vigil_vmx_callbacks).", e =>
        {
            e.LeaRaxExternal(VmxCallbacks);
            e.Asm.ret();
        });
        yield return new("vigil_vmx_exit_address", StubBinding.Hypervisor, "ulong VmxExitEntryAddress()", "Address of the VM-exit entry stub (VMCS HOST_RIP).", e =>
        {
            e.LeaRaxExternal("vigil_vmx_exit");
            e.Asm.ret();
        });
        yield return new("vigil_vmx_launch_address", StubBinding.Hypervisor, "void* VmxLaunchEntryAddress()", "Address of the launch-in-place stub (LaunchParameters.LaunchCpu).", e =>
        {
            e.LeaRaxExternal("vigil_vmx_launch_cpu");
            e.Asm.ret();
        });

        // LaunchStatus vigil_vmx_launch_cpu(uint index), called by vigil.efi on each CPU (Microsoft x64).
        // Virtualizes the CPU in place: the guest state is the caller's, so after VMLAUNCH the guest
        // "returns" from this call straight into vigil.efi with RAX = 0 (LaunchStatus.Virtualized) and
        // every non-volatile register (RBX, RBP, RSI, RDI, R12-R15, XMM6-15) as it was at the call; it
        // never executes hypervisor code (whose pages EPT hides). SDM Vol 3C 26 (VM entry), 31.3 (VMLAUNCH).
        yield return new("vigil_vmx_launch_cpu", StubBinding.None, "", "Virtualizes this CPU in place; the guest resumes at the caller's return address.", e =>
        {
            var a = e.Asm;
            AssemblerRegister64[] saved = [rbp, rbx, rsi, rdi, r12, r13, r14, r15];
            foreach (var r in saved) a.push(r);      // 8 pushes: rsp = entry - 64 (entry rsp is 8 mod 16)
            a.pushfq();                              // rsp = entry - 72: 0 mod 16
            const int Xmm = 48;                      // 32 shadow + index slot + pad
            const int Frame = Xmm + (10 * 16);       // 208: keeps rsp 0 mod 16 for the calls
            const int FlagsAt = Frame;               // pushfq slot
            const int EntryRsp = Frame + 72;         // return address slot
            a.sub(rsp, Frame);
            a.mov(__qword_ptr[rsp + 32], rcx);       // the CPU index, for the failure path
            for (int i = 0; i < 10; i++) a.movdqa(__xmmword_ptr[rsp + Xmm + (16 * i)], new AssemblerRegisterXMM(Register.XMM6 + i));

            // Prepare(index, guest RSP = entry rsp + 8, guest RIP = return address, guest RFLAGS).
            a.lea(rdx, __[rsp + EntryRsp + 8]);
            a.mov(r8, __qword_ptr[rsp + EntryRsp]);
            a.mov(r9, __qword_ptr[rsp + FlagsAt]);
            e.LeaRaxExternal(VmxCallbacks);
            a.call(__qword_ptr[rax + (8 * VmxCallbackPrepare)]);
            Label done = a.CreateLabel();
            a.test(eax, eax);
            a.jnz(done);

            // Restore what the caller expects preserved, without moving RSP (the host no longer needs
            // this frame once the launch succeeds; on failure it is still here).
            for (int i = 0; i < 10; i++) a.movdqa(new AssemblerRegisterXMM(Register.XMM6 + i), __xmmword_ptr[rsp + Xmm + (16 * i)]);
            for (int i = 0; i < saved.Length; i++) a.mov(saved[i], __qword_ptr[rsp + FlagsAt + 8 + (8 * (saved.Length - 1 - i))]);
            a.xor(eax, eax);
            a.vmlaunch();

            // VMLAUNCH failed (SDM Vol 3C 31.3): LaunchFailed(index) reads the VM-instruction error and leaves VMX.
            a.mov(rcx, __qword_ptr[rsp + 32]);
            e.LeaRaxExternal(VmxCallbacks);
            a.call(__qword_ptr[rax + (8 * VmxCallbackLaunchFailed)]);

            a.Label(ref done);
            for (int i = 0; i < 10; i++) a.movdqa(new AssemblerRegisterXMM(Register.XMM6 + i), __xmmword_ptr[rsp + Xmm + (16 * i)]);
            a.add(rsp, Frame);
            a.popfq();
            for (int i = saved.Length - 1; i >= 0; i--) a.pop(saved[i]);
            a.ret();
        });

        // VM-exit entry (VMCS HOST_RIP). The CPU arrives with RSP = HOST_RSP (16-byte aligned; the
        // qword there holds the per-CPU block pointer), interrupts off (RFLAGS cleared on exit, SDM
        // Vol 3C 28.5.3), and every guest GPR but RSP still live. Saves them and XMM0-5 (volatile in
        // the Microsoft x64 ABI the C# handler uses) into a GuestRegisters on the host stack, calls
        // Exit(registers, cpu), restores and resumes. Offsets come from GuestRegisters.
        yield return new("vigil_vmx_exit", StubBinding.None, "", "VM-exit entry: save guest registers, call the C# handler, VMRESUME.", e =>
        {
            var a = e.Asm;
            int size = Marshal.SizeOf<GuestRegisters>();
            int Off(string field) => (int)Marshal.OffsetOf<GuestRegisters>(field);
            (string Field, AssemblerRegister64 Reg)[] gprs =
            [
                (nameof(GuestRegisters.Rax), rax), (nameof(GuestRegisters.Rcx), rcx), (nameof(GuestRegisters.Rdx), rdx),
                (nameof(GuestRegisters.Rbx), rbx), (nameof(GuestRegisters.Rbp), rbp), (nameof(GuestRegisters.Rsi), rsi),
                (nameof(GuestRegisters.Rdi), rdi), (nameof(GuestRegisters.R8), r8), (nameof(GuestRegisters.R9), r9),
                (nameof(GuestRegisters.R10), r10), (nameof(GuestRegisters.R11), r11), (nameof(GuestRegisters.R12), r12),
                (nameof(GuestRegisters.R13), r13), (nameof(GuestRegisters.R14), r14), (nameof(GuestRegisters.R15), r15),
            ];
            int xmm = Off(nameof(GuestRegisters.Xmm));
            const int Shadow = 32;
            a.sub(rsp, size + Shadow);
            foreach (var (field, reg) in gprs) a.mov(__qword_ptr[rsp + Shadow + Off(field)], reg);
            for (int i = 0; i < 6; i++) a.movdqa(__xmmword_ptr[rsp + Shadow + xmm + (16 * i)], new AssemblerRegisterXMM(Register.XMM0 + i));
            a.lea(rcx, __[rsp + Shadow]);
            a.mov(rdx, __qword_ptr[rsp + Shadow + size]);
            e.LeaRaxExternal(VmxCallbacks);
            a.call(__qword_ptr[rax + (8 * VmxCallbackExit)]);
            for (int i = 0; i < 6; i++) a.movdqa(new AssemblerRegisterXMM(Register.XMM0 + i), __xmmword_ptr[rsp + Shadow + xmm + (16 * i)]);
            foreach (var (field, reg) in gprs) a.mov(reg, __qword_ptr[rsp + Shadow + Off(field)]);
            a.vmresume();

            // VMRESUME failed: the handler's state is still on the stack; report and halt (never returns).
            a.lea(rcx, __[rsp + Shadow]);
            a.mov(rdx, __qword_ptr[rsp + Shadow + size]);
            e.LeaRaxExternal(VmxCallbacks);
            a.call(__qword_ptr[rax + (8 * VmxCallbackResumeFailed)]);
            Label halt = a.CreateLabel();
            a.Label(ref halt);
            a.cli();
            a.hlt();
            a.jmp(halt);
        });
    }
}
