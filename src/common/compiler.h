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

/*
 * Memory shared with another agent (a guest driver, a device, a frontend
 * process): one idiom for all of it.
 *
 * Memory model: C11's, through GCC's __atomic builtins applied to plain
 * (non-_Atomic) objects, which GCC and Clang document as the C11
 * operations of the same order. The ring fields are plain memory laid out
 * by the virtio spec, so they cannot be C11 atomic objects; every access
 * to one is an atomic access of its own size (aligned <= 8 bytes, never
 * torn), and:
 *
 * READ_ONCE / WRITE_ONCE   relaxed: one access, no ordering. For fields
 *                          whose order is given by an acquire or release
 *                          access next to them (a descriptor's body, a used
 *                          entry's id and len).
 * load_acquire(p)          reads *p; every later load and store stays after
 *                          it. Taking something the other side handed
 *                          over: a split ring's avail->idx (device) or
 *                          used->idx (driver), a packed head's flags.
 * store_release(p, v)      writes *p; every earlier load and store stays
 *                          before it. Handing something over: split
 *                          used->idx / avail->idx, packed flags.
 * smp_mb()                 full (seq_cst) fence: a store followed by a load
 *                          of a different location, the one ordering
 *                          acquire/release cannot give. Notification
 *                          suppression needs it on both sides: store our
 *                          index or event, then read the other side's event
 *                          or index (otherwise both can miss each other).
 * smp_rmb() / smp_wmb()    acquire / release fences, for orders that are not
 *                          one hand-over word: the inflight area, whose
 *                          stores must reach memory in program order so a
 *                          successor process can tell after a crash how far
 *                          a pop or push got.
 *
 * What each costs: on x86-64 (TSO) an acquire load or release store is a
 * plain mov and the acquire/release fences are compiler barriers only; the
 * seq_cst fence is a locked instruction. On arm64 load_acquire is ldar,
 * store_release stlr, smp_rmb dmb ishld, smp_wmb and smp_mb dmb ish.
 *
 * Byte order is separate: ring fields are little-endian (virtio 1.x) and
 * are converted at every access (virtq's accessors, virtq_internal.h); the
 * vhost-user inflight area is in the host's order.
 */
#define READ_ONCE(x)     (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

#define load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#define smp_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

#define UNUSED __attribute__((unused))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))

#endif
