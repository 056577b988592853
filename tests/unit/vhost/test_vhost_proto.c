/* SPDX-License-Identifier: MIT */
/*
 * test_vhost_proto.c - the vhost-user backend driven by the frontend
 * library over real unix sockets: QEMU-like handshake, ring start with
 * translated pointers, GET_VRING_BASE, config space, memory slots, live
 * memory and call-fd swaps, async queue stops, reconnects, fd modes and
 * stale socket files.
 */
#include "vhost_test.h"

static void test_handshake(struct env *e)
{
	struct vhost_frontend *f = NULL;
	int disc = DEV(e, disconnects);

	diag("QEMU-like handshake on vring 0 and 1");
	ok(healthy_session(e, 0, &f), "handshake, start and stop of vring 0");
	is(DEV(e, set_features_calls) > 0, 1, "set_features called");
	is(DEV(e, features), (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
	   (1ull << VHOST_USER_F_PROTOCOL_FEATURES), "device got the acked features");
	ok(DEV(e, event_idx[0]), "EVENT_IDX reached the virtq");
	ok(!DEV(e, packed[0]), "split ring");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected callback");
	ok(healthy_and_close(e), "second session on vring 1 after reconnect");
}

static int negotiate(struct vhost_frontend *f, uint64_t features)
{
	int ret;

	ret = vhost_frontend_set_protocol_features(f, T_PROTO_ALL);
	ret = ret ?: vhost_frontend_set_owner(f);
	ret = ret ?: vhost_frontend_set_features(f, features);
	return ret;
}

static int set_mem(struct env *e, struct vhost_frontend *f)
{
	struct gmem_region_desc r[2];
	int fds[2] = { e->memfd, e->memfd };

	env_regions(r);
	return vhost_frontend_set_mem_table(f, r, fds, 2);
}

#define FEAT_SPLIT ((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))

static void test_live_swaps(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int call1 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int call2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int execs0 = DEV(e, execs), starts0 = DEV(e, starts);
	int disc = DEV(e, disconnects);
	struct gmem *mem_before;
	void *desc_before;
	uint64_t v = 0;

	diag("call fd and memory table swapped under a running ring");
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	is(set_mem(e, f), 0, "memory table");
	is(env_start_ring(f, 0, kick, call1, 128, 0), 0, "vring 0 configured and enabled");
	is(DEV(e, starts), starts0 + 1, "vring 0 started");
	ok(markers_ok(e, 0), "ring pointers translated through the table");

	/* The server's call fd is a copy of ours: signalling it reaches us. */
	pthread_mutex_lock(&e->dev.lock);
	eventfd_write(e->dev.vr[0]->call_fd, 1);
	pthread_mutex_unlock(&e->dev.lock);
	ok(eventfd_read(call1, &v) == 0 && v == 1, "call fd is the frontend's eventfd");

	is(vhost_frontend_set_vring_call(f, 0, call2), 0, "SET_VRING_CALL on a running ring");
	is(DEV(e, execs), execs0 + 1, "swapped through queue_exec");
	pthread_mutex_lock(&e->dev.lock);
	eventfd_write(e->dev.vr[0]->call_fd, 1);
	pthread_mutex_unlock(&e->dev.lock);
	ok(eventfd_read(call2, &v) == 0 && v == 1, "new call fd in use");
	ok(eventfd_read(call1, &v) < 0, "old call fd no longer signalled");

	is(vhost_frontend_set_vring_err(f, 0, -1), 0, "SET_VRING_ERR with NOFD");

	mem_before = DEV(e, mem[0]);
	desc_before = DEV(e, desc_ptr[0]);
	is(set_mem(e, f), 0, "SET_MEM_TABLE while the ring runs");
	is(DEV(e, execs), execs0 + 3, "memory swapped through queue_exec");
	ok(DEV(e, mem[0]) != mem_before, "vring uses the new table");
	ok(DEV(e, desc_ptr[0]) != desc_before, "ring pointers re-translated (new mapping)");
	ok(markers_ok(e, 0), "new pointers see the same guest memory");
	is(DEV(e, running[0]), 1, "ring still running");
	is(DEV(e, starts), starts0 + 1, "not restarted");

	/* A new kick fd on a running ring: stop, replace, start again. */
	is(vhost_frontend_set_vring_kick(f, 0, -1), 0, "SET_VRING_KICK (polling) on a running ring");
	is(DEV(e, starts), starts0 + 2, "ring restarted around the kick change");
	is(DEV(e, kick_fd[0]), -1, "polling mode: no kick fd");

	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1 && !e->dev.running[0]),
	   "disconnect stops the ring");
	close(call1);
	close(call2);
	close(kick);
}

