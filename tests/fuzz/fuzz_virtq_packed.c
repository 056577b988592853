/* SPDX-License-Identifier: MIT */
/*
 * fuzz_virtq_packed.c - the device side of the packed ring against a guest
 * memory image the fuzzer writes (descriptor ring, event structures,
 * buffers, indirect tables): every pop must be memory-safe, every iovec
 * inside guest memory, pushes and event suppression must survive any
 * ring contents. Input layout: see fuzz_virtq.h.
 */
#include "fuzz_virtq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet_logs();
	fq_run_image(data, size, true);
	return 0;
}
