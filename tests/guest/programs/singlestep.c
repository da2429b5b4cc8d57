// Guest program: a debugger single-steps a child over CPUID with ptrace (PTRACE_SINGLESTEP) and checks that
// the trap arrives at the instruction right after CPUID, with DR6.BS behind it (si_code TRAP_TRACE).
// CPUID always exits to the hypervisor, which emulates it and steps RIP over it: unless it also raises the
// single-step #DB that RFLAGS.TF asks for (SDM Vol 3A 18.3.1.4), the child runs one more instruction first.
// A NOP is stepped first as the control (no exit involved). Prints one line per step:
//   singlestep nop: ok | FAILED ...     singlestep cpuid: ok | FAILED ...
// and exits 0 only when both are ok. Built statically by `vigil guest` (tools/Vigil.Tool/Guest/ProgramBuilder.cs).
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

// The code the child is stepped through; its addresses are the same in parent and child (fork).
extern const char nop_site[], after_nop[], cpuid_site[], after_cpuid[];
__asm__(
    ".text\n"
    ".globl nop_site, after_nop, cpuid_site, after_cpuid\n"
    "nop_site: nop\n"
    "after_nop: nop\n"
    "cpuid_site: cpuid\n"
    "after_cpuid: nop\n"
    "  nop\n"
    "  jmp nop_site\n");

static int step(pid_t child, const char *name, const char *site, const char *expected)
{
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, child, 0, &regs) != 0) { perror("PTRACE_GETREGS"); return 1; }
    regs.rip = (uintptr_t)site;
    regs.rax = 0;   // CPUID leaf 0
    regs.rcx = 0;
    if (ptrace(PTRACE_SETREGS, child, 0, &regs) != 0) { perror("PTRACE_SETREGS"); return 1; }
    if (ptrace(PTRACE_SINGLESTEP, child, 0, 0) != 0) { perror("PTRACE_SINGLESTEP"); return 1; }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) { printf("singlestep %s: FAILED: the child did not stop\n", name); return 1; }
    siginfo_t info = {0};
    ptrace(PTRACE_GETSIGINFO, child, 0, &info);
    if (ptrace(PTRACE_GETREGS, child, 0, &regs) != 0) { perror("PTRACE_GETREGS"); return 1; }
    long off = (long)(regs.rip - (uintptr_t)expected);
    if (WSTOPSIG(status) != SIGTRAP || off != 0 || info.si_code != TRAP_TRACE) {
        printf("singlestep %s: FAILED: signal %d si_code %d, trap at %+ld bytes from the next instruction\n", name, WSTOPSIG(status), info.si_code, off);
        return 1;
    }
    printf("singlestep %s: ok (SIGTRAP at the next instruction, si_code TRAP_TRACE)\n", name);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 2; }
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        ((void (*)(void))nop_site)();
        _exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) { printf("singlestep: FAILED: no stop after PTRACE_TRACEME\n"); return 2; }
    int failed = step(child, "nop", nop_site, after_nop);
    failed |= step(child, "cpuid", cpuid_site, after_cpuid);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return failed;
}
