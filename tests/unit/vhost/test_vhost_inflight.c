/* SPDX-License-Identifier: MIT */
/*
 * test_vhost_inflight.c - GET_INFLIGHT_FD / SET_INFLIGHT_FD
 * (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) on the backend: the area we hand
 * out (size per the spec's layout, sealed, zeroed), rings picking their
 * region up at start, and every malformed request (missing fd, sizes,
 * queue counts, offsets, a non-file fd, feature not negotiated) closing
 * the connection while the server keeps serving.
 */
#include <fcntl.h>

#include "vhost_test.h"

#define PROTO_INFLIGHT (T_PROTO_ALL | (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
#define FEAT_SPLIT ((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
#define FEAT_PACKED (FEAT_SPLIT | (1ull << VIRTIO_F_RING_PACKED))

static int negotiate(struct vhost_frontend *f, uint64_t proto, uint64_t features)
{
	int ret;

	ret = vhost_frontend_set_protocol_features(f, proto);
	ret = ret ?: vhost_frontend_set_owner(f);
	ret = ret ?: vhost_frontend_set_features(f, features);
	return ret;
}

/* GET_INFLIGHT_FD; on success *fd is the area (caller closes). */
static int get_inflight(struct vhost_frontend *f, uint16_t nq, uint16_t qs,
			struct vhost_msg_inflight *out, int *fd)
{
	struct vhost_msg_inflight in = { .num_queues = nq, .queue_size = qs };

	return vhost_frontend_get_inflight_fd(f, &in, out, fd);
}

static int set_inflight(struct vhost_frontend *f, uint64_t size, uint64_t off, uint16_t nq,
			uint16_t qs, int fd)
{
	struct vhost_msg_inflight in = {
		.mmap_size = size, .mmap_offset = off, .num_queues = nq, .queue_size = qs,
	};

	return vhost_frontend_set_inflight_fd(f, &in, fd);
}

static int set_mem(struct env *e, struct vhost_frontend *f)
{
	struct gmem_region_desc r[2];
	int fds[2] = { e->memfd, e->memfd };

	env_regions(r);
	return vhost_frontend_set_mem_table(f, r, fds, 2);
}

/* The QEMU 7.2 order: features, GET, SET, memory, rings; then stop. */
static void test_session(struct env *e, bool packed)
{
	struct vhost_frontend *f = fe_connect(e);
	struct vhost_msg_inflight in;
	int afd = -1, kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	int starts0 = DEV(e, starts), seals;
	uint64_t need = 2 * virtq_inflight_size(128, packed);
	uint8_t *area = MAP_FAILED;
	unsigned base;
	bool zero = true;

	CHECK_TRUE(f);
	vhost_frontend_set_reply_ack(f, true);
	CHECK(negotiate(f, PROTO_INFLIGHT, packed ? FEAT_PACKED : FEAT_SPLIT));
	CHECK(get_inflight(f, 2, 128, &in, &afd));
	ok(afd >= 0 && in.mmap_size >= need && in.mmap_offset == 0 && in.num_queues == 2 &&
	   in.queue_size == 128, "%s: GET_INFLIGHT_FD: fd, %llu bytes (>= %llu), offset 0",
	   packed ? "packed" : "split", (unsigned long long)in.mmap_size,
	   (unsigned long long)need);
	CHECK_TRUE(afd >= 0);
	seals = fcntl(afd, F_GET_SEALS);
	ok(seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_SEAL),
	   "the area is sealed against shrinking");
	area = mmap(NULL, in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
	CHECK_TRUE(area != MAP_FAILED);
	for (uint64_t i = 0; i < in.mmap_size; i++)
		zero &= !area[i];
	ok(zero, "the area starts zeroed");
	CHECK(set_inflight(f, in.mmap_size, 0, 2, 128, afd));
	CHECK(set_mem(e, f));
	CHECK(env_start_ring(f, 1, kick, call, 128, packed ? 0x8000 : 0));
	ok(WAIT_FOR(e, e->dev.starts == starts0 + 1), "ring started with the area");
	/* virtq took its region over: vring 1's header says version 1. */
	{
		uint64_t rsz = virtq_inflight_size(128, packed);
		uint16_t ver, num;

		memcpy(&ver, area + rsz + 8, 2);
		memcpy(&num, area + rsz + 10, 2);
		ok(ver == 1 && num == 128, "vring 1 initialised its region (version %u, %u entries)",
		   ver, num);
	}
	CHECK(vhost_frontend_get_vring_base(f, 1, &base));
	ok(base == (packed ? 0x80008000u : 0u), "GET_VRING_BASE after a clean stop: %#x", base);
out:
	if (area != MAP_FAILED)
		munmap(area, in.mmap_size);
	if (afd >= 0)
		close(afd);
	close(kick);
	close(call);
	vhost_frontend_destroy(f);
}

