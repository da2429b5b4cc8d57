// Guest program: forged hypercalls from ring 3 (the kernel guard's attack technique n, issue 10 item 7).
// A process tries to change or read the guard the way only vigild may: Protect, Lock and ReadEvents
// (hv/Abi/Hypercall.cs: RAX = "VIGIL" signature | function, Protect = 2, Lock = 3, ReadEvents = 4;
// RBX = buffer, RCX = size, RDX = the secret the first Protect handed out) without the secret, with a
// wrong one, with the secret stolen from /run/vigild.secret after Lock, with bad pointers (null,
// unmapped, read-only, non-canonical, kernel addresses), huge sizes, unknown function numbers, without
// the signature, and as an unprivileged user. VMMCALL on AMD, VMCALL on Intel (CPUID vendor).
// A call that faults (SIGILL/SIGSEGV: the hypervisor refused with an exception) counts as refused.
// Prints one line per call ("forge: call=... -> STATUS") and then exactly one
//   VIGIL-ATTACK: technique=n landed=yes|no ring3 ...
// landed=yes when any call other than Status succeeded. A Status call first shows the channel works
// (not an attack: Status answers everyone). Exit status 0 when nothing landed, 1 when something did,
// 3 without Vigil. Built statically by `vigil guest`.
#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIGNATURE 0x564947494C000000ULL
#define STATUS 1
#define PROTECT 2
#define LOCK 3
#define READ_EVENTS 4
#define WRONG_SECRET 0x5445524345534F4EULL   // "NOSECRET"
#define KERNEL_TEXT 0xFFFFFFFF81000000ULL
#define DIRECT_MAP 0xFFFF888000000000ULL

static int amd;
static sigjmp_buf jump;
static volatile sig_atomic_t fault_signal;
static unsigned calls, succeeded, refused, faulted;

static void on_fault(int sig)
{
    fault_signal = sig;
    siglongjmp(jump, 1);
}

static const char *status_name(uint64_t s)
{
    static const char *const names[] = {"Success", "UnknownFunction", "BadBufferSize", "BadAddress", "NotPermitted"};
    return s < sizeof names / sizeof names[0] ? names[s] : "other";
}

// r = {RAX, RBX, RCX, RDX} in and out; returns 0, or the signal the call raised.
static int hypercall(uint64_t r[4])
{
    fault_signal = 0;
    if (sigsetjmp(jump, 1)) return fault_signal;
    uint64_t a = r[0], b = r[1], c = r[2], d = r[3];
    if (amd)
        __asm__ volatile("vmmcall" : "+a"(a), "+b"(b), "+c"(c), "+d"(d) : : "memory");
    else
        __asm__ volatile("vmcall" : "+a"(a), "+b"(b), "+c"(c), "+d"(d) : : "memory");
    r[0] = a; r[1] = b; r[2] = c; r[3] = d;
    return 0;
}

// One forged call: counted, printed.
static void forge(const char *who, const char *what, uint64_t rax, uint64_t rbx, uint64_t rcx, uint64_t rdx)
{
    uint64_t r[4] = {rax, rbx, rcx, rdx};
    int sig = hypercall(r);
    calls++;
    if (sig) faulted++;
    else if (r[0] == 0) succeeded++;
    else refused++;
    char result[64];
    if (sig) snprintf(result, sizeof result, "fault (signal %d)", sig);
    else snprintf(result, sizeof result, "%s (0x%llx)%s", status_name(r[0]), (unsigned long long)r[0], r[0] == 0 ? " LANDED" : "");
    printf("forge: %s call=\"%s\" rax=0x%llx rbx=0x%llx rcx=0x%llx rdx=0x%llx -> %s\n", who, what,
        (unsigned long long)rax, (unsigned long long)rbx, (unsigned long long)rcx, (unsigned long long)rdx, result);
    fflush(stdout);
}

// The secret vigild stored (if this process can read it): 8 raw bytes, or a number in text (hex with 0x, or 16 hex digits, or decimal).
static int stolen_secret(uint64_t *secret)
{
    FILE *f = fopen("/run/vigild.secret", "rb");
    if (!f) return 0;
    unsigned char raw[64];
    size_t n = fread(raw, 1, sizeof raw - 1, f);
    fclose(f);
    if (n == 8) {
        int text = 1;
        for (size_t i = 0; i < n; i++) if (raw[i] < 0x20 || raw[i] > 0x7e) text = 0;
        if (!text) { memcpy(secret, raw, 8); return 1; }
    }
    raw[n] = 0;
    char *s = (char *)raw;
    while (*s == ' ' || *s == '\n') s++;
    size_t len = strspn(s, "0123456789abcdefABCDEF");
    int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : (len == 16 ? 16 : 10);
    char *end;
    *secret = strtoull(s, &end, base);
    return end != s;
}

