using System.Collections.Generic;
using System.Runtime.InteropServices;
using Iced.Intel;
using Vigil.Hypervisor.Core;
using Vigil.Hypervisor.Svm;
using static Iced.Intel.AssemblerRegisters;

namespace Vigil.Tool.Stubs;

/// <summary>AMD SVM stubs (APM Vol 2 ch. 15): VMRUN/VMLOAD/VMSAVE, the launch and the host exit loop.</summary>
internal static partial class StubCatalog
{
    private static int VmcbOffset(string field) => (int)Marshal.OffsetOf<Vmcb>(field);

    private static int FrameOffset(string field) => (int)Marshal.OffsetOf<SvmHostFrame>(field);

    private static int GuestOffset(string field) => FrameOffset("Guest") + (int)Marshal.OffsetOf<GuestRegisters>(field);

    /// <summary>The guest registers the loop keeps in the frame: all but RAX (in the VMCB) and RSP (in the VMCB).</summary>
    private static IEnumerable<(string Field, AssemblerRegister64 Register)> SvmGuestRegisters() =>
    [
        ("Rcx", rcx), ("Rdx", rdx), ("Rbx", rbx), ("Rbp", rbp), ("Rsi", rsi), ("Rdi", rdi),
        ("R8", r8), ("R9", r9), ("R10", r10), ("R11", r11), ("R12", r12), ("R13", r13), ("R14", r14), ("R15", r15),
    ];