/* A ring bigger than the area's queue size is not started. */
static void test_ring_too_big(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	struct vhost_msg_inflight in;
	int afd = -1, kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	int starts0 = DEV(e, starts);

	CHECK_TRUE(f);
	vhost_frontend_set_reply_ack(f, true);
	CHECK(negotiate(f, PROTO_INFLIGHT, FEAT_SPLIT));
	CHECK(get_inflight(f, 1, 64, &in, &afd));
	CHECK(set_inflight(f, in.mmap_size, 0, 1, 64, afd));
	CHECK(set_mem(e, f));
	CHECK(env_start_ring(f, 0, kick, call, 128, 0));
	CHECK(env_start_ring(f, 1, kick, call, 64, 0));
	usleep(50000);
	ok(DEV(e, starts) == starts0, "rings larger than / beyond the area are not started");
out:
	if (afd >= 0)
		close(afd);
	close(kick);
	close(call);
	vhost_frontend_destroy(f);
}

enum bad_kind {
	BAD_NO_FEATURE, BAD_NO_FD, BAD_SMALL, BAD_NQ0, BAD_NQ_BIG, BAD_QS_BIG, BAD_QS0,
	BAD_BEYOND_FILE, BAD_UNALIGNED, BAD_NOT_FILE, BAD_PAYLOAD, BAD_GET_QS0, BAD_GET_FD,
	BAD_HUGE,
};

static const char *const bad_name[] = {
	"feature not negotiated", "SET without fd", "mmap_size too small", "0 queues",
	"more queues than the device", "queue size beyond the limit", "queue size 0",
	"area beyond the end of the file", "unaligned offset", "fd is not a file",
	"payload of 20 bytes", "GET with queue size 0", "GET with an fd", "huge mmap_size",
};

static void test_bad(struct env *e, enum bad_kind k)
{
	struct vhost_frontend *f = fe_connect(e);
	struct vhost_msg_inflight in = { 0 }, got;
	uint32_t req = VHOST_USER_SET_INFLIGHT_FD, size = sizeof(in);
	int afd = -1, efd = eventfd(0, EFD_CLOEXEC), fd;
	bool closed = false;

	CHECK_TRUE(f);
	CHECK(negotiate(f, k == BAD_NO_FEATURE ? T_PROTO_ALL : PROTO_INFLIGHT, FEAT_SPLIT));
	if (k != BAD_NO_FEATURE)
		CHECK(get_inflight(f, 2, 128, &got, &afd));
	else
		got.mmap_size = 4096;
	in = (struct vhost_msg_inflight){
		.mmap_size = got.mmap_size, .num_queues = 2, .queue_size = 128,
	};
	fd = afd >= 0 ? afd : e->memfd;
	switch (k) {
	case BAD_NO_FEATURE: break;
	case BAD_NO_FD: fd = -1; break;
	case BAD_SMALL: in.mmap_size = virtq_inflight_size(128, false); break;
	case BAD_NQ0: in.num_queues = 0; break;
	case BAD_NQ_BIG: in.num_queues = T_NUM_QUEUES + 1; break;
	case BAD_QS_BIG: in.queue_size = T_MAX_QSIZE + 1; break;
	case BAD_QS0: in.queue_size = 0; break;
	case BAD_BEYOND_FILE: in.mmap_offset = 4096; break;
	case BAD_UNALIGNED: in.mmap_offset = 8; break;
	case BAD_NOT_FILE: fd = efd; break;
	case BAD_PAYLOAD: size = 20; break;
	case BAD_GET_QS0: req = VHOST_USER_GET_INFLIGHT_FD; in.queue_size = 0; fd = -1; break;
	case BAD_GET_FD: req = VHOST_USER_GET_INFLIGHT_FD; break;
	case BAD_HUGE: in.mmap_size = 1ull << 40; break;
	}
	CHECK(vhost_frontend_send(f, req, VHOST_USER_VERSION, &in, size, &fd, fd >= 0 ? 1 : 0));
	closed = fe_closed_by_peer(f);
out:
	ok(closed, "%s: connection closed", bad_name[k]);
	if (afd >= 0)
		close(afd);
	close(efd);
	vhost_frontend_destroy(f);
}

int main(void)
{
	struct env e;
	int fds0;

	log_max_level = LOG_ERR;
	fds0 = count_fds();
	env_init(&e, true);
	{
		struct vhost_frontend *f = fe_connect(&e);
		uint64_t v = 0;

		ok(f && !vhost_frontend_get_protocol_features(f, &v) &&
		   (v & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)), "INFLIGHT_SHMFD offered");
		vhost_frontend_destroy(f);
	}
	test_session(&e, false);
	test_session(&e, true);
	test_ring_too_big(&e);
	for (int k = BAD_NO_FEATURE; k <= BAD_HUGE; k++)
		test_bad(&e, k);
	ok(healthy_and_close(&e), "healthy session after all that");
	env_fini(&e);
	is(count_fds(), fds0, "no fd leaked");
	return tap_done();
}