int main(void)
{
    unsigned a, b, c, d;
    __cpuid(0x40000000, a, b, c, d);
    if (b != 0x69676956 || c != 0x6769566C || d != 0x69566C69) {
        printf("VIGIL-ATTACK: technique=n landed=no setup-failed: no Vigil hypervisor (CPUID 0x40000000)\n");
        return 3;
    }
    __cpuid(0, a, b, c, d);
    amd = b == 0x68747541 || b == 0x6f677948;   // AuthenticAMD, HygonGenuine
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction action = {0};
    action.sa_handler = on_fault;
    sigaction(SIGILL, &action, NULL);
    sigaction(SIGSEGV, &action, NULL);
    sigaction(SIGBUS, &action, NULL);

    uint8_t *buffer = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint8_t *readonly = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buffer == MAP_FAILED || readonly == MAP_FAILED) {
        printf("VIGIL-ATTACK: technique=n landed=no setup-failed: mmap\n");
        return 1;
    }
    uint64_t user = (uint64_t)buffer, ro = (uint64_t)readonly, page = 4096;

    // Control, not an attack: Status answers everyone (size 0: BadBufferSize and the size it needs).
    uint64_t r[4] = {SIGNATURE | STATUS, user, 0, 0};
    int sig = hypercall(r);
    printf("forge: control call=\"status, size 0\" -> %s (needs %llu bytes)\n", sig ? "fault" : status_name(r[0]), (unsigned long long)r[2]);

    const char *who = "root";
    forge(who, "protect without secret", SIGNATURE | PROTECT, 0, 0, 0);
    forge(who, "protect with a wrong secret", SIGNATURE | PROTECT, user, page, WRONG_SECRET);
    forge(who, "protect wrong secret, huge size", SIGNATURE | PROTECT, user, ~0ULL, WRONG_SECRET);
    forge(who, "protect wrong secret, kernel text as buffer", SIGNATURE | PROTECT, KERNEL_TEXT, page, WRONG_SECRET);
    forge(who, "lock without secret", SIGNATURE | LOCK, 0, 0, 0);
    forge(who, "lock with a wrong secret", SIGNATURE | LOCK, 0, 0, WRONG_SECRET);
    forge(who, "read-events without secret", SIGNATURE | READ_EVENTS, user, page, 0);
    forge(who, "read-events wrong secret", SIGNATURE | READ_EVENTS, user, page, WRONG_SECRET);
    forge(who, "read-events null buffer", SIGNATURE | READ_EVENTS, 0, page, WRONG_SECRET);
    forge(who, "read-events unmapped buffer", SIGNATURE | READ_EVENTS, 0x1000, page, WRONG_SECRET);
    forge(who, "read-events read-only buffer", SIGNATURE | READ_EVENTS, ro, page, WRONG_SECRET);
    forge(who, "read-events huge size", SIGNATURE | READ_EVENTS, user, ~0ULL, WRONG_SECRET);
    forge(who, "read-events non-canonical buffer", SIGNATURE | READ_EVENTS, 0xDEAD000000000000ULL, page, WRONG_SECRET);
    forge(who, "read-events into the direct map", SIGNATURE | READ_EVENTS, DIRECT_MAP, page, WRONG_SECRET);
    forge(who, "read-events into kernel text", SIGNATURE | READ_EVENTS, KERNEL_TEXT, page, WRONG_SECRET);
    forge(who, "unknown function 0", SIGNATURE | 0, user, page, WRONG_SECRET);
    forge(who, "unknown function 5", SIGNATURE | 5, user, page, WRONG_SECRET);
    forge(who, "unknown function 0x7fff", SIGNATURE | 0x7FFF, user, page, WRONG_SECRET);
    forge(who, "unknown function 0xffff", SIGNATURE | 0xFFFF, user, page, WRONG_SECRET);
    forge(who, "protect without the signature", PROTECT, 0, 0, 0);

    // After Lock even the real secret may not change anything: Protect and Lock answer NotPermitted.
    uint64_t secret;
    if (stolen_secret(&secret)) {
        forge(who, "protect with the secret stolen from /run/vigild.secret", SIGNATURE | PROTECT, user, page, secret);
        forge(who, "lock again with the stolen secret", SIGNATURE | LOCK, 0, 0, secret);
    } else {
        printf("forge: no /run/vigild.secret to steal (vigild protect did not run or failed)\n");
    }

    // An unprivileged process (uid 65534), in a child: it counts its own calls and reports how many landed.
    fflush(stdout);
    int pipefd[2];
    if (pipe(pipefd) == 0) {
        pid_t child = fork();
        if (child == 0) {
            close(pipefd[0]);
            unsigned before = succeeded;
            calls = 0;
            if (setgid(65534) != 0 || setuid(65534) != 0) printf("forge: setuid 65534 failed; the calls run as root\n");
            const char *nobody = "uid 65534";
            forge(nobody, "protect without secret", SIGNATURE | PROTECT, 0, 0, 0);
            forge(nobody, "lock without secret", SIGNATURE | LOCK, 0, 0, 0);
            forge(nobody, "read-events without secret", SIGNATURE | READ_EVENTS, user, page, 0);
            unsigned counts[2] = {calls, succeeded - before};
            if (write(pipefd[1], counts, sizeof counts) != sizeof counts) _exit(1);
            _exit(0);
        }
        close(pipefd[1]);
        unsigned counts[2] = {0, 0};
        if (child > 0 && read(pipefd[0], counts, sizeof counts) == sizeof counts) {
            calls += counts[0];
            succeeded += counts[1];
            refused += counts[0] - counts[1];
        }
        close(pipefd[0]);
        if (child > 0) waitpid(child, NULL, 0);
    }

    printf("VIGIL-ATTACK: technique=n landed=%s ring3 %s: %u calls: %u succeeded, %u refused or faulted\n",
        succeeded ? "yes" : "no", amd ? "vmmcall" : "vmcall", calls, succeeded, calls - succeeded);
    return succeeded ? 1 : 0;
}
