/* SPDX-License-Identifier: MIT */
/* Unit tests for src/common/iov.c. */
#include <string.h>

#include "tap.h"
#include "common/iov.h"

int main(void)
{
	char a[5] = "abcde", b[3] = "fgh", c[4] = "ijkl", out[16];
	struct iovec iov[3] = { { a, 5 }, { b, 3 }, { c, 4 } }, dst[3];
	int n;

	is(iov_size(iov, 3), 12, "iov_size sums every entry");
	memset(out, 0, sizeof(out));
	is(iov_to_buf(iov, 3, 4, out, 6), 6, "iov_to_buf copies across entries");
	ok(memcmp(out, "efghij", 6) == 0, "iov_to_buf bytes in order");
	is(iov_to_buf(iov, 3, 10, out, 8), 2, "iov_to_buf stops at the end");
	is(iov_from_buf(iov, 3, 3, "XYZW", 4), 4, "iov_from_buf writes across entries");
	ok(memcmp(a, "abcXY", 5) == 0 && memcmp(b, "ZWh", 3) == 0, "iov_from_buf bytes land");
	is(iov_memset(iov, 3, 7, 0, 2), 2, "iov_memset length");
	ok(b[2] == 0 && c[0] == 0 && c[1] == 'j', "iov_memset range exact");
	n = iov_slice(iov, 3, 2, 7, dst, 3);
	is(n, 3, "iov_slice spans three entries");
	ok(n == 3 && dst[0].iov_base == a + 2 && dst[0].iov_len == 3 && dst[2].iov_len == 1,
	   "iov_slice boundaries");
	is(iov_slice(iov, 3, 0, 12, dst, 2), -1, "iov_slice refuses a too-small destination");
	is(iov_slice(iov, 3, 10, 5, dst, 3), -1, "iov_slice refuses a range past the end");
	return tap_done();
}
