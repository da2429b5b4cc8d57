// Guest program: an eBPF program the way user space attaches one, for the kernel guard's benign suite
// (issue 10 item 8). bpf(BPF_PROG_LOAD) of two socket filters (BPF_PROG_TYPE_SOCKET_FILTER: the kernel
// verifies them and, with the JIT on, writes their machine code into fresh executable memory in the
// module area), SO_ATTACH_BPF on the receiving end of an AF_UNIX datagram socket pair, and checks that
// they filter: one truncates every datagram to 4 bytes, the other drops it; detached, datagrams pass
// whole again. Prints exactly one line
//   VIGIL-BENIGN: name=bpf ok=yes|no <details>
// and exits 0 / 1. Built statically by `vigil guest`.
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif
#ifndef SO_DETACH_BPF
#define SO_DETACH_BPF 27
#endif

static char log_buffer[4096];

static long bpf(int command, union bpf_attr *attr)
{
    return syscall(SYS_bpf, command, attr, sizeof *attr);
}

// A socket filter: r0 = keep; exit (keep = bytes of the packet to keep, 0 = drop).
static int load_filter(int32_t keep, char *why, size_t why_size)
{
    struct bpf_insn program[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = keep},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.insn_cnt = sizeof program / sizeof program[0];
    attr.license = (uint64_t)(uintptr_t)"GPL";
    attr.log_buf = (uint64_t)(uintptr_t)log_buffer;
    attr.log_size = sizeof log_buffer;
    attr.log_level = 1;
    int fd = (int)bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0) snprintf(why, why_size, "BPF_PROG_LOAD: %s; verifier: %.200s", strerror(errno), log_buffer);
    return fd;
}

static uint32_t jited_bytes(int fd)
{
    struct bpf_prog_info info;
    memset(&info, 0, sizeof info);
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof info;
    attr.info.info = (uint64_t)(uintptr_t)&info;
    return bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) == 0 ? info.jited_prog_len : 0;
}

// Sends the message on s[0] and returns what s[1] receives (-1: nothing arrived).
static long round_trip(int s[2], const char *message)
{
    char received[256];
    if (send(s[0], message, strlen(message), 0) < 0) return -2;
    long n = recv(s[1], received, sizeof received, MSG_DONTWAIT);
    return n < 0 ? -1 : n;
}

int main(void)
{
    const char *message = "benign datagram for the guard";
    char why[512] = "";
    int jit = -1;
    FILE *f = fopen("/proc/sys/net/core/bpf_jit_enable", "r");
    if (f) {
        if (fscanf(f, "%d", &jit) != 1) jit = -1;
        fclose(f);
    }
    int truncate = load_filter(4, why, sizeof why);
    int drop = truncate < 0 ? -1 : load_filter(0, why, sizeof why);
    if (truncate < 0 || drop < 0) {
        printf("VIGIL-BENIGN: name=bpf ok=no %s (bpf_jit_enable=%d)\n", why, jit);
        return 1;
    }
    int s[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, s) != 0) {
        printf("VIGIL-BENIGN: name=bpf ok=no socketpair: %s\n", strerror(errno));
        return 1;
    }
    long plain = round_trip(s, message);
    long truncated = -3, dropped = -3, detached = -3;
    if (setsockopt(s[1], SOL_SOCKET, SO_ATTACH_BPF, &truncate, sizeof truncate) == 0) truncated = round_trip(s, message);
    else snprintf(why, sizeof why, "SO_ATTACH_BPF: %s", strerror(errno));
    if (setsockopt(s[1], SOL_SOCKET, SO_ATTACH_BPF, &drop, sizeof drop) == 0) dropped = round_trip(s, message);
    else snprintf(why, sizeof why, "SO_ATTACH_BPF: %s", strerror(errno));
    int zero = 0;
    if (setsockopt(s[1], SOL_SOCKET, SO_DETACH_BPF, &zero, sizeof zero) == 0) detached = round_trip(s, message);
    uint32_t jited = jited_bytes(truncate);
    long full = (long)strlen(message);
    int ok = plain == full && truncated == 4 && dropped == -1 && detached == full && (jit == 0 || jited > 0);
    printf("VIGIL-BENIGN: name=bpf ok=%s socket filters on an AF_UNIX pair: unfiltered %ld bytes, truncate-to-4 %ld, drop %s, detached %ld; bpf_jit_enable=%d, jited %u bytes%s%s\n",
        ok ? "yes" : "no", plain, truncated, dropped == -1 ? "dropped" : "NOT dropped", detached, jit, jited,
        why[0] ? "; " : "", why);
    return ok ? 0 : 1;
}
