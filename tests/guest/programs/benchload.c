// Guest program: the benchmark's measurements inside the guest (issue 12; tests/guest/scenarios/bench.sh,
// tools/Vigil.Tool/Commands/BenchCommand.cs). Two modes, each printing "VIGIL-BENCH: " lines that the
// bench command parses (KEY=VALUE fields; times in ns of CLOCK_MONOTONIC, cycles from RDTSC):
//   benchload roundtrip N      exit round trips on CPU 0: CPUID (leaf 0), VMCALL/VMMCALL Status (the
//                              per-CPU counters copied out; only under Vigil) and a bare RDTSC pair (the
//                              measurement's own cost). Each: the minimum and the median of N samples.
//                              Status gets a buffer of the size it asks for: a refused call is logged
//                              (the log's UART drain would be measured instead of the round trip).
//   benchload workload SCALE   fork+exec, getppid syscalls, anonymous page faults, tmpfs file I/O,
//                              module load/unload (finit_module/delete_module of /modules/hello.ko)
//                              and a CPU-bound loop, each timed as a whole; SCALE multiplies the counts.
//   benchload tsc              prints the TSC (boot-to-here, counted from the machine's reset).
//   benchload toggle PATH N    N writes of "1" then "0" to a sysctl that flips a static key (kernel text
//                              patching: the guard's allowed guarded-page writes), timed as a whole.
// Under QEMU with -icount shift=0 the TSC counts guest instructions (1 cycle = 1 instruction), so the
// round trips are deterministic instruction counts. Built statically by `vigil guest`.
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define SIGNATURE 0x564947494C000000ULL
#define STATUS 1
#define MAX_SAMPLES 100000

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void pin_cpu0(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("benchload: sched_setaffinity");
        exit(2);
    }
}

static int compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t samples[MAX_SAMPLES];

// Reports the minimum and the median of n samples.
static void report(const char *name, int n)
{
    qsort(samples, (size_t)n, sizeof samples[0], compare);
    printf("VIGIL-BENCH: roundtrip op=%s samples=%d min=%llu median=%llu\n", name, n,
        (unsigned long long)samples[0], (unsigned long long)samples[n / 2]);
}

static int vigil_present(int *amd)
{
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    *amd = b == 0x68747541 || b == 0x6f677948;   // AuthenticAMD, HygonGenuine
    __cpuid(0x40000000, a, b, c, d);
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &c, 4);
    memcpy(vendor + 8, &d, 4);
    vendor[12] = 0;
    return strcmp(vendor, "VigilVigilVi") == 0;
}

static int roundtrip(int n)
{
    if (n < 10 || n > MAX_SAMPLES) {
        fprintf(stderr, "benchload: roundtrip count must be 10..%d\n", MAX_SAMPLES);
        return 2;
    }
    pin_cpu0();
    int amd;
    int vigil = vigil_present(&amd);
    unsigned a, b, c, d;
    unsigned aux;
    for (int i = 0; i < n; i++) {
        uint64_t t0 = __rdtscp(&aux);
        uint64_t t1 = __rdtscp(&aux);
        samples[i] = t1 - t0;
    }
    report("rdtscp-pair", n);
    for (int i = 0; i < n; i++) {
        uint64_t t0 = __rdtscp(&aux);
        __cpuid(0, a, b, c, d);
        uint64_t t1 = __rdtscp(&aux);
        samples[i] = t1 - t0;
    }
    report("cpuid", n);
    if (vigil) {
        uint64_t need = 0;
        {
            uint64_t rax = SIGNATURE | STATUS, rbx = 0, rcx = 0, rdx = 0;
            if (amd)
                __asm__ volatile("vmmcall" : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx) : : "memory");
            else
                __asm__ volatile("vmcall" : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx) : : "memory");
            need = rcx;
        }
        void *buffer = mmap(NULL, (size_t)need + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (need == 0 || need > (1u << 24) || buffer == MAP_FAILED) {
            printf("VIGIL-BENCH: roundtrip op=vmcall skipped=status-size-%llu\n", (unsigned long long)need);
            return 0;
        }
        for (int i = 0; i < n; i++) {
            uint64_t rax = SIGNATURE | STATUS, rbx = (uint64_t)buffer, rcx = need, rdx = 0;
            uint64_t t0 = __rdtscp(&aux);
            if (amd)
                __asm__ volatile("vmmcall" : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx) : : "memory");
            else
                __asm__ volatile("vmcall" : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx) : : "memory");
            uint64_t t1 = __rdtscp(&aux);
            samples[i] = t1 - t0;
            if (rax != 0) {
                printf("VIGIL-BENCH: roundtrip op=vmcall skipped=status-failed-%llu\n", (unsigned long long)rax);
                return 0;
            }
        }
        report("vmcall", n);
    } else {
        printf("VIGIL-BENCH: roundtrip op=vmcall skipped=no-vigil\n");
    }
    return 0;
}

