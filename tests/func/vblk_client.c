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
#include <sys/wait.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

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
	/* vblk_client_io requests that timed out: still on a ring, freed last. */
	struct vblk_req **orphans;
	unsigned norphans;
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
	/* Region 0 always starts at offset 0 and holds every ring. */
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

static int client_set_memory(struct vblk_client *c)
{
	int fds[VHOST_USER_MAX_MEM_REGIONS];
	unsigned first = MIN(c->nregions, VHOST_USER_MAX_MEM_REGIONS), i;
	int ret;

	for (i = 0; i < first; i++)
		fds[i] = c->memfd;
	ret = vhost_frontend_set_mem_table(c->f, c->regions, fds, first);
	for (i = first; !ret && i < c->nregions; i++)
		ret = vhost_frontend_add_mem_reg(c->f, &c->regions[i], c->memfd);
	return ret;
}

static int client_setup_queue(struct vblk_client *c, unsigned q)
{
	struct client_queue *cq = &c->q[q];
	unsigned base = c->o.packed ? 0x80008000u : 0;   /* packed: both wrap counters 1 */
	int ret;

	ret = virtq_drv_init(&cq->drv, c->o.queue_size, c->o.packed, !c->o.no_event_idx,
			     ring_host(c, q, 0), ring_host(c, q, RING_DRIVER),
			     ring_host(c, q, RING_DEVICE));
	if (ret)
		return ret;
	ret = vhost_frontend_set_vring_num(c->f, q, c->o.queue_size);
	ret = ret ?: vhost_frontend_set_vring_base(c->f, q, base);
	ret = ret ?: vhost_frontend_set_vring_addr(c->f, q, 0, ring_uva(c, q, 0),
						   ring_uva(c, q, RING_DEVICE),
						   ring_uva(c, q, RING_DRIVER), 0);
	ret = ret ?: vhost_frontend_set_vring_kick(c->f, q, cq->kick_fd);
	ret = ret ?: vhost_frontend_set_vring_call(c->f, q, cq->call_fd);
	if (!ret && cq->err_fd >= 0)
		ret = vhost_frontend_set_vring_err(c->f, q, cq->err_fd);
	ret = ret ?: vhost_frontend_set_vring_enable(c->f, q, true);
	return ret;
}