    private static readonly AssemblerRegisterXMM[] s_volatileXmm = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5];

    private static IEnumerable<Stub> SvmStubs()
    {
        yield return new("vigil_svm_vmsave", StubBinding.Hypervisor, "void Vmsave(ulong vmcbPhysical)",
            "vmsave: FS, GS, TR, LDTR (hidden state), KernelGsBase, STAR/LSTAR/CSTAR/SFMASK, SYSENTER_* into the VMCB (APM Vol 2 15.5.2).", e =>
        {
            e.Asm.mov(rax, rcx);
            e.Asm.vmsave();
            e.Asm.ret();
        });
        yield return new("vigil_svm_vmload", StubBinding.Hypervisor, "void Vmload(ulong vmcbPhysical)",
            "vmload: the counterpart of vmsave.", e =>
        {
            e.Asm.mov(rax, rcx);
            e.Asm.vmload();
            e.Asm.ret();
        });

        // The host runs with GIF clear after every #VMEXIT (APM Vol 2 15.17): NMIs, SMIs and machine checks
        // are held until the next VMRUN. Around a wait or a long write the host sets GIF for a while, so
        // they are taken (an NMI by the host IDT: hv/Host/HostExceptions), then clears it again before the
        // pre-entry work (interrupts stay off: RFLAGS.IF is clear in the host).
        yield return new("vigil_svm_stgi", StubBinding.Hypervisor, "void Stgi()", "stgi: GIF = 1 (APM Vol 2 15.17)", e =>
        {
            e.Asm.stgi();
            e.Asm.ret();
        });
        yield return new("vigil_svm_clgi", StubBinding.Hypervisor, "void Clgi()", "clgi: GIF = 0 (APM Vol 2 15.17)", e =>
        {
            e.Asm.clgi();
            e.Asm.ret();
        });

        // The launch, as LaunchParameters.LaunchCpu (called by vigil.efi on each CPU):
        //   1. save the callee-saved registers and call vigil_svm_prepare_cpu(index), which captures the
        //      firmware's state into the VMCB, enters the host environment and returns the host frame
        //      (an address) or a LaunchStatus (a small number) on failure;
        //   2. on success, make the guest resume exactly where LaunchCpu returns to vigil.efi: RIP = the
        //      return address, RSP above it, RAX = LaunchStatus.Virtualized, callee-saved registers as
        //      they were (XMM6-15 are untouched by everything in between). No guest instruction ever runs
        //      in the hypervisor's image, so its pages can be hidden from the guest from the first VMRUN;
        //   3. switch to the host stack and run the loop: VMLOAD/VMRUN/VMSAVE the guest, VMLOAD the host's
        //      FS/GS/TR/LDTR, call vigil_svm_exit(frame, cpu), repeat (APM Vol 2 15.5).
        yield return new("vigil_svm_launch_cpu", StubBinding.Hypervisor, "ulong LaunchCpuEntry()",
            "Returns the address of the SVM launch entry point (LaunchParameters.LaunchCpu).", e =>
        {
            var a = e.Asm;
            Label entry = a.CreateLabel();
            Label loop = a.CreateLabel();
            Label ok = a.CreateLabel();
            a.lea(rax, __[entry]);
            a.ret();
            a.int3();
            a.Label(ref entry);
            AssemblerRegister64[] saved = [rbx, rbp, rdi, rsi, r12, r13, r14, r15];
            foreach (var r in saved) a.push(r);
            a.sub(rsp, 40);                                   // shadow space; rsp now 16-byte aligned
            e.CallExternal("vigil_svm_prepare_cpu");          // ecx = index still
            a.add(rsp, 40);
            a.cmp(rax, 0x1000);
            a.jae(ok);
            for (int i = saved.Length - 1; i >= 0; i--) a.pop(saved[i]);
            a.ret();                                          // eax = the failure's LaunchStatus

            a.Label(ref ok);                                  // rax = SvmHostFrame*
            for (int i = saved.Length - 1; i >= 0; i--) a.pop(saved[i]);   // rsp = entry rsp: [rsp] = return address
            foreach (var (field, register) in SvmGuestRegisters()) a.mov(__qword_ptr[rax + GuestOffset(field)], register);
            a.mov(rdx, __qword_ptr[rax + FrameOffset("GuestVmcbPa")]);   // identity-mapped: VA = PA
            a.mov(rcx, __qword_ptr[rsp]);
            a.mov(__qword_ptr[rdx + VmcbOffset("Rip")], rcx);
            a.lea(rcx, __[rsp + 8]);
            a.mov(__qword_ptr[rdx + VmcbOffset("Rsp")], rcx);
            a.mov(__qword_ptr[rdx + VmcbOffset("Rax")], 0);   // LaunchStatus.Virtualized
            a.mov(rsp, rax);

            a.Label(ref loop);                                // rsp = frame, 16-byte aligned
            for (int i = 0; i < s_volatileXmm.Length; i++) a.movdqu(s_volatileXmm[i], __xmmword_ptr[rsp + GuestOffset("Xmm") + (16 * i)]);
            foreach (var (field, register) in SvmGuestRegisters()) a.mov(register, __qword_ptr[rsp + GuestOffset(field)]);
            a.mov(rax, __qword_ptr[rsp + FrameOffset("GuestVmcbPa")]);
            a.vmload();
            a.vmrun();
            a.vmsave();
            foreach (var (field, register) in SvmGuestRegisters()) a.mov(__qword_ptr[rsp + GuestOffset(field)], register);
            for (int i = 0; i < s_volatileXmm.Length; i++) a.movdqu(__xmmword_ptr[rsp + GuestOffset("Xmm") + (16 * i)], s_volatileXmm[i]);
            a.mov(rax, __qword_ptr[rsp + FrameOffset("HostVmcbPa")]);
            a.vmload();
            a.mov(rcx, rsp);
            a.mov(rdx, __qword_ptr[rsp + FrameOffset("Cpu")]);
            a.sub(rsp, 32);
            e.CallExternal("vigil_svm_exit");
            a.add(rsp, 32);
            a.jmp(loop);
        });

        // A launch whose first VMRUN failed: continue as the firmware, unvirtualized. The caller has put
        // back the firmware's descriptor tables, segments and CR3; this restores the callee-saved registers
        // from the frame and returns LaunchStatus.LaunchFailed to vigil.efi.
        yield return new("vigil_svm_abandon", StubBinding.Hypervisor, "void Abandon(void* frame, uint status)",
            "Leaves a failed launch: restores the firmware context saved at launch and returns status to vigil.efi.", e =>
        {
            var a = e.Asm;
            a.mov(r8, rcx);
            a.mov(eax, edx);
            a.mov(rdx, __qword_ptr[r8 + FrameOffset("GuestVmcbPa")]);
            foreach (var (field, register) in SvmGuestRegisters())
            {
                if (register == rdx || register == r8) continue;
                a.mov(register, __qword_ptr[r8 + GuestOffset(field)]);
            }
            a.mov(rsp, __qword_ptr[rdx + VmcbOffset("Rsp")]);
            a.jmp(__qword_ptr[rdx + VmcbOffset("Rip")]);
        });
    }
}
