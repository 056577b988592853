/* SPDX-License-Identifier: MIT */
/*
 * fault_fuse.h - a one-file FUSE filesystem served by a thread of the test
 * itself (raw /dev/fuse protocol, no libfuse), whose reads and writes can
 * be made to fail with EIO and healed again: a disk error that comes and
 * goes, for kernels without device-mapper. Root only (mount(2)).
 */
#ifndef VBLK_TESTS_FUNC_FAULT_FUSE_H
#define VBLK_TESTS_FUNC_FAULT_FUSE_H

#include <stdbool.h>
#include <stdint.h>

struct fault_fuse;

/*
 * fault_fuse_mount - mount at @dir (an existing empty directory) a
 * filesystem holding one file, "disk.img", of @size bytes (zeroes, kept in
 * memory). Opened files bypass the page cache (FOPEN_DIRECT_IO), so every
 * read and write reaches the fault switch.
 * Return: 0, or -errno (-ENODEV, -EPERM: FUSE not usable here).
 */
int fault_fuse_mount(const char *dir, uint64_t size, struct fault_fuse **out);
/* Reads, writes and fsyncs fail with EIO from now on (@fail) or not. */
void fault_fuse_set_fail(struct fault_fuse *f, bool fail);
/*
 * While @stall is set, reads are held (the filesystem answers nothing)
 * until it is cleared: a storage request that takes as long as the test
 * wants. fault_fuse_stalled: reads held right now.
 */
void fault_fuse_set_stall(struct fault_fuse *f, bool stall);
unsigned fault_fuse_stalled(const struct fault_fuse *f);
/*
 * While @paused, the filesystem takes no request at all: every request
 * waits in the kernel's queue, where (unlike one the filesystem already
 * took) it can still be interrupted, so a process stuck on it can be
 * killed (but a close, whose FLUSH the kernel cannot give up, waits for
 * the filesystem). Returns once the filesystem takes no more requests.
 * fault_fuse_waiting: requests the kernel has waiting
 * for this filesystem (fusectl), -1 if unknown.
 */
void fault_fuse_set_paused(struct fault_fuse *f, bool paused);
int fault_fuse_waiting(const struct fault_fuse *f);
/* FSYNC requests answered with success so far. */
unsigned long fault_fuse_fsyncs(const struct fault_fuse *f);
/* The file's contents (what writes that reached the filesystem wrote). */
const uint8_t *fault_fuse_data(const struct fault_fuse *f);
/* Requests answered with EIO so far. */
unsigned long fault_fuse_failed(const struct fault_fuse *f);
/* Lazy unmount, stop the thread, free. NULL is a no-op. */
void fault_fuse_destroy(struct fault_fuse *f);

#endif
