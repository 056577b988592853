/* SPDX-License-Identifier: MIT */
/*
 * options.c - an export's options from KEY=VALUE pairs (see options.h):
 * the same keys on the command line and in the control socket's
 * export-add. Knows nothing of how exports are served.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/options.h"

static char *capture_buf;
static size_t capture_len;

void opt_capture(char *buf, size_t n)
{
	capture_buf = buf;
	capture_len = n;
	if (buf && n)
		buf[0] = '\0';
}

int opt_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (capture_buf) {
		vsnprintf(capture_buf, capture_len, fmt, ap);
		va_end(ap);
		return -EINVAL;
	}
	fputs("vblkd: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'vblkd --help' for more information.\n", stderr);
	return -EINVAL;
}

/* Whole-string unsigned parse, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int opt_parse_uint(const char *name, const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, &v) || v < min || v > max)
		return opt_fail("invalid %s '%s': expected a whole number from %u to %u", name,
			    s ? s : "", min, max);
	*out = (unsigned)v;
	return 0;
}

/* The multiplier of a K/M/G/T suffix (powers of 1024); 0: not one. */
static uint64_t suffix_mult(char c)
{
	switch (c) {
	case 'k': case 'K': return 1ULL << 10;
	case 'm': case 'M': return 1ULL << 20;
	case 'g': case 'G': return 1ULL << 30;
	case 't': case 'T': return 1ULL << 40;
	default: return 0;
	}
}

/* "64M", "1G", "512" (bytes); must be a non-zero multiple of 512. */
int opt_parse_size(const char *name, const char *s, uint64_t *out)
{
	char buf[64], *end;
	uint64_t v, mult = 1;
	size_t n;

	if (!s || !*s || strlen(s) >= sizeof(buf))
		return opt_fail("invalid %s '%s': expected a size like 512M or 2G", name, s ? s : "");
	strcpy(buf, s);
	n = strlen(buf);
	end = buf + n - 1;
	if (suffix_mult(*end)) {
		mult = suffix_mult(*end);
		*end = '\0';
	}
	if (parse_u64(buf, &v) || v == 0 || v > UINT64_MAX / mult)
		return opt_fail("invalid %s '%s': expected a size like 512M or 2G", name, s);
	v *= mult;
	if (v % 512)
		return opt_fail("invalid %s '%s': must be a multiple of 512 bytes", name, s);
	*out = v;
	return 0;
}

int opt_parse_bool(const char *name, const char *s, bool *out)
{
	if (!s || !strcmp(s, "on") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))
		*out = true;
	else if (!strcmp(s, "off") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))
		*out = false;
	else
		return opt_fail("invalid %s '%s': expected on or off", name, s);
	return 0;
}

/*
 * A rate: a whole number, 0 for no limit; with @units, K/M/G/T suffixes
 * (powers of 1024) too, for bytes per second.
 */
int opt_parse_rate(const char *name, const char *s, bool units, uint64_t *out)
{
	char buf[32];
	uint64_t v, mult = 1;
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= sizeof(buf))
		goto bad;
	memcpy(buf, s, n + 1);
	if (units && suffix_mult(buf[n - 1])) {
		mult = suffix_mult(buf[n - 1]);
		buf[n - 1] = '\0';
	}
	if (parse_u64(buf, &v) || v > QOS_MAX_RATE / mult)
		goto bad;
	*out = v * mult;
	return 0;
bad:
	return opt_fail("invalid %s '%s': expected a whole number per second from 0 (no limit) "
			"to %llu%s", name, s ? s : "", QOS_MAX_RATE,
			units ? ", with an optional K, M, G or T suffix" : "");
}

bool qos_opt_key(const char *key)
{
	return qos_kind_parse(key) >= 0 || !strcmp(key, "burst-ms") || !strcmp(key, "qos-group");
}

int qos_opt(struct qos_limits *l, const char **group, const char *key, const char *val)
{
	int k = qos_kind_parse(key);
	unsigned ms;
	int ret;

	if (k >= 0)
		return opt_parse_rate(key, val, k >= QOS_BPS, &l->rate[k]);
	if (!strcmp(key, "burst-ms")) {
		ret = opt_parse_uint("burst-ms", val, 1, QOS_MAX_BURST_MS, &ms);
		if (!ret)
			l->burst_ms = ms;
		return ret;
	}
	if (!strcmp(key, "qos-group")) {
		/* "" (runtime only) leaves the group. */
		if (!val || (*val && !qos_group_name_valid(val)))
			return opt_fail("invalid qos-group '%s': 1-%d letters, digits, '.', '_' "
					"or '-'", val ? val : "", QOS_GROUP_NAME_MAX);
		*group = val;
		return 0;
	}
	return opt_fail("unknown QoS option '%s'", key);
}

void export_opts_init(struct export_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->p.fd = -1;
	o->p.num_queues = 1;
	o->p.queue_size = DEFAULT_QUEUE_SIZE;
	o->p.packed = true;
	o->p.storage.engine = STORAGE_FILE;
}

