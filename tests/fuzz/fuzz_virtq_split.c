/* SPDX-License-Identifier: MIT */
/*
 * fuzz_virtq_split.c - the device side of the split ring against a guest
 * memory image the fuzzer writes (descriptor table, avail and used rings,
 * buffers, indirect tables): every pop must be memory-safe, every iovec
 * inside guest memory, and the queue must either serve exactly what the
 * driver published or break. Input layout: see fuzz_virtq.h.
 */
#include "fuzz_virtq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet_logs();
	fq_run_image(data, size, false);
	return 0;
}