static void test_no_protocol_features(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC);
	int starts0 = DEV(e, starts), disc = DEV(e, disconnects);
	unsigned base = 0;
	uint64_t feat;

	diag("legacy frontend: no protocol features, rings enabled at kick");
	if (!f)
		return;
	is(vhost_frontend_set_owner(f), 0, "SET_OWNER");
	is(vhost_frontend_set_features(f, 1ull << VIRTIO_F_VERSION_1), 0, "SET_FEATURES without bit 30");
	is(set_mem(e, f), 0, "SET_MEM_TABLE");
	is(vhost_frontend_set_vring_num(f, 1, 64), 0, "num");
	is(vhost_frontend_set_vring_addr(f, 1, 0, ring_uva(1, T_DESC), ring_uva(1, T_USED),
					 ring_uva(1, T_AVAIL), 0), 0, "addr");
	/* No REPLY_ACK here: a round trip makes sure the server caught up. */
	is(vhost_frontend_get_features(f, &feat), 0, "sync");
	is(DEV(e, starts), starts0, "not started before the kick fd");
	is(vhost_frontend_set_vring_kick(f, 1, kick), 0, "kick");
	is(vhost_frontend_get_features(f, &feat), 0, "sync");
	is(DEV(e, starts), starts0 + 1, "started at SET_VRING_KICK");
	is(vhost_frontend_get_vring_base(f, 1, &base), 0, "GET_VRING_BASE");
	is(base, DEV(e, stop_advance), "base after stop");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
	close(kick);
}

static void test_packed(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int disc = DEV(e, disconnects), starts0 = DEV(e, starts);
	unsigned base = 0;

	diag("packed ring: any size, pdesc/event pointers, wrap bit in base");
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT | (1ull << VIRTIO_F_RING_PACKED)), 0, "negotiated packed");
	is(set_mem(e, f), 0, "memory");
	is(vhost_frontend_set_vring_num(f, 0, 100), 0, "num 100 allowed for packed");
	is(vhost_frontend_set_vring_base(f, 0, 0x8000 | 42), 0, "base with wrap counter");
	is(vhost_frontend_set_vring_addr(f, 0, 0, ring_uva(0, T_DESC), ring_uva(0, T_USED),
					 ring_uva(0, T_AVAIL), 0), 0, "addr");
	is(vhost_frontend_set_vring_kick(f, 0, -1), 0, "kick NOFD");
	is(vhost_frontend_set_vring_enable(f, 0, true), 0, "enable");
	is(DEV(e, starts), starts0 + 1, "started");
	ok(DEV(e, packed[0]) && DEV(e, num[0]) == 100, "packed virtq of 100");
	ok(markers_ok(e, 0), "packed areas translated");
	is(vhost_frontend_get_vring_base(f, 0, &base), 0, "GET_VRING_BASE");
	is(base & 0xffff, 0x8000u | (42u + DEV(e, stop_advance)), "packed avail base keeps the wrap bit");
	is(base >> 16, 0x8000u | 42u, "used index and wrap in the high half");
	/* What QEMU 7.2 sends for a fresh packed ring: both wrap counters set. */
	is(vhost_frontend_set_vring_base(f, 0, 0x80008000u), 0, "32-bit packed base (QEMU style)");
	is(vhost_frontend_set_vring_kick(f, 0, -1), 0, "kick NOFD");
	is(DEV(e, starts), starts0 + 2, "restarted");
	is(DEV(e, start_base[0]), 0, "from avail index 0");
	pthread_mutex_lock(&e->dev.lock);
	ok(e->dev.vr[0]->vq.avail_wrap_counter && e->dev.vr[0]->vq.used_wrap_counter,
	   "with the wrap counters set");
	pthread_mutex_unlock(&e->dev.lock);
	is(vhost_frontend_get_vring_base(f, 0, &base), 0, "GET_VRING_BASE");
	is(base, 0x80008000u + DEV(e, stop_advance), "avail advanced, used unchanged");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
}