static void timed(const char *name, long count, uint64_t t0, uint64_t c0)
{
    uint64_t c1 = __rdtsc();
    uint64_t t1 = now_ns();
    printf("VIGIL-BENCH: workload op=%s count=%ld ns=%llu cycles=%llu\n", name, count,
        (unsigned long long)(t1 - t0), (unsigned long long)(c1 - c0));
    fflush(stdout);
}

static int fail(const char *what)
{
    printf("VIGIL-BENCH: workload FAILED %s: %s\n", what, strerror(errno));
    return 1;
}

static int workload(long scale)
{
    if (scale < 1 || scale > 1000) {
        fprintf(stderr, "benchload: workload scale must be 1..1000\n");
        return 2;
    }
    uint64_t t0, c0;
    uint64_t total0 = now_ns(), totalc0 = __rdtsc();

    long forks = 20 * scale;
    t0 = now_ns(); c0 = __rdtsc();
    for (long i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0) return fail("fork");
        if (pid == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("exec /bin/true");
    }
    timed("fork-exec", forks, t0, c0);

    long calls = 20000 * scale;
    t0 = now_ns(); c0 = __rdtsc();
    for (long i = 0; i < calls; i++) syscall(SYS_getppid);
    timed("syscall", calls, t0, c0);

    long rounds = 4 * scale, size = 8L << 20, faults = 0;
    t0 = now_ns(); c0 = __rdtsc();
    for (long r = 0; r < rounds; r++) {
        volatile char *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return fail("mmap");
        for (long o = 0; o < size; o += 4096, faults++) p[o] = 1;
        munmap((void *)p, (size_t)size);
    }
    timed("page-fault", faults, t0, c0);

    long files = 100 * scale;
    static char block[16384];
    memset(block, 'v', sizeof block);
    t0 = now_ns(); c0 = __rdtsc();
    for (long i = 0; i < files; i++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/bench-%ld", i % 16);
        int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
        if (fd < 0) return fail("open in /tmp");
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block) return fail("write");
        if (lseek(fd, 0, SEEK_SET) != 0 || read(fd, block, sizeof block) != (ssize_t)sizeof block) return fail("read");
        close(fd);
        if (i % 16 == 15) unlink(path);
    }
    timed("tmpfs-io", files, t0, c0);

    long modules = 2 * scale;
    t0 = now_ns(); c0 = __rdtsc();
    for (long i = 0; i < modules; i++) {
        int fd = open("/modules/hello.ko", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail("open /modules/hello.ko");
        if (syscall(SYS_finit_module, fd, "", 0) != 0) return fail("finit_module hello.ko");
        close(fd);
        if (syscall(SYS_delete_module, "hello", O_NONBLOCK) != 0) return fail("delete_module hello");
    }
    timed("module-load-unload", modules, t0, c0);

    long loops = 20000000L * scale;
    volatile uint64_t x = 1;
    t0 = now_ns(); c0 = __rdtsc();
    for (long i = 0; i < loops; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    timed("cpu-loop", loops, t0, c0);

    timed("total", 1, total0, totalc0);
    return 0;
}

static int toggle(const char *path, long n)
{
    if (n < 1 || n > 100000) {
        fprintf(stderr, "benchload: toggle count must be 1..100000\n");
        return 2;
    }
    pin_cpu0();
    uint64_t t0 = now_ns(), c0 = __rdtsc();
    for (long i = 0; i < 2 * n; i++) {
        int fd = open(path, O_WRONLY);
        if (fd < 0) return fail("open sysctl");
        if (write(fd, i % 2 == 0 ? "1\n" : "0\n", 2) != 2) return fail("write sysctl");
        close(fd);
    }
    timed("static-key-toggle", 2 * n, t0, c0);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "tsc") == 0) {
        printf("%llu\n", (unsigned long long)__rdtsc());
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "roundtrip") == 0) return roundtrip(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "workload") == 0) return workload(atol(argv[2]));
    if (argc == 4 && strcmp(argv[1], "toggle") == 0) return toggle(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: benchload tsc | roundtrip N | workload SCALE | toggle SYSCTL-PATH N\n");
    return 2;
}
