/* SPDX-License-Identifier: MIT */
/*
 * test_vhost_hostile.c - malformed and hostile vhost-user input. Each case
 * runs on a fresh connection and must (1) make the backend close that
 * connection, (2) leave the server able to serve a full healthy session,
 * (3) leak no fd. Then 1000 connect/disconnect cycles and a seeded random
 * message storm.
 */
#include "vhost_test.h"

#define DEFAULT_FLAGS 0xffffffffu   /* = VHOST_USER_VERSION */

enum prefix {
	P_NONE,          /* nothing before the hostile message */
	P_NEGOTIATED,    /* protocol features (REPLY_ACK...), owner, split features */
	P_MEMORY,        /* + memory table */
	P_RUNNING,       /* + vring 0 started */
};

enum fd_kind { FD_EVENT, FD_SMALL_MEMFD, FD_GUEST_MEMFD };

static const uint64_t feat_split = (1ull << VIRTIO_F_VERSION_1) |
				   (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

static int do_prefix(struct env *e, struct vhost_frontend *f, enum prefix p)
{
	struct gmem_region_desc r[2];
	int fds[2] = { e->memfd, e->memfd }, kick, ret = 0;

	if (p >= P_NEGOTIATED) {
		ret = vhost_frontend_set_protocol_features(f, T_PROTO_ALL);
		ret = ret ?: vhost_frontend_set_owner(f);
		ret = ret ?: vhost_frontend_set_features(f, feat_split);
	}
	if (!ret && p >= P_MEMORY) {
		env_regions(r);
		ret = vhost_frontend_set_mem_table(f, r, fds, 2);
	}
	if (!ret && p >= P_RUNNING) {
		kick = eventfd(0, EFD_CLOEXEC);
		ret = vhost_frontend_set_vring_num(f, 0, 256);
		ret = ret ?: vhost_frontend_set_vring_addr(f, 0, 0, ring_uva(0, T_DESC),
							   ring_uva(0, T_USED), ring_uva(0, T_AVAIL), 0);
		ret = ret ?: vhost_frontend_set_vring_kick(f, 0, kick);
		ret = ret ?: vhost_frontend_set_vring_enable(f, 0, true);
		close(kick);
		if (!ret && !DEV(e, running[0]))
			ret = -ENODEV;
	}
	return ret;
}

/* Send header {req, flags, size} then len payload bytes with nfds fds. */
static void send_raw(struct env *e, struct vhost_frontend *f, uint32_t req, uint32_t flags,
		     uint32_t size, const void *payload, uint32_t len, unsigned nfds,
		     enum fd_kind kind)
{
	struct vhost_msg_hdr hdr = {
		.request = req,
		.flags = flags == DEFAULT_FLAGS ? VHOST_USER_VERSION : flags,
		.size = size,
	};
	static uint8_t zeros[8192];
	int fds[16], small = -1;

	if (kind == FD_SMALL_MEMFD) {
		small = memfd_create("small", MFD_CLOEXEC);
		if (small < 0 || ftruncate(small, 4096))
			tap_bail("memfd");
	}
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = kind == FD_EVENT ? eventfd(0, EFD_CLOEXEC) :
			 kind == FD_SMALL_MEMFD ? small : e->memfd;
	if (!payload)
		payload = zeros;
	/* More than VHOST_USER_MAX_FDS: bypass the helper's own limit. */
	if (nfds > VHOST_USER_MAX_FDS) {
		struct iovec iov[2] = { { &hdr, sizeof(hdr) }, { (void *)payload, len } };
		int ret = fixture_sendmsg_fds(vhost_frontend_fd(f), iov, 2, fds, nfds);

		if (ret)
			diag("sendmsg: %s", strerror(-ret));
	} else {
		/* Errors are fine: the backend may already have hung up. */
		vhost_msg_send(vhost_frontend_fd(f), &hdr, payload, len, fds, nfds);
	}
	for (unsigned i = 0; i < nfds; i++)
		if (kind == FD_EVENT)
			close(fds[i]);
	if (small >= 0)
		close(small);
}

struct hostile {
	const char *name;
	enum prefix prefix;
	uint32_t req, flags, size;
	const void *payload;
	uint32_t len;               /* payload bytes really sent */
	unsigned nfds;
	enum fd_kind kind;
	bool shut;                  /* half-close after sending (truncation) */
	const void *raw;            /* if set: send these raw bytes instead */
	uint32_t raw_len;
	bool split;                 /* header and payload sent apart, nfds each */
};

/* Header and payload in two sendmsg calls, each carrying @nfds eventfds. */
static void send_split(struct vhost_frontend *f, uint32_t req, const void *payload,
		       uint32_t len, unsigned nfds)
{
	struct vhost_msg_hdr hdr = { .request = req, .flags = VHOST_USER_VERSION, .size = len };
	int fds[VHOST_USER_MAX_FDS], ret;

	for (unsigned i = 0; i < nfds; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	if ((ret = fixture_send_fds(vhost_frontend_fd(f), &hdr, sizeof(hdr), fds, nfds)) ||
	    (ret = fixture_send_fds(vhost_frontend_fd(f), payload, len, fds, nfds)))
		diag("sendmsg: %s", strerror(-ret));
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
}

static void run_case(struct env *e, const struct hostile *h)
{
	int fds0 = count_fds(), disc0 = DEV(e, disconnects);
	struct vhost_frontend *f = fe_connect(e);
	bool closed;

	if (!f) {
		ok(0, "%s: connect", h->name);
		return;
	}
	if (do_prefix(e, f, h->prefix)) {
		ok(0, "%s: prefix setup", h->name);
		vhost_frontend_destroy(f);
		return;
	}
	if (h->split) {
		send_split(f, h->req, h->payload, h->len, h->nfds);
	} else if (h->raw) {
		if (send(vhost_frontend_fd(f), h->raw, h->raw_len, MSG_NOSIGNAL) < 0)
			diag("send: %s", strerror(errno));
	} else {
		send_raw(e, f, h->req, h->flags, h->size, h->payload, h->len, h->nfds, h->kind);
	}
	if (h->shut)
		shutdown(vhost_frontend_fd(f), SHUT_WR);
	closed = fe_closed_by_peer(f);
	vhost_frontend_destroy(f);
	ok(closed, "%s: connection closed", h->name);
	ok(WAIT_FOR(e, e->dev.disconnects == disc0 + 1 && !e->dev.running[0]),
	   "%s: session torn down", h->name);
	ok(healthy_and_close(e), "%s: server still serves a healthy session", h->name);
	is(count_fds(), fds0, "%s: no fd leaked", h->name);
}

#define U64(v) (&(uint64_t){ (v) })
#define STATE(i, n) (&(struct vhost_msg_vring_state){ .index = (i), .num = (n) })

/* Simple cases: request, size == len, fds. */
#define CASE(name_, prefix_, req_, payload_, len_, nfds_) \
	run_case(e, &(struct hostile){ .name = name_, .prefix = prefix_, .req = req_, \
				       .flags = DEFAULT_FLAGS, .size = len_, .payload = payload_, \
				       .len = len_, .nfds = nfds_ })

static void header_cases(struct env *e)
{
	static const uint8_t half_header[6] = { 1, 0, 0, 0, 1, 0 };
	struct hostile h;

	diag("header: version, flags, size, truncation");
	for (uint32_t fl = 0; fl < 4; fl++) {
		char name[64];

		if (fl == VHOST_USER_VERSION)
			continue;
		snprintf(name, sizeof(name), "GET_FEATURES with version %u", fl);
		run_case(e, &(struct hostile){ .name = name, .req = VHOST_USER_GET_FEATURES, .flags = fl });
	}
	run_case(e, &(struct hostile){ .name = "reply flag in a request",
				       .req = VHOST_USER_GET_FEATURES,
				       .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK });
	run_case(e, &(struct hostile){ .name = "undefined flag bit",
				       .req = VHOST_USER_GET_FEATURES,
				       .flags = VHOST_USER_VERSION | (1u << 7) });
	run_case(e, &(struct hostile){ .name = "size 4096 (too big)", .req = VHOST_USER_GET_FEATURES,
				       .flags = DEFAULT_FLAGS, .size = 4096, .len = 4096 });
	run_case(e, &(struct hostile){ .name = "size 0xffffffff, header only",
				       .req = VHOST_USER_SET_MEM_TABLE, .flags = DEFAULT_FLAGS,
				       .size = 0xffffffffu });
	run_case(e, &(struct hostile){ .name = "size one past the largest payload",
				       .req = VHOST_USER_SET_CONFIG, .flags = DEFAULT_FLAGS,
				       .size = VHOST_MSG_MAX_PAYLOAD + 1, .len = VHOST_MSG_MAX_PAYLOAD + 1 });
	run_case(e, &(struct hostile){ .name = "truncated header", .raw = half_header,
				       .raw_len = sizeof(half_header), .shut = true });
	run_case(e, &(struct hostile){ .name = "truncated header after a session start",
				       .prefix = P_RUNNING, .raw = half_header,
				       .raw_len = sizeof(half_header), .shut = true });
	run_case(e, &(struct hostile){ .name = "truncated payload", .req = VHOST_USER_SET_FEATURES,
				       .flags = DEFAULT_FLAGS, .size = 8, .payload = U64(1), .len = 4,
				       .shut = true });
	h = (struct hostile){ .name = "truncated SET_MEM_TABLE carrying 2 fds",
			      .req = VHOST_USER_SET_MEM_TABLE, .flags = DEFAULT_FLAGS,
			      .size = 8 + 2 * 32, .len = 20, .nfds = 2, .shut = true };
	run_case(e, &h);
}

struct fixed {
	uint32_t req, size, nfds;
};

static void size_cases(struct env *e)
{
	static const struct fixed fixed[] = {
		{ VHOST_USER_GET_FEATURES, 0, 0 },
		{ VHOST_USER_SET_FEATURES, 8, 0 },
		{ VHOST_USER_SET_OWNER, 0, 0 },
		{ VHOST_USER_RESET_OWNER, 0, 0 },
		{ VHOST_USER_SET_VRING_NUM, 8, 0 },
		{ VHOST_USER_SET_VRING_ADDR, 40, 0 },
		{ VHOST_USER_SET_VRING_BASE, 8, 0 },
		{ VHOST_USER_GET_VRING_BASE, 8, 0 },
		{ VHOST_USER_SET_VRING_KICK, 8, 1 },
		{ VHOST_USER_SET_VRING_CALL, 8, 1 },
		{ VHOST_USER_SET_VRING_ERR, 8, 1 },
		{ VHOST_USER_GET_PROTOCOL_FEATURES, 0, 0 },
		{ VHOST_USER_SET_PROTOCOL_FEATURES, 8, 0 },
		{ VHOST_USER_GET_QUEUE_NUM, 0, 0 },
		{ VHOST_USER_SET_VRING_ENABLE, 8, 0 },
		{ VHOST_USER_GET_MAX_MEM_SLOTS, 0, 0 },
		{ VHOST_USER_ADD_MEM_REG, 40, 1 },
		{ VHOST_USER_REM_MEM_REG, 40, 0 },
	};

	diag("size mismatch for every fixed-size request");
	for (unsigned i = 0; i < ARRAY_SIZE(fixed); i++) {
		const struct fixed *x = &fixed[i];
		uint32_t sizes[3] = { x->size + 1, x->size ? x->size - 1 : 8, x->size ? 0 : 4 };

		for (unsigned j = 0; j < 3; j++) {
			char name[96];

			snprintf(name, sizeof(name), "%s with size %u (want %u)",
				 vhost_msg_name(x->req), sizes[j], x->size);
			run_case(e, &(struct hostile){ .name = name, .prefix = P_NEGOTIATED,
						       .req = x->req, .flags = DEFAULT_FLAGS,
						       .size = sizes[j], .len = sizes[j],
						       .nfds = x->nfds, .kind = FD_EVENT });
		}
	}
	{
		struct vhost_msg_config c = { .offset = 0, .size = 8 };

		run_case(e, &(struct hostile){ .name = "GET_CONFIG size field 8, payload 4",
					       .prefix = P_NEGOTIATED, .req = VHOST_USER_GET_CONFIG,
					       .flags = DEFAULT_FLAGS, .size = 16, .payload = &c,
					       .len = 16 });
		run_case(e, &(struct hostile){ .name = "SET_CONFIG shorter than its header",
					       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_CONFIG,
					       .flags = DEFAULT_FLAGS, .size = 11, .payload = &c,
					       .len = 11 });
		c.size = 300;
		run_case(e, &(struct hostile){ .name = "GET_CONFIG of 300 bytes",
					       .prefix = P_NEGOTIATED, .req = VHOST_USER_GET_CONFIG,
					       .flags = DEFAULT_FLAGS, .size = 12 + 256, .payload = &c,
					       .len = 12 + 256 });
	}
}

static void fd_cases(struct env *e)
{
	static uint8_t zeros[64];
	struct hostile h;

	diag("missing and extra fds");
	CASE("SET_VRING_KICK without its fd", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, U64(0), 8, 0);
	CASE("SET_VRING_CALL without its fd", P_NEGOTIATED, VHOST_USER_SET_VRING_CALL, U64(1), 8, 0);
	CASE("ADD_MEM_REG without its fd", P_NEGOTIATED, VHOST_USER_ADD_MEM_REG, zeros, 40, 0);
	CASE("SET_FEATURES with an fd", P_NONE, VHOST_USER_SET_FEATURES, U64(feat_split), 8, 1);
	CASE("GET_FEATURES with 3 fds", P_NONE, VHOST_USER_GET_FEATURES, NULL, 0, 3);
	CASE("SET_VRING_KICK NOFD with an fd", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK,
	     U64(VHOST_USER_VRING_NOFD_MASK), 8, 1);
	CASE("SET_VRING_CALL with 2 fds", P_NEGOTIATED, VHOST_USER_SET_VRING_CALL, U64(0), 8, 2);
	CASE("REM_MEM_REG with 2 fds", P_MEMORY, VHOST_USER_REM_MEM_REG, zeros, 40, 2);
	CASE("GET_FEATURES with 8 fds", P_NONE, VHOST_USER_GET_FEATURES, NULL, 0, 8);
	h = (struct hostile){ .name = "8 fds on the header and 8 more on the payload",
			      .req = VHOST_USER_SET_FEATURES, .payload = U64(feat_split), .len = 8,
			      .nfds = 8, .split = true };
	run_case(e, &h);
	h = (struct hostile){ .name = "1 fd on the header and 1 on the payload of SET_VRING_KICK",
			      .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_VRING_KICK,
			      .payload = U64(0), .len = 8, .nfds = 1, .split = true };
	run_case(e, &h);
	h = (struct hostile){ .name = "12 fds (more than the control buffer holds)",
			      .req = VHOST_USER_SET_OWNER, .flags = DEFAULT_FLAGS, .nfds = 12 };
	if (test_qemu_user())   /* its bigger host control buffer takes all 12 */
		skip("%s: qemu-user (%s) does not truncate SCM_RIGHTS like the kernel",
		     h.name, test_qemu_user());
	else
		run_case(e, &h);
}

static void index_cases(struct env *e)
{
	struct vhost_msg_vring_addr a = { .index = 99 };

	diag("vring index out of range");
	CASE("SET_VRING_NUM index 2", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, STATE(2, 64), 8, 0);
	CASE("SET_VRING_ADDR index 99", P_NEGOTIATED, VHOST_USER_SET_VRING_ADDR, &a, 40, 0);
	CASE("SET_VRING_BASE index 2", P_NEGOTIATED, VHOST_USER_SET_VRING_BASE, STATE(2, 0), 8, 0);
	CASE("GET_VRING_BASE index 7", P_NEGOTIATED, VHOST_USER_GET_VRING_BASE, STATE(7, 0), 8, 0);
	CASE("GET_VRING_BASE index 2^32-1", P_NEGOTIATED, VHOST_USER_GET_VRING_BASE,
	     STATE(0xffffffffu, 0), 8, 0);
	CASE("SET_VRING_KICK index 2", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, U64(2), 8, 1);
	CASE("SET_VRING_CALL index 255", P_NEGOTIATED, VHOST_USER_SET_VRING_CALL, U64(255), 8, 1);
	CASE("SET_VRING_ERR index 2 NOFD", P_NEGOTIATED, VHOST_USER_SET_VRING_ERR,
	     U64(2 | VHOST_USER_VRING_NOFD_MASK), 8, 0);
	CASE("SET_VRING_ENABLE index 64", P_NEGOTIATED, VHOST_USER_SET_VRING_ENABLE, STATE(64, 1), 8, 0);
	CASE("SET_VRING_KICK reserved payload bits", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK,
	     U64(1ull << 20), 8, 1);
}

static void value_cases(struct env *e)
{
	struct vhost_msg_vring_addr a = {
		.index = 0, .desc = ring_uva(0, T_DESC) + 8, .used = ring_uva(0, T_USED),
		.avail = ring_uva(0, T_AVAIL),
	};

	diag("ring sizes, bases and other values");
	/* (Ring sizes we cannot serve are refused, not fatal: test_vhost_proto.) */
	CASE("SET_VRING_BASE 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_BASE,
	     STATE(0, 0x10000), 8, 0);
	CASE("SET_VRING_ENABLE 2", P_NEGOTIATED, VHOST_USER_SET_VRING_ENABLE, STATE(0, 2), 8, 0);
	CASE("misaligned descriptor table", P_NEGOTIATED, VHOST_USER_SET_VRING_ADDR, &a, 40, 0);
	CASE("SET_FEATURES with an unoffered bit", P_NONE, VHOST_USER_SET_FEATURES,
	     U64(feat_split | (1ull << 40)), 8, 0);
	CASE("SET_FEATURES with LOG_ALL", P_NONE, VHOST_USER_SET_FEATURES,
	     U64(feat_split | (1ull << 26)), 8, 0);
	CASE("SET_FEATURES with ACCESS_PLATFORM", P_NONE, VHOST_USER_SET_FEATURES,
	     U64(feat_split | (1ull << VIRTIO_F_ACCESS_PLATFORM)), 8, 0);
	CASE("SET_PROTOCOL_FEATURES with PAGEFAULT", P_NONE, VHOST_USER_SET_PROTOCOL_FEATURES,
	     U64(1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT), 8, 0);
	CASE("unknown request 99", P_NEGOTIATED, 99, NULL, 0, 0);
	CASE("unknown request 0", P_NONE, 0, U64(0), 8, 0);
	CASE("unknown request 0x7fffffff", P_NONE, 0x7fffffffu, NULL, 0, 0);
	CASE("unsupported SET_LOG_BASE with an fd", P_NEGOTIATED, VHOST_USER_SET_LOG_BASE,
	     NULL, 16, 1);
	run_case(e, &(struct hostile){ .name = "unknown request with need_reply, no REPLY_ACK",
				       .req = 77, .flags = VHOST_USER_VERSION |
							   VHOST_USER_NEED_REPLY_MASK });
}

static void state_cases(struct env *e)
{
	struct vhost_msg_vring_addr a = {
		.index = 0, .desc = ring_uva(0, T_DESC), .used = ring_uva(0, T_USED),
		.avail = ring_uva(0, T_AVAIL),
	};

	diag("messages that do not fit a running ring");
	/* Only the log flag and address may change while it runs (migration). */
	a.desc += 16;
	CASE("SET_VRING_ADDR moving a running ring", P_RUNNING, VHOST_USER_SET_VRING_ADDR, &a, 40, 0);
	CASE("SET_VRING_NUM on a running ring", P_RUNNING, VHOST_USER_SET_VRING_NUM,
	     STATE(0, 128), 8, 0);
	CASE("SET_VRING_BASE on a running ring", P_RUNNING, VHOST_USER_SET_VRING_BASE,
	     STATE(0, 1), 8, 0);
	CASE("SET_FEATURES changing under a running ring", P_RUNNING, VHOST_USER_SET_FEATURES,
	     U64(feat_split | (1ull << VIRTIO_RING_F_EVENT_IDX)), 8, 0);
	CASE("malformed message while a ring runs", P_RUNNING, VHOST_USER_GET_FEATURES, NULL, 8, 0);
}

static void memory_cases(struct env *e)
{
	struct vhost_msg_memory m;
	struct vhost_msg_mem_single one = { 0 };
	uint32_t sz1 = 8 + 32, sz2 = 8 + 2 * 32;

	diag("memory tables");
	memset(&m, 0, sizeof(m));
	CASE("SET_MEM_TABLE with 0 regions", P_NEGOTIATED, VHOST_USER_SET_MEM_TABLE, &m, 8, 0);
	m.nregions = 9;
	CASE("SET_MEM_TABLE claiming 9 regions in 8 slots", P_NEGOTIATED, VHOST_USER_SET_MEM_TABLE,
	     &m, 8 + 8 * 32, 8);
	{
		static uint8_t big[8 + 9 * 32];

		memcpy(big, &m, 8);
		CASE("SET_MEM_TABLE with 9 regions", P_NEGOTIATED, VHOST_USER_SET_MEM_TABLE, big,
		     sizeof(big), 8);
	}
	m.nregions = 2;
	m.regions[0] = (struct vhost_msg_mem_region){ 0, T_REG_SIZE, T_UVA0, 0 };
	m.regions[1] = (struct vhost_msg_mem_region){ T_REG_SIZE, T_REG_SIZE, T_UVA1, T_REG_SIZE };
	run_case(e, &(struct hostile){ .name = "SET_MEM_TABLE 2 regions, 1 fd",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz2, .payload = &m, .len = sz2,
				       .nfds = 1, .kind = FD_GUEST_MEMFD });
	run_case(e, &(struct hostile){ .name = "SET_MEM_TABLE 2 regions, size of 1",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz1, .payload = &m, .len = sz1,
				       .nfds = 2, .kind = FD_GUEST_MEMFD });
	m.nregions = 1;
	run_case(e, &(struct hostile){ .name = "SET_MEM_TABLE 1 region, 2 fds",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz1, .payload = &m, .len = sz1,
				       .nfds = 2, .kind = FD_GUEST_MEMFD });
	m.nregions = 2;
	m.regions[1].gpa = T_REG_SIZE / 2;
	run_case(e, &(struct hostile){ .name = "regions overlapping in guest addresses",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz2, .payload = &m, .len = sz2,
				       .nfds = 2, .kind = FD_GUEST_MEMFD });
	m.regions[1].gpa = T_REG_SIZE;
	m.regions[1].uva = T_UVA0 + 4096;
	run_case(e, &(struct hostile){ .name = "regions overlapping in frontend addresses",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz2, .payload = &m, .len = sz2,
				       .nfds = 2, .kind = FD_GUEST_MEMFD });
	m.nregions = 1;
	m.regions[0].size = 0;
	run_case(e, &(struct hostile){ .name = "region of size 0", .prefix = P_NEGOTIATED,
				       .req = VHOST_USER_SET_MEM_TABLE, .flags = DEFAULT_FLAGS,
				       .size = sz1, .payload = &m, .len = sz1, .nfds = 1,
				       .kind = FD_GUEST_MEMFD });
	m.regions[0] = (struct vhost_msg_mem_region){ ~0ull - 4095, 8192, T_UVA0, 0 };
	run_case(e, &(struct hostile){ .name = "region wrapping the guest address space",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz1, .payload = &m, .len = sz1,
				       .nfds = 1, .kind = FD_GUEST_MEMFD });
	m.regions[0] = (struct vhost_msg_mem_region){ 0, T_REG_SIZE, T_UVA0, 0 };
	run_case(e, &(struct hostile){ .name = "region larger than its 4 KiB fd",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz1, .payload = &m, .len = sz1,
				       .nfds = 1, .kind = FD_SMALL_MEMFD });
	m.regions[0] = (struct vhost_msg_mem_region){ 0, 4096, T_UVA0, T_MEM_SIZE };
	run_case(e, &(struct hostile){ .name = "mmap offset beyond the end of the fd",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz1, .payload = &m, .len = sz1,
				       .nfds = 1, .kind = FD_GUEST_MEMFD });
	m.regions[0] = (struct vhost_msg_mem_region){ 0, 4096, T_UVA0, 0 };
	run_case(e, &(struct hostile){ .name = "region fd that cannot be mapped (eventfd)",
				       .prefix = P_NEGOTIATED, .req = VHOST_USER_SET_MEM_TABLE,
				       .flags = DEFAULT_FLAGS, .size = sz1, .payload = &m, .len = sz1,
				       .nfds = 1, .kind = FD_EVENT });
	one.region = (struct vhost_msg_mem_region){ T_REG_SIZE + 4096, 4096, 0x1000, 0 };
	run_case(e, &(struct hostile){ .name = "ADD_MEM_REG overlapping the table",
				       .prefix = P_MEMORY, .req = VHOST_USER_ADD_MEM_REG,
				       .flags = DEFAULT_FLAGS, .size = 40, .payload = &one, .len = 40,
				       .nfds = 1, .kind = FD_GUEST_MEMFD });
	one.region = (struct vhost_msg_mem_region){ 1ull << 40, T_REG_SIZE, 1ull << 40, 0 };
	run_case(e, &(struct hostile){ .name = "ADD_MEM_REG larger than its fd",
				       .prefix = P_MEMORY, .req = VHOST_USER_ADD_MEM_REG,
				       .flags = DEFAULT_FLAGS, .size = 40, .payload = &one, .len = 40,
				       .nfds = 1, .kind = FD_SMALL_MEMFD });
}

/* Rings pointing outside guest memory: not fatal, the ring just stays off. */
static void ring_outside_memory(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), starts0 = DEV(e, starts), disc = DEV(e, disconnects);
	uint64_t v;

	diag("ring areas outside guest memory");
	if (!f || do_prefix(e, f, P_MEMORY))
		return;
	is(vhost_frontend_set_vring_num(f, 0, 256), 0, "num");
	/* used ring crosses the end of region 1 */
	is(vhost_frontend_set_vring_addr(f, 0, 0, ring_uva(0, T_DESC),
					 T_UVA1 + T_REG_SIZE - 64, ring_uva(0, T_AVAIL), 0), 0, "addr");
	is(vhost_frontend_set_vring_kick(f, 0, kick), 0, "kick");
	is(vhost_frontend_set_vring_enable(f, 0, true), 0, "enable acked");
	is(DEV(e, starts), starts0, "ring not started");
	is(vhost_frontend_get_features(f, &v), 0, "connection alive");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
	close(kick);
}

static void cycles(struct env *e)
{
	int fds0 = count_fds(), disc0 = DEV(e, disconnects), fails = 0;

	diag("1000 connect/disconnect cycles");
	for (int i = 0; i < 1000; i++) {
		struct vhost_frontend *f = fe_connect(e);
		uint64_t v;

		if (!f) {
			fails++;
			continue;
		}
		if (i % 2 && vhost_frontend_get_features(f, &v))
			fails++;
		vhost_frontend_destroy(f);
	}
	is(fails, 0, "every cycle connected (and half exchanged a message)");
	ok(WAIT_FOR(e, e->dev.disconnects == disc0 + 1000), "1000 disconnects seen");
	is(count_fds(), fds0, "no fd growth");
	ok(healthy_and_close(e), "healthy session afterwards");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void storm(struct env *e)
{
	int fds0 = count_fds(), disc0 = DEV(e, disconnects), conns = 0;
	uint8_t buf[320];

	diag("seeded random message storm: 400 connections");
	for (int i = 0; i < 400; i++) {
		struct vhost_frontend *f = fe_connect(e);
		unsigned nmsg = 1 + rnd() % 3;

		if (!f)
			continue;
		conns++;
		vhost_frontend_set_timeout(f, 200);
		if (do_prefix(e, f, (enum prefix)(rnd() % 4)))
			diag("storm %d: prefix failed", i);
		for (unsigned k = 0; k < nmsg; k++) {
			uint32_t req = rnd() % 8 == 0 ? (uint32_t)rnd() : (uint32_t)(rnd() % 42);
			uint32_t flags = rnd() % 4 == 0 ? (uint32_t)rnd() % 16 : DEFAULT_FLAGS;
			uint32_t size = rnd() % 3 == 0 ? (uint32_t)(rnd() % sizeof(buf)) :
					(uint32_t)(rnd() % 5) * 8;
			unsigned nfds = rnd() % 3 == 0 ? (unsigned)(rnd() % 4) : 0;

			for (unsigned b = 0; b < sizeof(buf); b++)
				buf[b] = rnd() % 3 ? (uint8_t)(rnd() % 4) : (uint8_t)rnd();
			send_raw(e, f, req, flags, size, buf, size, nfds,
				 rnd() % 2 ? FD_EVENT : FD_GUEST_MEMFD);
		}
		vhost_frontend_destroy(f);
	}
	ok(WAIT_FOR(e, e->dev.disconnects == disc0 + conns), "every storm connection torn down");
	ok(healthy_and_close(e), "server serves a healthy session after the storm");
	is(count_fds(), fds0, "no fd growth after the storm");
}

int main(void)
{
	struct env e;
	int fds0;

	log_max_level = LOG_ERR;   /* the hostile cases log warnings by design */
	fds0 = count_fds();
	env_init(&e, true);
	e.dev.stop_advance = 1;
	ok(healthy_and_close(&e), "baseline healthy session");
	header_cases(&e);
	size_cases(&e);
	fd_cases(&e);
	index_cases(&e);
	value_cases(&e);
	state_cases(&e);
	memory_cases(&e);
	ring_outside_memory(&e);
	cycles(&e);
	storm(&e);
	env_fini(&e);
	is(count_fds(), fds0, "no fd leaked overall");
	return tap_done();
}