static void test_config(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	uint8_t buf[T_CONFIG_SIZE], w[4] = { 1, 2, 3, 4 };
	static const uint8_t zeroes[VHOST_USER_MAX_CONFIG_SIZE];
	uint8_t big[VHOST_USER_MAX_CONFIG_SIZE];
	int disc = DEV(e, disconnects);
	uint64_t feat;

	diag("GET_CONFIG / SET_CONFIG");
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	is(vhost_frontend_get_config(f, 0, buf, T_CONFIG_SIZE), 0, "whole config space");
	ok(memcmp(buf, e->dev.config, T_CONFIG_SIZE) == 0, "bytes from ops->get_config");
	is(vhost_frontend_get_config(f, 20, buf, 8), 0, "config at offset 20");
	ok(memcmp(buf, e->dev.config + 20, 8) == 0, "offset honoured");
	is(vhost_frontend_get_config(f, T_CONFIG_SIZE, buf, 0), 0, "empty read at the end");
	/* SPDK's virtio-user reads offset 0, size 256 and wants 256 bytes. */
	memset(big, 0xaa, sizeof(big));
	is(vhost_frontend_get_config(f, 0, big, sizeof(big)), 0, "256-byte read answered");
	ok(memcmp(big, e->dev.config, T_CONFIG_SIZE) == 0 &&
	   !memcmp(big + T_CONFIG_SIZE, zeroes, sizeof(big) - T_CONFIG_SIZE),
	   "device bytes, then zeroes past the config size");
	memset(big, 0xaa, sizeof(big));
	is(vhost_frontend_get_config(f, T_CONFIG_SIZE + 4, big, 8), 0, "read past the config size");
	ok(!memcmp(big, zeroes, 8), "reads zeroes");
	is(vhost_frontend_get_config(f, 250, big, 8), -EIO,
	   "read beyond 256 bytes refused with an empty reply");
	is(vhost_frontend_get_config(f, 0xffffffffu, big, 8), -EIO,
	   "read at an overflowing offset refused");
	is(vhost_frontend_get_features(f, &feat), 0, "connection alive after refused reads");
	is(vhost_frontend_set_config(f, 32, w, 4, VHOST_SET_CONFIG_TYPE_FRONTEND), 0, "SET_CONFIG acked");
	is(DEV(e, set_config_calls), 1, "ops->set_config called");
	ok(DEV(e, set_cfg_off) == 32 && DEV(e, set_cfg_len) == 4 &&
	   memcmp(e->dev.set_cfg_buf, w, 4) == 0, "with offset, length and bytes");
	e->dev.refuse_set_config = true;
	is(vhost_frontend_set_config(f, 32, w, 4, 0), -EIO, "refused SET_CONFIG is nacked");
	e->dev.refuse_set_config = false;
	is(vhost_frontend_set_config(f, T_CONFIG_SIZE - 2, w, 4, 0), -EIO,
	   "SET_CONFIG past the end is nacked");
	is(vhost_frontend_get_features(f, &feat), 0, "connection alive after nacks");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
}

/*
 * Ring sizes we cannot serve: refused, the connection stays. With
 * REPLY_ACK a NACK; without an ack the ring reports on its error fd and
 * never starts until a valid size arrives.
 */
