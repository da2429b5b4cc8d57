// Guest program: is AVX usable the way user space decides it is? glibc and every other runtime check
// CPUID.1:ECX.OSXSAVE (the OS enabled XSAVE: CR4.OSXSAVE of the CPU executing CPUID, which the hypervisor
// must report for the guest), CPUID.1:ECX.AVX, and XGETBV(0) bits 1-2 (SSE and AVX state enabled), then run
// AVX code (SDM Vol 1 14.3). This program does exactly that and checks one 256-bit VADDPS result.
// Prints one line: "avx: ok ..." | "avx: FAILED ..." | "avx: unavailable: REASON" (the kernel runs without
// XSAVE: no AVX to test; the emulator test decides whether that is acceptable) and exits 0 / 1 / 3.
// Compiled without -mavx: no AVX instruction runs before the checks. Built statically by `vigil guest`.
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) { printf("avx: FAILED: no CPUID leaf 1\n"); return 1; }
    int xsave = (c >> 26) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!avx) { printf("avx: unavailable: CPUID.1:ECX.AVX clear (xsave=%d osxsave=%d)\n", xsave, osxsave); return 3; }
    if (!osxsave) { printf("avx: unavailable: CPUID.1:ECX.OSXSAVE clear: XSAVE is not enabled as CPUID reports it (xsave=%d avx=%d)\n", xsave, avx); return 3; }
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
    if ((xcr0 & 6) != 6) { printf("avx: FAILED: OSXSAVE set but XGETBV(0) = 0x%llx lacks SSE|AVX state\n", (unsigned long long)xcr0); return 1; }
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8] = {0.5f, 0.25f, 10, 20, 100, 200, 1000, 2000}, z[8];
    __asm__ volatile(
        "vmovups (%0), %%ymm0\n"
        "vmovups (%1), %%ymm1\n"
        "vaddps %%ymm1, %%ymm0, %%ymm2\n"
        "vmovups %%ymm2, (%2)\n"
        "vzeroupper\n"
        : : "r"(x), "r"(y), "r"(z) : "xmm0", "xmm1", "xmm2", "memory");
    for (int i = 0; i < 8; i++) {
        if (z[i] != x[i] + y[i]) { printf("avx: FAILED: vaddps ymm lane %d = %g, expected %g\n", i, z[i], x[i] + y[i]); return 1; }
    }
    printf("avx: ok (OSXSAVE set, XGETBV(0) = 0x%llx, vaddps ymm correct in all 8 lanes)\n", (unsigned long long)xcr0);
    return 0;
}
