/* SPDX-License-Identifier: MIT */
/*
 * vblk_client.c - the functional tests' virtio-blk guest over vhost-user,
 * and the vblkd process helpers. See vblk_client.h. Trusts nothing the
 * daemon does: every wait has a timeout, every reply is checked.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "tap.h"
#include "common/compiler.h"
#include "vblk_client.h"

#define RING_STRIDE   0x10000u   /* per queue: desc @0, driver @0x4000, device @0x6000 */
#define RING_DRIVER   0x4000u
#define RING_DEVICE   0x6000u
#define MAX_QSIZE     1024u      /* what fits RING_STRIDE */
/* Frontend virtual addresses: region i at UVA_BASE + i * UVA_GAP + offset,
 * so neighbouring regions are never contiguous in UVA space. */
#define UVA_BASE      0x7e0000000000ull
#define UVA_GAP       0x40000000ull
#define MAX_REGIONS   64u
#define MAX_SEGS      8u         /* data descriptors with VBLK_REQ_SCATTER */
#define MAX_DESCS     (2 + 2 * MAX_SEGS)

struct client_queue {
	struct virtq_drv drv;
	int kick_fd, call_fd, err_fd;
	unsigned inflight;
	bool stuck;                 /* a vblk_client_io request timed out */
};

struct vblk_client {
	struct vhost_frontend *f;
	struct vblk_client_opts o;
	uint64_t offered, acked, proto;
	struct virtio_blk_config cfg;
	int memfd;
	uint8_t *mem;               /* our view of guest memory */
	size_t mem_size;
	size_t data_off, bump;      /* data area: [data_off, mem_size) */
	unsigned inflight;
	uint64_t rng;
	unsigned nregions;
	struct gmem_region_desc regions[MAX_REGIONS];
	struct client_queue q[VBLK_CLIENT_MAX_QUEUES];
	/* .inflight: the area the daemon gave us (GET_INFLIGHT_FD), mapped */
	int inflight_fd;
	struct vhost_msg_inflight area;
	uint8_t *inflight_map;
	bool reconnecting;          /* rings keep their state (client_ring) */
	/* vblk_client_io requests that timed out: still on a ring, freed last. */
	struct vblk_req **orphans;
	unsigned norphans;
	int backend_fd;             /* our end of the backend request channel, or -1 */
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t client_rand(struct vblk_client *c)
{
	/* xorshift64: reproducible layouts. */
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static uint64_t ring_uva(const struct vblk_client *c, unsigned q, unsigned area)
{
	/* Region 0 always starts at offset 0 and holds every ring. With an
	 * IOMMU the frontend gives IOVAs instead. */
	if (c->o.iommu)
		return VBLK_CLIENT_GPA_BASE + (uint64_t)q * RING_STRIDE + area;
	return c->regions[0].uva + (uint64_t)q * RING_STRIDE + area;
}

static void *ring_host(const struct vblk_client *c, unsigned q, unsigned area)
{
	return c->mem + (size_t)q * RING_STRIDE + area;
}

/* ---- connection ------------------------------------------------------------ */

static int connect_retry(const char *path, struct vhost_frontend **out)
{
	uint64_t end = now_ms() + 5000;
	int ret;

	for (;;) {
		ret = vhost_frontend_connect(path, out);
		if (ret != -ENOENT && ret != -ECONNREFUSED)
			return ret;
		if (now_ms() > end)
			return ret;
		usleep(10000);
	}
}

/* Lay out guest memory and describe its regions. */
static int client_layout(struct vblk_client *c)
{
	size_t ring_end = (size_t)c->o.num_queues * RING_STRIDE;
	size_t off;

	c->data_off = ring_end;
	c->bump = ring_end;
	if (c->mem_size <= ring_end + 4096)
		return -EINVAL;
	if (!c->o.region_size) {
		c->regions[0] = (struct gmem_region_desc){
			.gpa = VBLK_CLIENT_GPA_BASE, .size = c->mem_size, .uva = UVA_BASE,
			.mmap_offset = 0,
		};
		c->nregions = 1;
		return 0;
	}
	if (c->o.region_size % 4096)
		return -EINVAL;
	c->regions[0] = (struct gmem_region_desc){
		.gpa = VBLK_CLIENT_GPA_BASE, .size = ring_end, .uva = UVA_BASE, .mmap_offset = 0,
	};
	c->nregions = 1;
	for (off = ring_end; off < c->mem_size; off += c->o.region_size) {
		size_t len = MIN(c->o.region_size, c->mem_size - off);

		if (c->nregions == MAX_REGIONS)
			return -E2BIG;
		c->regions[c->nregions] = (struct gmem_region_desc){
			.gpa = VBLK_CLIENT_GPA_BASE + off, .size = len,
			.uva = UVA_BASE + (uint64_t)c->nregions * UVA_GAP + off, .mmap_offset = off,
		};
		c->nregions++;
	}
	return 0;
}

/* What the daemon is told about region i (GPAs moved with an IOMMU). */
static struct gmem_region_desc client_region_wire(const struct vblk_client *c, unsigned i)
{
	struct gmem_region_desc d = c->regions[i];

	if (c->o.iommu)
		d.gpa += VBLK_CLIENT_IOMMU_GPA_SHIFT;
	return d;
}

static int client_set_memory(struct vblk_client *c)
{
	int fds[VHOST_USER_MAX_MEM_REGIONS];
	struct gmem_region_desc d[VHOST_USER_MAX_MEM_REGIONS];
	unsigned first = MIN(c->nregions, VHOST_USER_MAX_MEM_REGIONS), i;
	int ret;

	for (i = 0; i < first; i++) {
		fds[i] = c->memfd;
		d[i] = client_region_wire(c, i);
	}
	ret = vhost_frontend_set_mem_table(c->f, d, fds, first);
	for (i = first; !ret && i < c->nregions; i++) {
		d[0] = client_region_wire(c, i);
		ret = vhost_frontend_add_mem_reg(c->f, &d[0], c->memfd);
	}
	/* Every region mapped read-write at IOVA = our GPA. */
	for (i = 0; !ret && c->o.iommu && c->o.iotlb_prefill && i < c->nregions; i++)
		ret = vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, c->regions[i].gpa,
					c->regions[i].size, VHOST_ACCESS_RW);
	return ret;
}

/* Fresh driver state for queue q (zeroed ring areas). */
static int client_queue_reset(struct vblk_client *c, unsigned q)
{
	struct client_queue *cq = &c->q[q];

	if (cq->drv.next_free)
		virtq_drv_fini(&cq->drv);
	memset(ring_host(c, q, 0), 0, RING_STRIDE);
	cq->inflight = 0;
	cq->stuck = false;
	return virtq_drv_init(&cq->drv, c->o.queue_size, c->o.packed, !c->o.no_event_idx,
			      ring_host(c, q, 0), ring_host(c, q, RING_DRIVER),
			      ring_host(c, q, RING_DEVICE));
}

/* Ring base at a fresh start: packed rings start with both wrap counters 1. */
static unsigned client_base(const struct vblk_client *c)
{
	return c->o.packed ? 0x80008000u : 0;
}

static int client_set_addr(struct vblk_client *c, unsigned q)
{
	return vhost_frontend_set_vring_addr(c->f, q, 0, ring_uva(c, q, 0),
					     ring_uva(c, q, RING_DEVICE),
					     ring_uva(c, q, RING_DRIVER), 0);
}

/* Per-ring messages, in the order a frontend sends them (client_ring). */
enum ring_step { R_END, R_NUM, R_BASE, R_ADDR, R_CALL, R_KICK, R_ERR, R_ENABLE };

/*
 * Fresh driver state for queue q, then the frontend's per-ring messages in
 * its order (@steps ends with R_END). R_ERR only with err_fds.
 */
static int client_ring(struct vblk_client *c, unsigned q, const uint8_t *steps)
{
	struct client_queue *cq = &c->q[q];
	/* A reconnect resumes the ring as it is, at the used index (QEMU's
	 * virtio_queue_restore_last_avail_idx for a backend that died). */
	unsigned base = c->reconnecting ? READ_ONCE(cq->drv.used->idx) : client_base(c);
	int ret = c->reconnecting ? 0 : client_queue_reset(c, q);

	for (; !ret && *steps != R_END; steps++) {
		switch (*steps) {
		case R_NUM:
			ret = vhost_frontend_set_vring_num(c->f, q, c->o.queue_size);
			break;
		case R_BASE:
			ret = vhost_frontend_set_vring_base(c->f, q, base);
			break;
		case R_ADDR:
			ret = client_set_addr(c, q);
			break;
		case R_CALL:
			ret = vhost_frontend_set_vring_call(c->f, q, cq->call_fd);
			break;
		case R_KICK:
			ret = vhost_frontend_set_vring_kick(c->f, q, cq->kick_fd);
			break;
		case R_ERR:
			if (cq->err_fd >= 0)
				ret = vhost_frontend_set_vring_err(c->f, q, cq->err_fd);
			break;
		case R_ENABLE:
			ret = vhost_frontend_set_vring_enable(c->f, q, true);
			break;
		}
	}
	return ret;
}

/* Run client_ring on every queue, then (if @enable) enable every queue. */
static int client_rings(struct vblk_client *c, const uint8_t *steps, bool enable)
{
	unsigned q;
	int ret = 0;

	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = client_ring(c, q, steps);
	for (q = 0; enable && !ret && q < c->o.num_queues; q++)
		ret = vhost_frontend_set_vring_enable(c->f, q, true);
	return ret;
}

/* QEMU 7.2, per ring. */
static const uint8_t qemu_ring[] = { R_NUM, R_BASE, R_ADDR, R_KICK, R_CALL, R_ERR, R_ENABLE,
				     R_END };

/* Virtio features we ask for, and those we cannot do without. */
static void client_features(const struct vblk_client *c, uint64_t *want, uint64_t *need)
{
	*want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
		(1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
		(1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_TOPOLOGY) |
		(1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |
		(1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_MQ) |
		(1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	*need = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	if (!c->o.no_event_idx)
		*need |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (!c->o.no_indirect)
		*need |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (c->o.packed)
		*need |= 1ull << VIRTIO_F_RING_PACKED;
	if (c->o.iommu)
		*need |= 1ull << VIRTIO_F_ACCESS_PLATFORM;
	if (c->o.flavor == VBLK_FLAVOR_LEGACY) {
		*want &= ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
		*need &= ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	}
}

/* GET_FEATURES and check; c->acked gets what we will ack. */
static int client_get_features(struct vblk_client *c)
{
	uint64_t want, need;
	int ret;

	client_features(c, &want, &need);
	ret = vhost_frontend_get_features(c->f, &c->offered);
	if (ret)
		return ret;
	if ((c->offered & need) != need)
		return -ENOTSUP;
	c->acked = c->offered & (want | need);
	return 0;
}

/* GET_PROTOCOL_FEATURES, check for @need, SET_PROTOCOL_FEATURES @need. */
static int client_protocol(struct vblk_client *c, uint64_t need)
{
	int ret;

	if (c->nregions > VHOST_USER_MAX_MEM_REGIONS)
		need |= 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS;
	ret = vhost_frontend_get_protocol_features(c->f, &c->proto);
	if (ret)
		return ret;
	if ((c->proto & need) != need)
		return -ENOTSUP;
	c->proto = need;
	return vhost_frontend_set_protocol_features(c->f, c->proto);
}

static int client_check_queue_num(struct vblk_client *c)
{
	uint64_t v;
	int ret = vhost_frontend_get_queue_num(c->f, &v);

	return ret ? ret : v < c->o.num_queues ? -ENOTSUP : 0;
}

#define PROTO(x) (1ull << VHOST_USER_PROTOCOL_F_##x)

/*
 * .inflight: the area, as vhost_user_blk_start does before vhost_dev_start:
 * the daemon's on the first connect, the same one again on a reconnect.
 */
static int client_inflight(struct vblk_client *c)
{
	struct vhost_msg_inflight in = { .num_queues = (uint16_t)c->o.num_queues,
					 .queue_size = (uint16_t)c->o.queue_size };
	int ret;

	if (!c->o.inflight)
		return 0;
	if (c->inflight_fd < 0) {
		ret = vhost_frontend_get_inflight_fd(c->f, &in, &c->area, &c->inflight_fd);
		if (ret)
			return ret;
		if (c->inflight_fd < 0 || !c->area.mmap_size)
			return -ENOTSUP;
		c->inflight_map = mmap(NULL, c->area.mmap_size, PROT_READ | PROT_WRITE,
				       MAP_SHARED, c->inflight_fd, (off_t)c->area.mmap_offset);
		if (c->inflight_map == MAP_FAILED) {
			c->inflight_map = NULL;
			return -errno;
		}
	}
	return vhost_frontend_set_inflight_fd(c->f, &c->area, c->inflight_fd);
}

/* The QEMU 7.2 vhost-user-blk order, for every queue. */
static int client_handshake(struct vblk_client *c)
{
	uint64_t v;
	unsigned q;
	int ret;

	ret = client_get_features(c);
	ret = ret ?: client_protocol(c, PROTO(MQ) | PROTO(REPLY_ACK) | PROTO(CONFIG) |
				     (c->o.inflight ? PROTO(INFLIGHT_SHMFD) : 0) |
				     (c->o.backend_req ? PROTO(BACKEND_REQ) : 0));
	/* QEMU gives the backend channel right after the protocol features. */
	if (!ret && c->o.backend_req) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
		c->backend_fd = sv[0];
		ret = vhost_frontend_request(c->f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
		close(sv[1]);
	}
	ret = ret ?: client_check_queue_num(c);
	ret = ret ?: vhost_frontend_get_max_mem_slots(c->f, &v);
	if (ret)
		return ret;
	if (v < c->nregions)
		return -ENOTSUP;
	ret = vhost_frontend_set_owner(c->f);
	ret = ret ?: vhost_frontend_get_config(c->f, 0, &c->cfg, sizeof(c->cfg));
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = vhost_frontend_set_vring_call(c->f, q, c->q[q].call_fd);
	ret = ret ?: client_inflight(c);
	ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
	ret = ret ?: client_set_memory(c);
	return ret ?: client_rings(c, qemu_ring, false);
}

int vblk_client_reconnect(struct vblk_client *c, const char *path)
{
	int ret;

	if (!c->o.inflight || c->o.flavor != VBLK_FLAVOR_QEMU || c->o.packed)
		return -EINVAL;
	vhost_frontend_destroy(c->f);
	c->f = NULL;
	ret = connect_retry(path, &c->f);
	if (ret)
		return ret;
	vhost_frontend_set_timeout(c->f, c->o.timeout_ms);
	c->reconnecting = true;
	ret = client_handshake(c);
	c->reconnecting = false;
	return ret;
}

int vblk_client_inflight_marked(const struct vblk_client *c, unsigned q)
{
	/* The spec's QueueRegionSplit: a 16-byte header, then 16 bytes per
	 * descriptor whose first byte is its "inflight" flag. */
	uint64_t region = virtq_inflight_size(c->area.queue_size, false);
	const uint8_t *d;
	int n = 0;

	if (!c->inflight_map || q >= c->area.num_queues ||
	    (q + 1) * region > c->area.mmap_size)
		return -1;
	d = c->inflight_map + q * region + 16;
	for (unsigned i = 0; i < c->area.queue_size; i++)
		n += READ_ONCE(d[16 * i]) == 1;
	return n;
}

/*
 * SPDK's virtio-user (lib/virtio/virtio_vhost_user.c, as bdevperf uses it):
 * SET_OWNER at init; SET_FEATURES *before* the protocol features (MQ and
 * CONFIG only: no REPLY_ACK, so nothing is ever acked); the whole config
 * space read as offset 0, size 256, expecting exactly 256 bytes back;
 * SET_VRING_ENABLE for each queue before anything else about it; at
 * DRIVER_OK: GET_QUEUE_NUM, every call fd, SET_MEM_TABLE followed by a
 * GET_FEATURES as a barrier, then per queue NUM, BASE 0, ADDR, KICK (the
 * kick last: "vhost depends on this msg to judge if virtio is ready").
 */
static int client_start_spdk(struct vblk_client *c, bool init)
{
	uint8_t cfg[VHOST_USER_MAX_CONFIG_SIZE];
	uint64_t v;
	unsigned q;
	int ret = 0;

	if (init) {
		ret = vhost_frontend_set_owner(c->f);
		ret = ret ?: client_get_features(c);
		ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
		ret = ret ?: client_protocol(c, PROTO(MQ) | PROTO(CONFIG));
		ret = ret ?: vhost_frontend_get_config(c->f, 0, cfg, sizeof(cfg));
		if (ret)
			return ret;
		memcpy(&c->cfg, cfg, sizeof(c->cfg));
		for (q = 0; !ret && q < c->o.num_queues; q++)
			ret = vhost_frontend_set_vring_enable(c->f, q, true);
	}
	ret = ret ?: client_check_queue_num(c);
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = vhost_frontend_set_vring_call(c->f, q, c->q[q].call_fd);
	ret = ret ?: client_set_memory(c);
	ret = ret ?: vhost_frontend_get_features(c->f, &v);
	return ret ?: client_rings(c, (const uint8_t[]){ R_NUM, R_BASE, R_ADDR, R_KICK, R_END },
				   false);
}

/*
 * DPDK's virtio_user (drivers/net/virtio/virtio_user, releases that stop
 * with RESET_OWNER): SET_OWNER, features and protocol features (MQ,
 * REPLY_ACK) at init; at start every call fd, then SET_FEATURES, the
 * memory table (acked), per queue NUM, BASE, ADDR, KICK, and only then
 * SET_VRING_ENABLE. A restart after RESET_OWNER repeats the start on the
 * same connection, without a new SET_OWNER.
 */
static int client_start_dpdk(struct vblk_client *c, bool init)
{
	unsigned q;
	int ret = 0;

	if (init) {
		ret = vhost_frontend_set_owner(c->f);
		ret = ret ?: client_get_features(c);
		ret = ret ?: client_protocol(c, PROTO(MQ) | PROTO(REPLY_ACK));
		if (ret)
			return ret;
	}
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = vhost_frontend_set_vring_call(c->f, q, c->q[q].call_fd);
	ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
	ret = ret ?: client_set_memory(c);
	return ret ?: client_rings(c, (const uint8_t[]){ R_NUM, R_BASE, R_ADDR, R_KICK, R_END },
				   true);
}

/*
 * The rust-vmm vhost crate's Frontend as cloud-hypervisor's vhost-user-blk
 * drives it (virtio-devices/src/vhost_user/vu_common_ctrl.rs): SET_OWNER,
 * GET/SET_FEATURES, then the protocol features (with CONFIGURE_MEM_SLOTS);
 * with REPLY_ACK every later message carries NEED_REPLY, GETs included
 * (which must still get exactly one reply); GET_QUEUE_NUM, GET_CONFIG of
 * the config struct. At activation SET_FEATURES again, the memory as one
 * ADD_MEM_REG per region, SET_VRING_NUM for *every* queue first ("it could
 * tell backends, like SPDK, how many virt queues"), then per queue ADDR,
 * BASE, CALL, KICK, and SET_VRING_ENABLE for all once all are set up. Its
 * reset is SET_VRING_ENABLE 0 + GET_VRING_BASE queue by queue, and a
 * re-activation sets the rings up again.
 */
static int client_start_rust_vmm(struct vblk_client *c, bool init)
{
	uint64_t v;
	unsigned q, i;
	int ret = 0;

	if (init) {
		ret = vhost_frontend_set_owner(c->f);
		ret = ret ?: client_get_features(c);
		ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
		ret = ret ?: client_protocol(c, PROTO(MQ) | PROTO(REPLY_ACK) | PROTO(CONFIG) |
					     PROTO(CONFIGURE_MEM_SLOTS));
		ret = ret ?: vhost_frontend_send(c->f, VHOST_USER_GET_QUEUE_NUM,
						 VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
						 NULL, 0, NULL, 0);
		ret = ret ?: vhost_frontend_recv_reply(c->f, VHOST_USER_GET_QUEUE_NUM, &v,
						       sizeof(v), NULL);
		if (ret)
			return ret;
		if (v < c->o.num_queues)
			return -ENOTSUP;
		ret = vhost_frontend_get_config(c->f, 0, &c->cfg, sizeof(c->cfg));
		ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
		ret = ret ?: vhost_frontend_get_max_mem_slots(c->f, &v);
		if (ret)
			return ret;
		if (v < c->nregions)
			return -ENOTSUP;
		for (i = 0; !ret && i < c->nregions; i++)
			ret = vhost_frontend_add_mem_reg(c->f, &c->regions[i], c->memfd);
	}
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = vhost_frontend_set_vring_num(c->f, q, c->o.queue_size);
	return ret ?: client_rings(c, (const uint8_t[]){ R_ADDR, R_BASE, R_CALL, R_KICK, R_END },
				   true);
}

/*
 * A frontend without protocol features (VHOST_USER_F_PROTOCOL_FEATURES
 * not acked, as the vhost-user spec still allows): rings are enabled from
 * the start and run at SET_VRING_KICK; no config space, no acks.
 */
static int client_start_legacy(struct vblk_client *c, bool init)
{
	int ret = 0;

	if (init) {
		ret = vhost_frontend_set_owner(c->f);
		ret = ret ?: client_get_features(c);
		ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
		ret = ret ?: client_set_memory(c);
	}
	return ret ?: client_rings(c, (const uint8_t[]){ R_NUM, R_BASE, R_ADDR, R_CALL, R_KICK,
							R_END }, false);
}

/*
 * crosvm's vhost-user frontend (devices/src/virtio/vhost_user_frontend/
 * mod.rs over third_party/vmm_vhost): SET_OWNER, GET_FEATURES, then the
 * protocol features without any SET_FEATURES (CONFIG, MQ, REPLY_ACK and
 * others we do not offer; REPLY_ACK negotiated but NEED_REPLY never set),
 * GET_QUEUE_NUM. The guest's config-space accesses are forwarded as they
 * come: GET_CONFIG of a few bytes at the field's offset with flags 1
 * ("writable"), and the write-cache byte as SET_CONFIG, all before the
 * first SET_FEATURES, which is sent only at activation (and again only
 * if the acked features changed); then SET_MEM_TABLE (no slots query)
 * and per queue NUM, ADDR, BASE, CALL, KICK, ENABLE. Its reset disables
 * and stops queue by queue (vblk_client_stop, as rust-vmm).
 */
static int client_start_crosvm(struct vblk_client *c, bool init)
{
	static const struct { uint32_t off, len; } fields[] = {
		{ offsetof(struct virtio_blk_config, capacity), 8 },
		{ offsetof(struct virtio_blk_config, size_max), 4 },
		{ offsetof(struct virtio_blk_config, seg_max), 4 },
		{ offsetof(struct virtio_blk_config, blk_size), 4 },
		{ offsetof(struct virtio_blk_config, num_queues), 2 },
		{ offsetof(struct virtio_blk_config, wce), 1 },
	};
	uint8_t wce = 0;
	uint64_t v;
	unsigned q;
	int ret = 0;

	if (init) {
		ret = vhost_frontend_set_owner(c->f);
		ret = ret ?: client_get_features(c);
		ret = ret ?: client_protocol(c, PROTO(MQ) | PROTO(REPLY_ACK) | PROTO(CONFIG));
		ret = ret ?: vhost_frontend_get_queue_num(c->f, &v);
		if (!ret && v < c->o.num_queues)
			return -ENOTSUP;
		for (unsigned i = 0; !ret && i < ARRAY_SIZE(fields); i++)
			ret = vhost_frontend_get_config_flags(c->f, fields[i].off,
							      (uint8_t *)&c->cfg + fields[i].off,
							      fields[i].len, 1);
		/* The driver sets the cache mode (here: off, writethrough; the
		 * daemon's default is on) before DRIVER_OK. */
		if (!ret && (c->acked & (1ull << VIRTIO_BLK_F_CONFIG_WCE)))
			ret = vhost_frontend_set_config(c->f, offsetof(struct virtio_blk_config, wce),
							&wce, 1, 0);
		ret = ret ?: vhost_frontend_set_features(c->f, c->acked);
	}
	ret = ret ?: vhost_frontend_set_mem_table(c->f, c->regions,
						  (int[VHOST_USER_MAX_MEM_REGIONS]){ c->memfd },
						  1);
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = client_ring(c, q, (const uint8_t[]){ R_NUM, R_ADDR, R_BASE, R_CALL, R_KICK,
							   R_ENABLE, R_END });
	/* The guest reads the cache mode again: what it wrote must stay. */
	if (!ret && init)
		ret = vhost_frontend_get_config_flags(c->f, offsetof(struct virtio_blk_config, wce),
						      &c->cfg.wce, 1, 1);
	return ret;
}

static int client_start(struct vblk_client *c, bool init)
{
	switch (c->o.flavor) {
	case VBLK_FLAVOR_CROSVM:
		return client_start_crosvm(c, init);
	case VBLK_FLAVOR_SPDK:
		return client_start_spdk(c, init);
	case VBLK_FLAVOR_DPDK:
		return client_start_dpdk(c, init);
	case VBLK_FLAVOR_RUST_VMM:
		return client_start_rust_vmm(c, init);
	case VBLK_FLAVOR_LEGACY:
		return client_start_legacy(c, init);
	case VBLK_FLAVOR_QEMU:
		break;
	}
	return init ? client_handshake(c) : client_rings(c, qemu_ring, false);
}

int vblk_client_stop(struct vblk_client *c)
{
	unsigned q, base;
	int ret = 0;

	/* DPDK disables every ring, then resets; rust-vmm disables and stops
	 * queue by queue; the others stop each ring with GET_VRING_BASE. */
	if (c->o.flavor == VBLK_FLAVOR_DPDK) {
		for (q = 0; !ret && q < c->o.num_queues; q++)
			ret = vhost_frontend_set_vring_enable(c->f, q, false);
		return ret ?: vhost_frontend_reset_owner(c->f);
	}
	for (q = 0; !ret && q < c->o.num_queues; q++) {
		if (c->o.flavor == VBLK_FLAVOR_RUST_VMM || c->o.flavor == VBLK_FLAVOR_CROSVM)
			ret = vhost_frontend_set_vring_enable(c->f, q, false);
		ret = ret ?: vhost_frontend_get_vring_base(c->f, q, &base);
	}
	return ret;
}

int vblk_client_restart(struct vblk_client *c)
{
	return client_start(c, false);
}

int vblk_client_connect(const char *path, const struct vblk_client_opts *o,
			struct vblk_client **out)
{
	struct vblk_client *c;
	unsigned q;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->memfd = -1;
	c->inflight_fd = -1;
	c->backend_fd = -1;
	c->mem = MAP_FAILED;
	for (q = 0; q < VBLK_CLIENT_MAX_QUEUES; q++)
		c->q[q].kick_fd = c->q[q].call_fd = c->q[q].err_fd = -1;
	if (o)
		c->o = *o;
	if (!c->o.num_queues)
		c->o.num_queues = 1;
	if (!c->o.queue_size)
		c->o.queue_size = 128;
	if (!c->o.timeout_ms)
		c->o.timeout_ms = 5000;
	c->mem_size = c->o.mem_size ? c->o.mem_size : 8u << 20;
	c->rng = 0x9e3779b97f4a7c15ull ^ c->mem_size ^ c->o.region_size;
	ret = -EINVAL;
	if (c->o.num_queues > VBLK_CLIENT_MAX_QUEUES || c->o.queue_size > MAX_QSIZE)
		goto err_free;
	ret = client_layout(c);
	if (ret)
		goto err_free;

	ret = fixture_memfd_map("vblk-func-guest", c->mem_size, &c->memfd, &c->mem);
	if (ret)
		goto err_free;
	for (q = 0; q < c->o.num_queues; q++) {
		c->q[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		c->q[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->o.err_fds)
			c->q[q].err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->q[q].kick_fd < 0 || c->q[q].call_fd < 0 ||
		    (c->o.err_fds && c->q[q].err_fd < 0)) {
			ret = -errno;
			goto err_free;
		}
	}
	ret = connect_retry(path, &c->f);
	if (ret)
		goto err_free;
	vhost_frontend_set_timeout(c->f, c->o.timeout_ms);
	ret = client_start(c, true);
	if (ret)
		goto err_free;
	*out = c;
	return 0;

err_free:
	vblk_client_destroy(c);
	return ret;
}

void vblk_client_destroy(struct vblk_client *c)
{
	if (!c)
		return;
	vhost_frontend_destroy(c->f);
	close_fd(&c->backend_fd);
	for (unsigned q = 0; q < VBLK_CLIENT_MAX_QUEUES; q++) {
		if (c->q[q].drv.next_free)
			virtq_drv_fini(&c->q[q].drv);
		close_fd(&c->q[q].kick_fd);
		close_fd(&c->q[q].call_fd);
		close_fd(&c->q[q].err_fd);
	}
	if (c->mem != MAP_FAILED)
		munmap(c->mem, c->mem_size);
	close_fd(&c->memfd);
	if (c->inflight_map)
		munmap(c->inflight_map, c->area.mmap_size);
	close_fd(&c->inflight_fd);
	for (unsigned i = 0; i < c->norphans; i++)
		free(c->orphans[i]);
	free(c->orphans);
	free(c);
}

struct vhost_frontend *vblk_client_frontend(struct vblk_client *c)
{
	return c->f;
}

const struct virtio_blk_config *vblk_client_config(const struct vblk_client *c)
{
	return &c->cfg;
}

uint64_t vblk_client_offered(const struct vblk_client *c)
{
	return c->offered;
}

uint64_t vblk_client_acked(const struct vblk_client *c)
{
	return c->acked;
}

unsigned vblk_client_nregions(const struct vblk_client *c)
{
	return c->nregions;
}

const struct gmem_region_desc *vblk_client_region(const struct vblk_client *c, unsigned i)
{
	return i < c->nregions ? &c->regions[i] : NULL;
}

unsigned vblk_client_num_queues(const struct vblk_client *c)
{
	return c->o.num_queues;
}

/* ---- guest memory ------------------------------------------------------ */

void *vblk_client_alloc(struct vblk_client *c, size_t len, size_t align, uint64_t *gpa)
{
	size_t off;

	if (!align)
		align = 1;
	off = (c->bump + align - 1) & ~(align - 1);
	if (off > c->mem_size || len > c->mem_size - off)
		return NULL;
	c->bump = off + len;
	if (gpa)
		*gpa = VBLK_CLIENT_GPA_BASE + off;
	return c->mem + off;
}

int vblk_client_memfd(const struct vblk_client *c)
{
	return c->memfd;
}

void *vblk_client_host(struct vblk_client *c, uint64_t gpa, size_t len)
{
	if (gpa < VBLK_CLIENT_GPA_BASE || gpa - VBLK_CLIENT_GPA_BASE > c->mem_size ||
	    len > c->mem_size - (gpa - VBLK_CLIENT_GPA_BASE))
		return NULL;
	return c->mem + (gpa - VBLK_CLIENT_GPA_BASE);
}

uint64_t vblk_client_gpa_end(const struct vblk_client *c)
{
	return VBLK_CLIENT_GPA_BASE + c->mem_size;
}

/* ---- requests ------------------------------------------------------------ */

/*
 * Cut [gpa, gpa+len) into descriptors: a forced cut at @cut (if 0 < cut <
 * len) and, with @scatter, up to MAX_SEGS-1 random ones after @from.
 */
static unsigned cut_block(struct vblk_client *c, struct virtq_drv_buf *b, uint64_t gpa,
			  size_t len, size_t cut, bool scatter, size_t from)
{
	size_t points[MAX_SEGS + 1], prev = 0;
	unsigned np = 0, nb = 0, i, j;

	if (cut > 0 && cut < len)
		points[np++] = cut;
	if (scatter && len > from + 1) {
		unsigned extra = 1 + (unsigned)(client_rand(c) % (MAX_SEGS - 1));

		for (i = 0; i < extra; i++)
			points[np++] = from + 1 + (size_t)(client_rand(c) % (len - from - 1));
	}
	/* Sort and drop duplicates: insertion sort over at most 9 entries. */
	for (i = 1; i < np; i++)
		for (j = i; j > 0 && points[j - 1] > points[j]; j--) {
			size_t t = points[j];

			points[j] = points[j - 1];
			points[j - 1] = t;
		}
	for (i = 0; i <= np; i++) {
		size_t end = i < np ? points[i] : len;

		if (end <= prev)
			continue;
		b[nb].addr = gpa + prev;
		b[nb].len = (uint32_t)(end - prev);
		nb++;
		prev = end;
	}
	return nb;
}

int vblk_client_submit(struct vblk_client *c, unsigned q, struct vblk_req *r, uint32_t type,
		       uint64_t sector, const void *out, size_t out_len, size_t in_len,
		       unsigned flags)
{
	struct virtq_drv_buf bufs[MAX_DESCS];
	struct virtio_blk_outhdr hdr = { .type = htole32(type), .sector = htole64(sector) };
	bool merge = flags & VBLK_REQ_MERGE, scatter = flags & VBLK_REQ_SCATTER;
	uint64_t out_gpa, in_gpa, table_gpa = 0;
	uint8_t *ob, *ib;
	void *table = NULL;
	unsigned nout, nin;
	int ret;

	if (q >= c->o.num_queues || out_len > UINT32_MAX / 2 || in_len > UINT32_MAX / 2)
		return -EINVAL;
	if (c->inflight == 0)
		c->bump = c->data_off;      /* nothing in flight: recycle the area */
	/* A random skew so buffers start anywhere (and cross regions). */
	c->bump += client_rand(c) % 64;
	ob = vblk_client_alloc(c, sizeof(hdr) + out_len, 1, &out_gpa);
	ib = ob ? vblk_client_alloc(c, in_len + 1, 1, &in_gpa) : NULL;
	if (!ib)
		return -ENOSPC;
	memcpy(ob, &hdr, sizeof(hdr));
	if (out)
		memcpy(ob + sizeof(hdr), out, out_len);
	else
		memset(ob + sizeof(hdr), 0, out_len);
	memset(ib, 0xa5, in_len);
	ib[in_len] = 0xff;                  /* no valid status */

	nout = cut_block(c, bufs, out_gpa, sizeof(hdr) + out_len, merge ? 0 : sizeof(hdr),
			 scatter, sizeof(hdr));
	nin = cut_block(c, bufs + nout, in_gpa, in_len + 1, merge ? 0 : in_len, scatter, 0);
	if (flags & VBLK_REQ_INDIRECT) {
		table = vblk_client_alloc(c, (nout + nin) * sizeof(struct vring_desc), 16,
					  &table_gpa);
		if (!table)
			return -ENOSPC;
	}
	*r = (struct vblk_req){
		.q = q, .type = type, .out_data = ob + sizeof(hdr), .in_data = ib,
		.out_len = out_len, .in_len = in_len, .status = ib + in_len,
	};
	ret = virtq_drv_add(&c->q[q].drv, bufs, nout, nin, r, table, table_gpa);
	if (ret)
		return ret;
	c->inflight++;
	c->q[q].inflight++;
	return 0;
}

int vblk_client_kick(struct vblk_client *c, unsigned q, bool force)
{
	uint64_t one = 1;

	if (q >= c->o.num_queues)
		return -EINVAL;
	if (!virtq_drv_kick_prepare(&c->q[q].drv) && !force)
		return 0;
	if (write(c->q[q].kick_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

unsigned vblk_client_reap(struct vblk_client *c, unsigned q)
{
	struct vblk_req *r;
	uint32_t len;
	unsigned n = 0;

	while ((r = virtq_drv_get_used(&c->q[q].drv, &len))) {
		r->used_len = len;
		r->done = true;
		c->inflight--;
		c->q[q].inflight--;
		n++;
	}
	return n;
}

int vblk_client_wait(struct vblk_client *c, unsigned q, struct vblk_req *r, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	struct client_queue *cq = &c->q[q];

	for (;;) {
		struct pollfd pfd = { .fd = cq->call_fd, .events = POLLIN };
		uint64_t v, now;
		ssize_t n UNUSED;
		int ret;

		vblk_client_reap(c, q);
		if (r->done)
			return 0;
		/* Ask for an interrupt, then look again: closes the race with a
		 * completion that came before the request was visible. */
		virtq_drv_enable_cb(&cq->drv);
		vblk_client_reap(c, q);
		if (r->done)
			return 0;
		now = now_ms();
		if (now >= end)
			return -ETIMEDOUT;
		ret = poll(&pfd, 1, (int)(end - now));
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
		n = read(cq->call_fd, &v, sizeof(v));
	}
}

int vblk_client_io(struct vblk_client *c, unsigned q, uint32_t type, uint64_t sector,
		   const void *out, size_t out_len, void *in, size_t in_len, unsigned flags,
		   int timeout_ms, uint8_t *status, uint32_t *used_len)
{
	struct vblk_req *r = calloc(1, sizeof(*r));
	int ret;

	if (q < c->o.num_queues && c->q[q].stuck) {
		free(r);
		return -ETIMEDOUT;
	}
	if (!r)
		return -ENOMEM;
	ret = vblk_client_submit(c, q, r, type, sector, out, out_len, in_len, flags);
	if (ret) {
		free(r);
		return ret;
	}
	ret = vblk_client_kick(c, q, false);
	ret = ret ?: vblk_client_wait(c, q, r, timeout_ms);
	if (ret) {
		/* Still on the ring: the request must live as long as the client. */
		struct vblk_req **o = realloc(c->orphans, (c->norphans + 1) * sizeof(*o));

		c->q[q].stuck = true;
		if (o) {
			c->orphans = o;
			c->orphans[c->norphans++] = r;
		}
		return ret;
	}
	if (in)
		memcpy(in, r->in_data, in_len);
	*status = *r->status;
	if (used_len)
		*used_len = r->used_len;
	free(r);
	return 0;
}

/* ---- low level ------------------------------------------------------------ */

struct virtq_drv *vblk_client_vq(struct vblk_client *c, unsigned q)
{
	return &c->q[q].drv;
}

int vblk_client_kick_fd(const struct vblk_client *c, unsigned q)
{
	return c->q[q].kick_fd;
}

int vblk_client_wait_err(struct vblk_client *c, unsigned q, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->q[q].err_fd, .events = POLLIN };
	uint64_t v;
	int ret;

	if (pfd.fd < 0)
		return -EBADF;
	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return 0;
	if (read(pfd.fd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	return 1;
}

void vblk_client_raw_publish_split(struct vblk_client *c, unsigned q, uint16_t head)
{
	struct virtq_drv *d = &c->q[q].drv;

	d->avail->ring[d->next_avail & (d->num - 1)] = head;
	smp_wmb();
	d->next_avail++;
	WRITE_ONCE(d->avail->idx, d->next_avail);
}

void vblk_client_raw_publish_packed(struct vblk_client *c, unsigned q,
				    const struct vring_packed_desc *descs, unsigned n)
{
	struct virtq_drv *d = &c->q[q].drv;
	uint16_t idx = d->next_avail, head = idx, head_flags = 0;
	bool wrap = d->avail_wrap_counter;

	for (unsigned i = 0; i < n; i++) {
		struct vring_packed_desc *s = &d->pdesc[idx];
		uint16_t f = descs[i].flags & ~((1u << VRING_PACKED_DESC_F_AVAIL) |
						(1u << VRING_PACKED_DESC_F_USED));

		f |= wrap ? (1u << VRING_PACKED_DESC_F_AVAIL) : (1u << VRING_PACKED_DESC_F_USED);
		WRITE_ONCE(s->addr, descs[i].addr);
		WRITE_ONCE(s->len, descs[i].len);
		WRITE_ONCE(s->id, descs[i].id);
		if (i == 0)
			head_flags = f;
		else
			WRITE_ONCE(s->flags, f);
		if (++idx == d->num) {
			idx = 0;
			wrap = !wrap;
		}
	}
	__atomic_store_n(&d->pdesc[head].flags, head_flags, __ATOMIC_RELEASE);
	/* num_free stays: the slots are the device's to reject, and a test
	 * adds a good request after a bad chain to see it is not served. */
	d->next_avail = idx;
	d->avail_wrap_counter = wrap;
}

/* ---- test helpers -------------------------------------------------------- */

void vblk_fill(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
}

bool vblk_client_rw_check(struct vblk_client *c, unsigned q, uint64_t seed, unsigned flags,
			  int timeout_ms)
{
	uint8_t buf[4096], back[4096], st = 0xff;
	uint64_t sector = (seed % 8000) * 8;
	int ret;

	vblk_fill(buf, sizeof(buf), seed);
	ret = vblk_client_io(c, q, VIRTIO_BLK_T_OUT, sector, buf, sizeof(buf), NULL, 0, flags,
			     timeout_ms, &st, NULL);
	if (ret || st != VIRTIO_BLK_S_OK) {
		printf("# write q%u: %s, status %u\n", q, ret ? strerror(-ret) : "done", st);
		return false;
	}
	ret = vblk_client_io(c, q, VIRTIO_BLK_T_IN, sector, NULL, 0, back, sizeof(back), flags,
			     timeout_ms, &st, NULL);
	if (ret || st != VIRTIO_BLK_S_OK || memcmp(buf, back, sizeof(buf))) {
		printf("# read q%u: %s, status %u\n", q, ret ? strerror(-ret) : "done", st);
		return false;
	}
	return true;
}

int vblk_client_io_at(struct vblk_client *c, uint32_t type, uint64_t off, const void *out,
		      size_t out_len, void *in, size_t in_len, int timeout_ms)
{
	uint8_t status = 0xff;
	int ret = vblk_client_io(c, 0, type, off / 512, out, out_len, in, in_len, 0, timeout_ms,
				 &status, NULL);

	if (ret) {
		printf("# request type %u at %llu: %s\n", type, (unsigned long long)off,
		       strerror(-ret));
		return ret;
	}
	return status;
}

int vblk_client_write_fill(struct vblk_client *c, uint64_t off, size_t len, uint64_t seed,
			   int timeout_ms)
{
	uint8_t *b = malloc(len ? len : 1);
	int ret;

	if (!b)
		return -ENOMEM;
	vblk_fill(b, len, seed);
	ret = vblk_client_io_at(c, VIRTIO_BLK_T_OUT, off, b, len, NULL, 0, timeout_ms);
	free(b);
	return ret;
}

bool vblk_client_read_check(struct vblk_client *c, uint64_t off, size_t len, int64_t seed,
			    int timeout_ms)
{
	uint8_t *got = malloc(len ? len : 1), *want = calloc(1, len ? len : 1);
	bool same = false;

	if (got && want &&
	    vblk_client_io_at(c, VIRTIO_BLK_T_IN, off, NULL, 0, got, len, timeout_ms) ==
	    VIRTIO_BLK_S_OK) {
		if (seed >= 0)
			vblk_fill(want, len, (uint64_t)seed);
		same = memcmp(got, want, len) == 0;
	}
	free(got);
	free(want);
	return same;
}

int vblk_client_dwz_at(struct vblk_client *c, uint32_t type, uint64_t off, uint64_t len,
		       int timeout_ms)
{
	struct virtio_blk_discard_write_zeroes seg = {
		.sector = htole64(off / 512),
		.num_sectors = htole32((uint32_t)(len / 512)),
	};

	return vblk_client_io_at(c, type, 0, &seg, sizeof(seg), NULL, 0, timeout_ms);
}

const char *vblk_test_start(int argc, char **argv, struct vblkd_proc *proc)
{
	if (argc < 2)
		tap_bail("usage: %s PATH-TO-VBLKD", argv[0]);
	if (vblkd_proc_init(proc))
		tap_bail("mkdtemp");
	return argv[1];
}

bool vblk_sock_closed_by_peer(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	char buf[512];

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
	}
}

int vblk_client_backend_fd(const struct vblk_client *c)
{
	return c->backend_fd;
}

/* One backend-channel message header as on the wire. */
struct backend_hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

/* Read the next message on @fd (up to @timeout_ms) into @hdr / @payload. */
static int backend_recv(int fd, int timeout_ms, struct backend_hdr *hdr, char *payload,
			size_t cap)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) <= 0 || read(fd, hdr, sizeof(*hdr)) != sizeof(*hdr))
		return -1;
	if (hdr->size > cap || (hdr->size && read(fd, payload, hdr->size) != hdr->size))
		return -1;
	return 0;
}

/* Ack @hdr's message with success if it asks for a reply. */
static int backend_ack(int fd, const struct backend_hdr *hdr)
{
	struct backend_hdr ack = { hdr->request, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 8 };
	uint64_t zero = 0;

	if (!(hdr->flags & VHOST_USER_NEED_REPLY_MASK))
		return 0;
	if (write(fd, &ack, sizeof(ack)) != sizeof(ack) ||
	    write(fd, &zero, sizeof(zero)) != sizeof(zero))
		return -1;
	return 0;
}

int vblk_client_backend_take(int fd, int timeout_ms)
{
	struct backend_hdr hdr;
	char payload[256];

	if (backend_recv(fd, timeout_ms, &hdr, payload, sizeof(payload)) ||
	    backend_ack(fd, &hdr))
		return -1;
	return (int)hdr.request;
}

int vblk_client_iotlb_raw(struct vblk_client *c, const struct vhost_msg_iotlb *m)
{
	return vhost_frontend_request(c->f, VHOST_USER_IOTLB_MSG, m, sizeof(*m), NULL, 0);
}

int vblk_client_iotlb(struct vblk_client *c, uint8_t type, uint64_t iova, uint64_t size,
		      uint8_t perm)
{
	struct vhost_msg_iotlb m = { .iova = iova, .size = size, .perm = perm, .type = type };

	for (unsigned i = 0; type == VHOST_IOTLB_UPDATE && i < c->nregions; i++) {
		const struct gmem_region_desc *r = &c->regions[i];

		if (iova >= r->gpa && iova - r->gpa < r->size) {
			m.uaddr = r->uva + (iova - r->gpa);
			break;
		}
	}
	return vblk_client_iotlb_raw(c, &m);
}

uint64_t vblk_client_iova(const struct vblk_client *c, const void *p)
{
	return VBLK_CLIENT_GPA_BASE + (uint64_t)((const uint8_t *)p - c->mem);
}

int vblk_client_serve_iotlb(struct vblk_client *c, int timeout_ms, unsigned how, uint64_t *iova)
{
	struct backend_hdr hdr;
	struct vhost_msg_iotlb m;
	char payload[256];

	if (backend_recv(c->backend_fd, timeout_ms, &hdr, payload, sizeof(payload)))
		return -1;
	if (hdr.request == VHOST_USER_BACKEND_IOTLB_MSG && hdr.size == sizeof(m)) {
		memcpy(&m, payload, sizeof(m));
		if (iova)
			*iova = m.iova;
		if ((how & VBLK_SERVE_ANSWER) && m.type == VHOST_IOTLB_MISS &&
		    vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, m.iova & ~4095ull, 4096,
				      VHOST_ACCESS_RW))
			return -1;
		if ((how & VBLK_SERVE_UNMAP_FIRST) && m.type == VHOST_IOTLB_MISS) {
			/* Until a request of queue 0 completes (at most 2 s). */
			for (int i = 0; i < 200 && !vblk_client_reap(c, 0); i++)
				usleep(10000);
			if (vblk_client_iotlb(c, VHOST_IOTLB_INVALIDATE, m.iova & ~4095ull, 4096, 0))
				return -1;
		}
	}
	if (backend_ack(c->backend_fd, &hdr))
		return -1;
	return (int)hdr.request;
}

int vblk_client_refresh_config(struct vblk_client *c)
{
	return vhost_frontend_get_config(c->f, 0, &c->cfg, sizeof(c->cfg));
}