static void test_ring_size_refused(struct env *e)
{
	static const unsigned bad_sizes[] = { 0, 100, 2048, 65536 };
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int disc = DEV(e, disconnects), starts0 = DEV(e, starts);
	unsigned base = 0;
	uint64_t feat, v;

	diag("SET_VRING_NUM beyond the largest size: refused, not fatal");
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated (REPLY_ACK on)");
	is(set_mem(e, f), 0, "memory");
	for (unsigned i = 0; i < ARRAY_SIZE(bad_sizes); i++)
		is(vhost_frontend_set_vring_num(f, 0, bad_sizes[i]), -EIO,
		   "split ring of %u: NACK", bad_sizes[i]);
	is(vhost_frontend_get_features(f, &feat), 0, "connection alive after the NACKs");
	is(env_start_ring(f, 0, kick, call, T_MAX_QSIZE, 0), 0, "a ring of the largest size starts");
	ok(WAIT_FOR(e, e->dev.starts == starts0 + 1), "started");
	is(vhost_frontend_get_vring_base(f, 0, &base), 0, "stopped");

	/* The same without asking for an ack: nobody to tell but the error fd. */
	vhost_frontend_set_reply_ack(f, false);
	is(vhost_frontend_set_vring_err(f, 1, err), 0, "SET_VRING_ERR");
	is(vhost_frontend_set_vring_num(f, 1, 2048), 0, "SET_VRING_NUM 2048 without an ack");
	is(vhost_frontend_get_features(f, &feat), 0, "connection alive");
	ok(read(err, &v, sizeof(v)) == sizeof(v), "the ring's error eventfd fired");
	is(vhost_frontend_set_vring_base(f, 1, 0), 0, "base");
	is(vhost_frontend_set_vring_addr(f, 1, 0, ring_uva(1, T_DESC), ring_uva(1, T_USED),
					 ring_uva(1, T_AVAIL), 0), 0, "addr");
	is(vhost_frontend_set_vring_kick(f, 1, kick), 0, "kick");
	is(vhost_frontend_set_vring_enable(f, 1, true), 0, "enable");
	is(vhost_frontend_get_features(f, &feat), 0, "sync");
	is(DEV(e, starts), starts0 + 1, "the refused ring does not start");
	is(vhost_frontend_set_vring_num(f, 1, 512), 0, "a valid size afterwards");
	is(vhost_frontend_get_features(f, &feat), 0, "sync");
	is(DEV(e, starts), starts0 + 2, "repairs it: the ring starts");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
	close(kick);
	close(call);
	close(err);
}

struct pipeline {
	int fd;
	unsigned n, sent;
	int err;
};

