/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what every fuzz target shares: a cursor over the fuzzer's
 * bytes (reads past the end give zeroes, so every input is valid), the
 * invariant check that aborts (libFuzzer and the replay program both
 * report an abort as a crash), and quiet logging.
 */
#ifndef VBLK_TESTS_FUZZ_H
#define VBLK_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "qemu_user.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fin_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fin_u16(struct fuzz_in *in)
{
	uint16_t lo = fin_u8(in);

	return (uint16_t)(lo | (uint16_t)fin_u8(in) << 8);
}

static inline uint32_t fin_u32(struct fuzz_in *in)
{
	uint32_t lo = fin_u16(in);

	return lo | (uint32_t)fin_u16(in) << 16;
}

/* Up to @len bytes into @buf; the rest of @buf is zeroed. Returns bytes taken. */
static inline size_t fin_copy(struct fuzz_in *in, void *buf, size_t len)
{
	size_t n = in->n < len ? in->n : len;

	memcpy(buf, in->p, n);
	memset((uint8_t *)buf + n, 0, len - n);
	in->p += n;
	in->n -= n;
	return n;
}

/* An invariant of the code under test failed: report and crash. */
#define FUZZ_CHECK(cond, ...) do { \
		if (!(cond)) { \
			fprintf(stderr, "FUZZ INVARIANT FAILED at %s:%d: %s: ", __FILE__, \
				__LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fprintf(stderr, "\n"); \
			abort(); \
		} \
	} while (0)

/* Set-up of the harness itself failed (not a finding in the code under test). */
#define FUZZ_SETUP(cond, what) do { \
		if (!(cond)) { \
			perror("fuzz harness: " what); \
			abort(); \
		} \
	} while (0)

/*
 * The harness needs something this host lacks (io_uring under qemu-user):
 * say so and exit 77, which meson counts as a skip, not a crash.
 */
#define FUZZ_REQUIRE(cond, what) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz harness: skipped: %s\n", what); \
			exit(77); \
		} \
	} while (0)

/* Only errors are logged while fuzzing; VBLK_FUZZ_LOG=1 shows everything. */
static inline void fuzz_quiet_logs(void)
{
	const char *v = getenv("VBLK_FUZZ_LOG");

	log_max_level = v && *v == '1' ? LOG_DEBUG : LOG_ERR;
}

#endif