/* Apply one key=value to an export. */
int export_opt(struct export_opts *o, const char *key, const char *val)
{
	unsigned u = 0;
	int ret;

	if (!strcmp(key, "socket-path")) {
		if (!val || !*val)
			return opt_fail("--socket-path needs a path");
		if (strlen(val) >= 108)
			return opt_fail("socket path too long (at most 107 bytes): %s", val);
		o->p.socket_path = val;
	} else if (!strcmp(key, "fd")) {
		ret = opt_parse_uint("fd", val, 0, INT_MAX, &u);
		if (ret)
			return ret;
		o->p.fd = (int)u;
	} else if (!strcmp(key, "file") || !strcmp(key, "blk-file")) {
		if (!val || !*val)
			return opt_fail("--file needs a path");
		if (o->have_target)
			return opt_fail("give only one of --file, --rbd and --null per export");
		o->p.storage.engine = STORAGE_FILE;
		o->p.storage.path = val;
		o->have_target = true;
	} else if (!strcmp(key, "null")) {
		if (o->have_target)
			return opt_fail("give only one of --file, --rbd and --null per export");
		ret = opt_parse_size("null size", val, &o->null_size);
		if (ret)
			return ret;
		o->p.storage.engine = STORAGE_NULL;
		o->p.storage.size = o->null_size;
		o->have_target = true;
	} else if (!strcmp(key, "rbd")) {
		if (!val || !*val || !strchr(val, '/'))
			return opt_fail("invalid rbd '%s': expected POOL/IMAGE or POOL/IMAGE@SNAP",
				    val ? val : "");
		if (o->have_target)
			return opt_fail("give only one of --file, --rbd and --null per export");
		if (!storage_have_rbd())
			return opt_fail("this vblkd was built without the rbd engine (librbd)");
		o->p.storage.engine = STORAGE_RBD;
		o->p.storage.path = val;
		o->have_target = true;
	} else if (!strcmp(key, "ceph-conf") || !strcmp(key, "id") || !strcmp(key, "keyring")) {
		if (!val || !*val)
			return opt_fail("--%s needs a value", key);
		if (!strcmp(key, "ceph-conf"))
			o->p.storage.ceph_conf = val;
		else if (!strcmp(key, "id"))
			o->p.storage.rbd_id = val;
		else
			o->p.storage.keyring = val;
		o->rbd_opts = true;
	} else if (!strcmp(key, "rbd-timeout")) {
		o->rbd_opts = true;
		return opt_parse_uint("rbd-timeout", val, 1, 3600, &o->p.storage.rbd_timeout);
	} else if (!strcmp(key, "num-queues")) {
		return opt_parse_uint("num-queues", val, 1, VHOST_MAX_QUEUES, &o->p.num_queues);
	} else if (!strcmp(key, "queue-size")) {
		ret = opt_parse_uint("queue-size", val, 4, MAX_QUEUE_SIZE, &u);
		if (ret)
			return ret;
		if (u & (u - 1))
			return opt_fail("invalid queue-size '%s': must be a power of two", val);
		o->p.queue_size = u;
	} else if (!strcmp(key, "read-only")) {
		return opt_parse_bool("read-only", val, &o->p.read_only);
	} else if (!strcmp(key, "direct")) {
		return opt_parse_bool("direct", val, &o->p.storage.direct);
	} else if (!strcmp(key, "writethrough")) {
		return opt_parse_bool("writethrough", val, &o->p.writethrough);
	} else if (!strcmp(key, "packed")) {
		return opt_parse_bool("packed", val, &o->p.packed);
	} else if (!strcmp(key, "iommu")) {
		return opt_parse_bool("iommu", val, &o->p.iommu);
	} else if (qos_opt_key(key)) {
		if (!strcmp(key, "qos-group") && val && !*val)
			return opt_fail("invalid qos-group '': give a name");
		if (strcmp(key, "qos-group"))
			o->p.qos_given = true;
		return qos_opt(&o->p.qos, &o->p.qos_group, key, val);
	} else if (!strcmp(key, "serial")) {
		if (!val || strlen(val) > BLK_ID_BYTES)
			return opt_fail("invalid serial: at most %u bytes", BLK_ID_BYTES);
		o->p.serial = val;
	} else {
		return opt_fail("unknown export option '%s'", key);
	}
	return 0;
}

/* "--export=a=b,c=d": parse in place (the string is ours). */
int export_opt_list(struct export_opts *o, char *list)
{
	char *save = NULL;

	for (char *kv = strtok_r(list, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		int ret;

		if (eq)
			*eq++ = '\0';
		ret = export_opt(o, kv, eq);
		if (ret)
			return ret;
	}
	return 0;
}

int export_opts_check(struct export_opts *o, unsigned idx)
{
	if (!o->p.socket_path && o->p.fd < 0)
		return opt_fail("export %u: give --socket-path=PATH or --fd=FD", idx);
	if (o->p.socket_path && o->p.fd >= 0 && !o->activated)
		return opt_fail("export %u: --socket-path and --fd are mutually exclusive", idx);
	if (!o->have_target)
		return opt_fail("export %u: give --file=IMAGE, --rbd=POOL/IMAGE or --null=SIZE", idx);
	if (o->rbd_opts && o->p.storage.engine != STORAGE_RBD)
		return opt_fail("export %u: ceph-conf, id, keyring and rbd-timeout need --rbd", idx);
	o->p.storage.read_only = o->p.read_only;
	return 0;
}