/* Send n requests, blocking: the backend may stop reading meanwhile. */
static void *pipeline_send(void *arg)
{
	struct pipeline *p = arg;
	struct vhost_msg_hdr h = { .flags = VHOST_USER_VERSION };

	for (p->sent = 0; p->sent < p->n; p->sent++) {
		h.request = p->sent % 2 ? VHOST_USER_GET_PROTOCOL_FEATURES : VHOST_USER_GET_FEATURES;
		if (send(p->fd, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) {
			p->err = errno;
			break;
		}
	}
	return NULL;
}

/*
 * A frontend that sends thousands of requests before reading a single
 * reply fills the backend's socket with replies: the backend must wait
 * (stop reading), not hang up. Then every reply arrives, in order.
 */
static void test_pipelined_requests(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	struct pipeline p = { .n = 5000 };
	unsigned got = 0, wrong = 0;
	int disc = DEV(e, disconnects);
	pthread_t t;
	uint64_t feat;

	diag("%u requests pipelined before any reply is read", p.n);
	if (!f)
		return;
	p.fd = vhost_frontend_fd(f);
	if (pthread_create(&t, NULL, pipeline_send, &p))
		tap_bail("pthread_create");
	/* Give the replies time to pile up (not a timed check: any wait works). */
	for (int i = 0; i < 100 && p.sent < p.n && !p.err; i++)
		usleep(10000);
	for (; got < p.n; got++) {
		struct vhost_msg m;
		uint32_t want = got % 2 ? VHOST_USER_GET_PROTOCOL_FEATURES :
			       VHOST_USER_GET_FEATURES;

		if (vhost_frontend_recv(f, &m))
			break;
		if (m.hdr.request != want || m.hdr.size != 8)
			wrong++;
	}
	pthread_join(t, NULL);
	is(p.err, 0, "every request sent");
	is(got, p.n, "every reply arrived");
	is(wrong, 0, "each the right reply, in order");
	is(vhost_frontend_get_features(f, &feat), 0, "the connection still works");
	is(DEV(e, disconnects), disc, "never disconnected");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
}

static void test_mem_slots(struct env *e)
{
	enum { N = 32, SLOT = 64 << 10 };
	int fds0 = count_fds();
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), memfd = memfd_create("slots", MFD_CLOEXEC);
	int disc = DEV(e, disconnects), starts0, stops0, fails = 0;
	struct gmem_region_desc r;
	uint64_t slot17 = 0x7e0000000000ull + 17 * 2 * SLOT, mark = 0x4444444444444444ull;
	uint8_t *map;

	diag("ADD_MEM_REG x %d, ring in slot 17, REM_MEM_REG", N);
	if (!f || memfd < 0 || ftruncate(memfd, (off_t)N * SLOT))
		return;
	map = mmap(NULL, (size_t)N * SLOT, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	memcpy(map + 17 * SLOT, &mark, 8);
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	for (unsigned i = 0; i < N; i++) {
		/* gpa ascending, uva descending with holes: sorting matters. */
		r = (struct gmem_region_desc){ .gpa = (uint64_t)i * SLOT, .size = SLOT,
					       .uva = 0x7e0000000000ull + (uint64_t)i * 2 * SLOT,
					       .mmap_offset = (uint64_t)i * SLOT };
		fails += vhost_frontend_add_mem_reg(f, &r, memfd) != 0;
	}
	is(fails, 0, "32 regions added, each acked");
	starts0 = DEV(e, starts);
	stops0 = DEV(e, stops);
	is(vhost_frontend_set_vring_num(f, 0, 16), 0, "num");
	is(vhost_frontend_set_vring_addr(f, 0, 0, slot17, slot17 + 0x1000, slot17 + 0x800, 0), 0,
	   "addr in slot 17");
	is(vhost_frontend_set_vring_kick(f, 0, kick), 0, "kick");
	is(vhost_frontend_set_vring_enable(f, 0, true), 0, "enable");
	is(DEV(e, starts), starts0 + 1, "ring in slot 17 started");
	is(DEV(e, mark_desc[0]), mark, "slot 17 translated to the right offset");

	r = (struct gmem_region_desc){ .gpa = 3 * SLOT, .size = SLOT,
				       .uva = 0x7e0000000000ull + 3 * 2 * SLOT, .mmap_offset = 3 * SLOT };
	is(vhost_frontend_rem_mem_reg(f, &r, memfd), 0, "REM_MEM_REG with an fd (QEMU 7.2 style)");
	/* In-flight requests might write into any removed region: the ring
	 * is drained (stopped) before the ack, then restarted. */
	ok(DEV(e, running[0]) == 1 && DEV(e, stops) == stops0 + 1 &&
	   DEV(e, starts) == starts0 + 2, "unrelated removal drains the ring, then restarts it");
	is(vhost_frontend_rem_mem_reg(f, &r, -1), -EIO, "removing it twice is nacked");
	is(vhost_frontend_add_mem_reg(f, &r, memfd), 0, "re-added");
	r = (struct gmem_region_desc){ .gpa = 17 * SLOT, .size = SLOT, .uva = slot17,
				       .mmap_offset = 17 * SLOT };
	is(vhost_frontend_rem_mem_reg(f, &r, -1), 0, "REM_MEM_REG of the ring's region");
	is(DEV(e, stops), stops0 + 2, "ring stopped: its memory is gone");
	is(DEV(e, running[0]), 0, "not running");
	is(vhost_frontend_add_mem_reg(f, &r, memfd), 0, "region back");
	is(DEV(e, starts), starts0 + 3, "ring restarts once its memory is back");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
	munmap(map, (size_t)N * SLOT);
	close(memfd);
	close(kick);
	is(count_fds(), fds0, "no fd left behind (32 region fds closed by the server)");
}

static void test_async_stop(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	struct vhost_msg_vring_state st = { .index = 0 };
	int kick = eventfd(0, EFD_CLOEXEC), disc = DEV(e, disconnects);
	uint64_t feat = 0;
	unsigned base = 0;
	uint32_t got;

	diag("queue_stop completing later: replies wait, order is kept");
	if (!f)
		return;
	e->dev.async_stop = true;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	is(set_mem(e, f), 0, "memory");
	is(env_start_ring(f, 0, kick, -1, 256, 0), 0, "ring started");
	/* Pipeline GET_VRING_BASE and GET_FEATURES without waiting. */
	is(vhost_frontend_send(f, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &st, sizeof(st),
			       NULL, 0), 0, "GET_VRING_BASE sent");
	is(vhost_frontend_send(f, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0), 0,
	   "GET_FEATURES sent right behind it");
	is(vhost_frontend_recv_reply(f, VHOST_USER_GET_VRING_BASE, &st, sizeof(st), &got), 0,
	   "first reply is the vring base");
	is(st.num, DEV(e, stop_advance), "base after the async stop");
	is(vhost_frontend_recv_reply(f, VHOST_USER_GET_FEATURES, &feat, sizeof(feat), NULL), 0,
	   "then the features");
	/* Disconnect with a ring running and an async stop. */
	is(env_start_ring(f, 0, kick, -1, 256, 0), 0, "ring restarted");
	is(vhost_frontend_get_vring_base(f, 0, &base), 0, "and stopped again");
	is(env_start_ring(f, 0, kick, -1, 256, 0), 0, "and started again");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1 && !e->dev.running[0]),
	   "disconnect waits for the async stop");
	e->dev.async_stop = false;
	ok(healthy_and_close(e), "healthy session afterwards");
	close(kick);
}