/* The QEMU 7.2 vhost-user-blk order, for every queue. */
static int client_handshake(struct vblk_client *c)
{
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
			(1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			(1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_TOPOLOGY) |
			(1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |
			(1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_MQ) |
			(1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	uint64_t need = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	uint64_t proto_need = (1ull << VHOST_USER_PROTOCOL_F_MQ) |
			      (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
			      (1ull << VHOST_USER_PROTOCOL_F_CONFIG);
	uint64_t v;
	unsigned q;
	int ret;

	if (!c->o.no_event_idx)
		need |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (!c->o.no_indirect)
		need |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (c->o.packed)
		need |= 1ull << VIRTIO_F_RING_PACKED;
	if (c->nregions > VHOST_USER_MAX_MEM_REGIONS)
		proto_need |= 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS;

	ret = vhost_frontend_get_features(c->f, &c->offered);
	if (ret)
		return ret;
	if ((c->offered & need) != need)
		return -ENOTSUP;
	ret = vhost_frontend_get_protocol_features(c->f, &c->proto);
	if (ret)
		return ret;
	if ((c->proto & proto_need) != proto_need)
		return -ENOTSUP;
	c->proto = proto_need;
	ret = vhost_frontend_set_protocol_features(c->f, c->proto);
	ret = ret ?: vhost_frontend_get_queue_num(c->f, &v);
	if (ret)
		return ret;
	if (v < c->o.num_queues)
		return -ENOTSUP;
	ret = vhost_frontend_get_max_mem_slots(c->f, &v);
	if (ret)
		return ret;
	if (v < c->nregions)
		return -ENOTSUP;
	ret = vhost_frontend_set_owner(c->f);
	ret = ret ?: vhost_frontend_get_config(c->f, 0, &c->cfg, sizeof(c->cfg));
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = vhost_frontend_set_vring_call(c->f, q, c->q[q].call_fd);
	if (ret)
		return ret;
	c->acked = c->offered & (want | need);
	ret = vhost_frontend_set_features(c->f, c->acked);
	ret = ret ?: client_set_memory(c);
	for (q = 0; !ret && q < c->o.num_queues; q++)
		ret = client_setup_queue(c, q);
	return ret;
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

	c->memfd = memfd_create("vblk-func-guest", MFD_CLOEXEC);
	if (c->memfd < 0 || ftruncate(c->memfd, (off_t)c->mem_size) < 0) {
		ret = -errno;
		goto err_free;
	}
	c->mem = mmap(NULL, c->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
	if (c->mem == MAP_FAILED) {
		ret = -errno;
		goto err_free;
	}
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
	ret = client_handshake(c);
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

/* ---- the daemon process ---------------------------------------------------- */

int vblkd_proc_init(struct vblkd_proc *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "/tmp/vblk-func-XXXXXX");
	if (!mkdtemp(p->dir))
		return -errno;
	return 0;
}

const char *vblkd_proc_path(const struct vblkd_proc *p, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", p->dir, name);
	return buf;
}

int vblkd_proc_start(struct vblkd_proc *p, const char *vblkd, const char *const *args)
{
	const char *argv[64];
	unsigned n = 0;
	int pipefd[2], err = 0;
	ssize_t got;
	pid_t pid;

	argv[n++] = vblkd;
	while (args && args[n - 1] && n < ARRAY_SIZE(argv) - 1) {
		argv[n] = args[n - 1];
		n++;
	}
	argv[n] = NULL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return err;
	}
	if (pid == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Keep TAP on stdout clean: the daemon logs to stderr only. */
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execv(vblkd, (char *const *)argv);
		err = errno;
		got = write(pipefd[1], &err, sizeof(err));
		_exit(127);
	}
	close(pipefd[1]);
	got = read(pipefd[0], &err, sizeof(err));
	close(pipefd[0]);
	if (got == sizeof(err)) {
		waitpid(pid, NULL, 0);
		return -err;
	}
	p->pid = pid;
	p->exited = false;
	p->wstatus = 0;
	return 0;
}

int vblkd_proc_start_logged(struct vblkd_proc *p, const char *vblkd, const char *const *args,
			    const char *log_path)
{
	int saved, fd, ret;

	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	saved = dup(STDERR_FILENO);
	if (saved < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	ret = vblkd_proc_start(p, vblkd, args);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	return ret;
}

unsigned vblkd_log_count(const char *log_path, const char *what)
{
	char line[1024];
	unsigned n = 0;
	FILE *f = fopen(log_path, "r");

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return n;
}

bool vblkd_proc_alive(struct vblkd_proc *p)
{
	if (p->pid <= 0 || p->exited)
		return false;
	if (waitpid(p->pid, &p->wstatus, WNOHANG) == p->pid) {
		p->exited = true;
		return false;
	}
	return true;
}

int vblkd_proc_stop(struct vblkd_proc *p)
{
	uint64_t end;

	if (!vblkd_proc_alive(p))
		return -ECHILD;
	kill(p->pid, SIGTERM);
	end = now_ms() + 10000;
	while (now_ms() < end) {
		if (waitpid(p->pid, &p->wstatus, WNOHANG) == p->pid) {
			p->exited = true;
			return p->wstatus;
		}
		usleep(5000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &p->wstatus, 0);
	p->exited = true;
	return -ETIMEDOUT;
}

const char *vblkd_proc_describe(const struct vblkd_proc *p, char *buf, size_t n)
{
	if (!p->exited)
		snprintf(buf, n, "running");
	else if (WIFEXITED(p->wstatus))
		snprintf(buf, n, "exited with %d", WEXITSTATUS(p->wstatus));
	else if (WIFSIGNALED(p->wstatus))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(p->wstatus),
			 strsignal(WTERMSIG(p->wstatus)));
	else
		snprintf(buf, n, "wait status %#x", p->wstatus);
	return buf;
}

void vblkd_proc_cleanup(struct vblkd_proc *p)
{
	DIR *d;
	struct dirent *de;
	char path[512];

	if (p->pid > 0 && !p->exited)
		vblkd_proc_stop(p);
	if (!p->dir[0])
		return;
	d = opendir(p->dir);
	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			unlink(vblkd_proc_path(p, de->d_name, path, sizeof(path)));
		}
		closedir(d);
	}
	rmdir(p->dir);
	p->dir[0] = '\0';     /* a second call does nothing */
}

int vblkd_proc_fd_count(const struct vblkd_proc *p)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)p->pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

long vblkd_proc_rss_kib(const struct vblkd_proc *p)
{
	char path[64], line[256];
	long kib = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}
