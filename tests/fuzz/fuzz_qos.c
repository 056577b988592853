/* SPDX-License-Identifier: MIT */
/*
 * fuzz_qos.c - the QoS keys as a client sends them (export-set-qos,
 * vblkctl qos, --export) and the token buckets they configure, driven
 * through charges, clock steps and runtime changes at the extremes the
 * parser lets through (rates up to 10^15/s, bursts up to 60 s).
 *
 * Input: "key=value" lines, then a NUL, then 8-byte steps:
 *   u8 op, u8 dir, u16 unused, u32 arg
 *   op % 4: 0 charge a request of arg bytes; 1 the clock moves arg ns;
 *           2 the clock moves arg ms; 3 apply the limits again (runtime set)
 * What must hold: no undefined behaviour; a charge refused with "wait W"
 * succeeds when retried W ns later (the same request, nothing else in
 * between); a wait is never longer than the biggest request can need.
 */
#include "fuzz.h"
#include "daemon/options.h"
#include "daemon/qos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qos_limits l = { 0 };
	const char *group = NULL;
	struct qos_state s;
	struct fuzz_in in;
	uint64_t now = 1000000000ull;
	char *text, *save = NULL;
	size_t tlen = strnlen((const char *)data, size);

	text = malloc(tlen + 1);
	if (!text)
		return 0;
	memcpy(text, data, tlen);
	text[tlen] = '\0';
	opt_capture((char[128]){ 0 }, 128);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (eq)
			*eq++ = '\0';
		if (qos_opt_key(line))
			(void)qos_opt(&l, &group, line, eq);
	}
	opt_capture(NULL, 0);
	for (int k = 0; k < QOS_NKINDS; k++)
		FUZZ_CHECK(l.rate[k] <= QOS_MAX_RATE, "a rate past the maximum was accepted");
	FUZZ_CHECK(l.burst_ms <= QOS_MAX_BURST_MS, "a burst past the maximum was accepted");
	qos_state_init(&s, &l, now);
	in.p = data + (tlen < size ? tlen + 1 : size);
	in.n = tlen < size ? size - tlen - 1 : 0;
	while (in.n >= 8) {
		uint8_t op = fin_u8(&in), dir = fin_u8(&in);
		uint32_t arg;
		uint64_t w;

		(void)fin_u16(&in);
		arg = (uint32_t)fin_u16(&in) | (uint32_t)fin_u16(&in) << 16;
		switch (op % 4) {
		case 0:
			w = qos_state_take(&s, dir % 3, arg, now);
			if (!w)
				break;
			/* The slowest bucket (1/s) refilling a 2^32-byte debt:
			 * never more than that. */
			FUZZ_CHECK(w <= (1ull << 32) * 1000000000ull + 1000000000ull,
				   "an impossible wait");
			now += w;
			FUZZ_CHECK(qos_state_take(&s, dir % 3, arg, now) == 0,
				   "refused again after waiting as told");
			break;
		case 1:
			now += arg;
			break;
		case 2:
			now += (uint64_t)arg * 1000000;
			break;
		case 3:
			qos_state_set(&s, &l, now);
			break;
		}
	}
	free(text);
	return 0;
}