static void test_reset_owner(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), disc = DEV(e, disconnects), stops0 = DEV(e, stops);
	int starts0;
	uint64_t v;

	diag("RESET_OWNER stops rings and forgets their setup");
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	is(set_mem(e, f), 0, "memory");
	is(env_start_ring(f, 1, kick, -1, 256, 0), 0, "ring started");
	is(vhost_frontend_reset_owner(f), 0, "RESET_OWNER acked");
	is(DEV(e, stops), stops0 + 1, "ring stopped");
	starts0 = DEV(e, starts);
	is(vhost_frontend_set_vring_enable(f, 1, true), 0, "enable again");
	is(DEV(e, starts), starts0, "not restarted: configuration was reset");
	is(vhost_frontend_get_features(f, &v), 0, "connection usable");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
	close(kick);
}

static void test_unknown_with_ack(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	uint64_t ack = 0, v;
	int disc = DEV(e, disconnects);

	diag("unsupported request with need_reply under REPLY_ACK: nack, keep going");
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	is(vhost_frontend_send(f, VHOST_USER_SET_VRING_ENDIAN,
			       VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &ack, 8, NULL, 0), 0,
	   "SET_VRING_ENDIAN sent");
	is(vhost_frontend_recv_reply(f, VHOST_USER_SET_VRING_ENDIAN, &ack, 8, NULL), 0, "ack received");
	ok(ack != 0, "ack says failure");
	is(vhost_frontend_get_features(f, &v), 0, "connection alive");
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 1), "disconnected");
}

static void test_one_at_a_time(struct env *e)
{
	struct vhost_frontend *f1 = fe_connect(e), *f2 = fe_connect(e);
	int disc = DEV(e, disconnects);
	uint64_t v = 0;

	diag("a second frontend waits until the first one leaves");
	if (!f1 || !f2)
		return;
	is(vhost_frontend_get_features(f1, &v), 0, "first frontend served");
	vhost_frontend_set_timeout(f2, 300);
	is(vhost_frontend_send(f2, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0),
	   0, "second frontend sends GET_FEATURES");
	is(vhost_frontend_recv_reply(f2, VHOST_USER_GET_FEATURES, &v, 8, NULL), -EAGAIN,
	   "no answer while the first is connected");
	vhost_frontend_destroy(f1);
	vhost_frontend_set_timeout(f2, 5000);
	v = 0;
	is(vhost_frontend_recv_reply(f2, VHOST_USER_GET_FEATURES, &v, 8, NULL), 0,
	   "answered once the first has gone");
	ok(v & (1ull << VHOST_USER_F_PROTOCOL_FEATURES), "with the features");
	vhost_frontend_destroy(f2);
	ok(WAIT_FOR(e, e->dev.disconnects == disc + 2), "both disconnected");
}

static void destroy_in_ctrl(void *arg)
{
	struct env *e = arg;

	vhost_server_destroy(e->srv);
	e->srv = NULL;
}

