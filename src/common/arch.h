/* SPDX-License-Identifier: MIT */
/*
 * arch.h - the few CPU-specific fast paths, one definition per
 * architecture and a portable fallback: the spin-wait hint and a cheap
 * cycle counter. Everything else in vblk is plain C11 + GNU builtins.
 * No virtio knowledge lives here.
 */
#ifndef VBLK_COMMON_ARCH_H
#define VBLK_COMMON_ARCH_H

#include <stdint.h>
#include <time.h>

/*
 * cpu_relax - tell the CPU this is a busy-wait loop: x86 PAUSE frees the
 * core for its sibling hyperthread and avoids the memory-order flush when
 * the polled line changes; arm64 YIELD hints the same (it is what Linux's
 * arm64 cpu_relax() uses; Rust's spin_loop() uses ISB, a longer stall).
 * Elsewhere a compiler barrier, so the loop still re-reads memory.
 */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * arch_cycles - a monotonic counter that is cheap to read, for timing
 * short stretches of code (tools/vblkperf). The unit depends on the CPU:
 * TSC ticks on x86, the generic timer (CNTVCT_EL0) on arm64, nanoseconds
 * from CLOCK_MONOTONIC elsewhere. Calibrate against clock_gettime over the
 * same interval before turning it into time.
 */
static inline uint64_t arch_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	uint64_t v;

	__asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

#endif
