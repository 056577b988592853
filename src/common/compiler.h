/* SPDX-License-Identifier: MIT */
/*
 * compiler.h - small compiler helpers and memory barriers shared by every
 * module. No virtio knowledge lives here.
 */
#ifndef VBLK_COMMON_COMPILER_H
#define VBLK_COMMON_COMPILER_H

#include <stddef.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Shared-memory accesses: the other side (the guest) may change the value
 * at any time, so read it exactly once. */
#define READ_ONCE(x)     (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/*
 * Barriers for memory shared with another agent (guest driver or device).
 * smp_rmb: order earlier loads before later loads.
 * smp_wmb: order earlier stores before later stores.
 * smp_mb:  full barrier, needed between a store and a later load (event
 *          index checks).
 *
 * Memory model: these follow the Linux kernel's smp_*() semantics (what
 * the virtio spec and the guest's virtio_ring.c assume), not C11's. The
 * other side is another process or a guest, so the ring fields are plain
 * memory read and written with READ_ONCE/WRITE_ONCE (volatile: one access
 * each, never torn for aligned <= 8-byte fields), not C11 atomic objects.
 * The helpers are C11 fences, relied on for what GCC and Clang emit for
 * them, which is at least the hardware barrier: x86-64 (TSO) needs none for
 * rmb/wmb, so acquire/release fences are compiler barriers only, and the
 * seq_cst fence is a locked instruction; arm64 gets dmb ishld (acquire),
 * dmb ish (release, and seq_cst). An acquire fence also orders earlier
 * loads before later stores, and a release fence earlier loads before
 * later stores: each is stronger than the smp_*() it stands for, never
 * weaker. Every use says what it pairs with.
 */
#define smp_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

#define UNUSED __attribute__((unused))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))

#endif