/* Destroy with a running ring whose stop completes later. */
static void test_destroy_connected(bool from_ctrl_thread)
{
	struct env e;
	struct vhost_frontend *f;
	int kick, fds0 = count_fds();
	uint64_t v;

	diag("destroy (%s) while a frontend is connected and a ring runs, async stop",
	     from_ctrl_thread ? "in the control thread" : "from another thread");
	env_init(&e, true);
	e.dev.async_stop = true;
	f = fe_connect(&e);
	kick = eventfd(0, EFD_CLOEXEC);
	if (!f)
		return;
	is(negotiate(f, FEAT_SPLIT), 0, "negotiated");
	is(set_mem(&e, f), 0, "memory");
	is(env_start_ring(f, 0, kick, -1, 64, 0), 0, "ring started");
	ok(DEV(&e, running[0]), "running");
	if (from_ctrl_thread) {
		loop_call(e.ctrl, destroy_in_ctrl, &e);
		ok(WAIT_FOR(&e, e.dev.disconnects == 1), "disconnected once the stop completed");
	} else {
		env_server_destroy(&e);
		is(DEV(&e, disconnects), 1, "destroy returned after the stop completed");
	}
	is(DEV(&e, stops), 1, "ring stopped");
	is(vhost_frontend_get_features(f, &v) < 0, 1, "frontend sees the connection closed");
	vhost_frontend_destroy(f);
	close(kick);
	env_fini(&e);
	is(count_fds(), fds0, "no fd left");
}

static void test_fd_modes(void)
{
	struct env e;
	struct vhost_frontend *f;
	int sv[2], lfd, ret;

	diag("inherited fds: a connected socket, then a listening socket");
	env_init(&e, false);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		tap_bail("socketpair");
	is(env_server_create(&e, NULL, sv[0]), 0, "server on a connected fd");
	ret = vhost_frontend_from_fd(sv[1], &f);
	vhost_frontend_set_timeout(f, 5000);
	if (!ret) {
		uint64_t v;

		is(vhost_frontend_get_features(f, &v), 0, "GET_FEATURES over the socketpair");
		is(v, T_DEV_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES), "features");
		vhost_frontend_destroy(f);
	}
	ok(WAIT_FOR(&e, e.dev.disconnects == 1), "disconnected; nothing to listen on");
	env_server_destroy(&e);

	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e.path);
		ok(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 8) == 0,
		   "listening socket made by the caller");
	}
	is(env_server_create(&e, NULL, lfd), 0, "server on a listening fd");
	ok(healthy_and_close(&e), "session through the inherited listener");
	ok(healthy_and_close(&e), "and a reconnect");
	env_fini(&e);
}

static void test_stale_socket(void)
{
	struct env e, e2;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, disc;
	FILE *fp;

	diag("socket path: stale file replaced, live one refused");
	env_init(&e, false);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e.path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "a bound socket file nobody listens on");
	close(fd);
	is(env_server_create(&e, e.path, -1), 0, "stale socket replaced");
	ok(healthy_and_close(&e), "and served");

	env_init(&e2, false);
	disc = DEV(&e, disconnects);
	is(env_server_create(&e2, e.path, -1), -EADDRINUSE, "a live server's path is refused");
	ok(WAIT_FOR(&e, e.dev.disconnects == disc + 1), "its probe connection came and went");
	ok(healthy_and_close(&e), "first server unaffected");
	env_server_destroy(&e);
	ok(access(e.path, F_OK) != 0, "socket file removed on destroy");

	fp = fopen(e.path, "w");
	if (fp)
		fclose(fp);
	is(env_server_create(&e2, e.path, -1), -EADDRINUSE, "a regular file is never replaced");
	ok(access(e.path, F_OK) == 0, "regular file still there");
	env_fini(&e2);
	env_fini(&e);
}

int main(void)
{
	struct env e;
	int fds0;

	log_max_level = LOG_ERR;
	fds0 = count_fds();
	env_init(&e, true);
	e.dev.stop_advance = 3;
	test_handshake(&e);
	test_live_swaps(&e);
	test_no_protocol_features(&e);
	test_packed(&e);
	test_config(&e);
	test_ring_size_refused(&e);
	test_pipelined_requests(&e);
	test_mem_slots(&e);
	test_async_stop(&e);
	test_reset_owner(&e);
	test_unknown_with_ack(&e);
	test_one_at_a_time(&e);
	ok(healthy_and_close(&e), "healthy session at the end");
	env_fini(&e);
	test_fd_modes();
	test_destroy_connected(false);
	test_destroy_connected(true);
	test_stale_socket();
	is(count_fds(), fds0, "no fd leaked overall");
	return tap_done();
}
