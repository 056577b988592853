/* SPDX-License-Identifier: MIT */
/*
 * vblk.c - libvblk control path: instance lifecycle, properties, the
 * vhost-user handshake, shared memory regions and ring set-up. The data
 * path (requests, completions) is in vblkq.c. Uses vhost_frontend for the
 * socket and virtq's driver half for the rings; knows nothing of servers'
 * internals.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"
#include "lib/vblk_internal.h"

#define PAGE 4096u
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

/* Config bytes asked for: up to write_zeroes_may_unmap and its padding,
 * what every server of the virtio 1.1 era knows. */
#define CONFIG_LEN 60u
_Static_assert(sizeof(struct virtio_blk_config) >= CONFIG_LEN, "virtio_blk_config too small");

static __thread char err_msg[256];

void lib_set_error(int err, const char *fmt, ...) PRINTF(2, 3);

void lib_set_error(int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	if (err && n >= 0 && (size_t)n < sizeof(err_msg))
		snprintf(err_msg + n, sizeof(err_msg) - (size_t)n, ": %s", strerror(err));
}

const char *vblk_get_error_msg(void)
{
	return err_msg;
}

/* ---- instance ------------------------------------------------------------ */

int vblk_create(struct vblk **out)
{
	struct vblk *v;

	if (!out)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v) {
		lib_set_error(ENOMEM, "vblk_create");
		return -ENOMEM;
	}
	v->num_queues = 1;
	v->queue_size = 256;
	v->sock_fd = -1;
	v->log_fd = -1;
	v->lib_region = -1;
	v->next_iova = LIB_IOVA_BASE;
	*out = v;
	err_msg[0] = '\0';
	return 0;
}

static void queue_fini(struct vblkq *q)
{
	if (q->drv_ready)
		virtq_drv_fini(&q->drv);
	q->drv_ready = false;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	if (q->call_fd >= 0)
		close(q->call_fd);
	if (q->ep_fd >= 0)
		close(q->ep_fd);
	q->kick_fd = q->call_fd = q->ep_fd = -1;
	free(q->reqs);
	q->reqs = NULL;
}

static void region_release(struct lib_region *r)
{
	if (r->owned) {
		munmap(r->addr, r->len);
		close(r->fd);
	}
	memset(r, 0, sizeof(*r));
}

void vblk_destroy(struct vblk **pv)
{
	struct vblk *v;
	unsigned i;

	if (!pv || !*pv)
		return;
	v = *pv;
	/* Closing the socket makes the server stop and reset the device
	 * before any memory goes away under it (it maps its own copies). */
	vhost_frontend_destroy(v->f);
	if (v->queues) {
		for (i = 0; i < (unsigned)v->num_queues; i++)
			queue_fini(&v->queues[i]);
		free(v->queues);
	}
	for (i = 0; i < v->nregions; i++)
		if (v->regions[i].addr)
			region_release(&v->regions[i]);
	if (v->log_fd >= 0)
		close(v->log_fd);
	free(v->path);
	free(v);
	*pv = NULL;
}

/* ---- properties ------------------------------------------------------------ */

static bool has(const struct vblk *v, unsigned bit)
{
	return v->acked & (1ull << bit);
}

static int need_connected(struct vblk *v, const char *name)
{
	if (v->state < LIB_CONNECTED) {
		lib_set_error(0, "property %s is available after vblk_connect()", name);
		return -ENODEV;
	}
	return 0;
}

/* Numeric and boolean properties, as a u64. -ENOENT if unknown. */
static int get_num(struct vblk *v, const char *name, uint64_t *val)
{
	const struct virtio_blk_config *c = &v->cfg;
	int ret;

	if (!strcmp(name, "num-queues")) {
		*val = (uint64_t)v->num_queues;
		return 0;
	}
	if (!strcmp(name, "queue-size")) {
		*val = (uint64_t)v->queue_size;
		return 0;
	}
	if (!strcmp(name, "poll")) {
		*val = v->poll;
		return 0;
	}
	if (!strcmp(name, "packed")) {
		*val = v->packed;
		return 0;
	}
	if (!strcmp(name, "dirty-log")) {
		*val = v->dirty_log;
		return 0;
	}
	if (!strcmp(name, "access-platform")) {
		*val = v->access_platform;
		return 0;
	}
	if (!strcmp(name, "mem-region-alignment")) {
		*val = PAGE;
		return 0;
	}
	if (!strcmp(name, "needs-mem-regions")) {
		*val = 1;
		return 0;
	}
	if (strcmp(name, "capacity") && strcmp(name, "logical-block-size") &&
	    strcmp(name, "request-alignment") && strcmp(name, "max-queues") &&
	    strcmp(name, "max-segments") && strcmp(name, "max-segment-len") &&
	    strcmp(name, "max-discard-sectors") && strcmp(name, "max-write-zeroes-sectors") &&
	    strcmp(name, "read-only") && strcmp(name, "supports-flush") &&
	    strcmp(name, "supports-discard") && strcmp(name, "supports-write-zeroes") &&
	    strcmp(name, "max-mem-regions") && strcmp(name, "features")) {
		lib_set_error(0, "unknown property %s", name);
		return -ENOENT;
	}
	ret = need_connected(v, name);
	if (ret)
		return ret;
	if (!strcmp(name, "capacity"))
		*val = c->capacity * 512;
	else if (!strcmp(name, "logical-block-size") || !strcmp(name, "request-alignment"))
		*val = has(v, VIRTIO_BLK_F_BLK_SIZE) && c->blk_size ? c->blk_size : 512;
	else if (!strcmp(name, "max-queues"))
		*val = v->max_queues;
	else if (!strcmp(name, "max-segments"))
		*val = MIN(has(v, VIRTIO_BLK_F_SEG_MAX) && c->seg_max ? c->seg_max : LIB_MAX_SEGS,
			   LIB_MAX_SEGS);
	else if (!strcmp(name, "max-segment-len"))
		*val = has(v, VIRTIO_BLK_F_SIZE_MAX) ? c->size_max : 0;
	else if (!strcmp(name, "max-discard-sectors"))
		*val = has(v, VIRTIO_BLK_F_DISCARD) ? c->max_discard_sectors : 0;
	else if (!strcmp(name, "max-write-zeroes-sectors"))
		*val = has(v, VIRTIO_BLK_F_WRITE_ZEROES) ? c->max_write_zeroes_sectors : 0;
	else if (!strcmp(name, "read-only"))
		*val = has(v, VIRTIO_BLK_F_RO);
	else if (!strcmp(name, "supports-flush"))
		*val = has(v, VIRTIO_BLK_F_FLUSH);
	else if (!strcmp(name, "supports-discard"))
		*val = has(v, VIRTIO_BLK_F_DISCARD);
	else if (!strcmp(name, "supports-write-zeroes"))
		*val = has(v, VIRTIO_BLK_F_WRITE_ZEROES);
	else if (!strcmp(name, "max-mem-regions"))
		*val = v->max_mem_slots;
	else
		*val = v->acked;
	return 0;
}

static int set_num(struct vblk *v, const char *name, uint64_t val)
{
	enum lib_state until = LIB_STARTED;
	int *ip = NULL;
	bool *bp = NULL;

	if (!strcmp(name, "num-queues"))
		ip = &v->num_queues;
	else if (!strcmp(name, "queue-size"))
		ip = &v->queue_size;
	else if (!strcmp(name, "poll"))
		bp = &v->poll;
	else if (!strcmp(name, "packed")) {
		bp = &v->packed;
		until = LIB_CONNECTED;
	} else if (!strcmp(name, "dirty-log")) {
		bp = &v->dirty_log;
		until = LIB_CONNECTED;
	} else if (!strcmp(name, "access-platform")) {
		bp = &v->access_platform;
		until = LIB_CONNECTED;
	} else {
		uint64_t dummy;

		if (get_num(v, name, &dummy) == -ENOENT)
			return -ENOENT;
		lib_set_error(0, "property %s is read-only", name);
		return -EACCES;
	}
	if (v->state >= until) {
		lib_set_error(0, "property %s cannot change any more", name);
		return -EBUSY;
	}
	if (ip) {
		if (val < 1 || (ip == &v->num_queues && val > LIB_MAX_QUEUES) ||
		    (ip == &v->queue_size && (val > VIRTQ_MAX_SIZE || (val & (val - 1))))) {
			lib_set_error(0, "invalid %s %llu", name, (unsigned long long)val);
			return -EINVAL;
		}
		*ip = (int)val;
	} else {
		*bp = val != 0;
	}
	return 0;
}

int vblk_get_u64(struct vblk *v, const char *name, uint64_t *value)
{
	if (!v || !name || !value)
		return -EINVAL;
	return get_num(v, name, value);
}

int vblk_get_int(struct vblk *v, const char *name, int *value)
{
	uint64_t x;
	int ret;

	if (!v || !name || !value)
		return -EINVAL;
	ret = get_num(v, name, &x);
	if (ret)
		return ret;
	if (x > INT32_MAX) {
		lib_set_error(0, "property %s does not fit an int", name);
		return -ERANGE;
	}
	*value = (int)x;
	return 0;
}

int vblk_get_bool(struct vblk *v, const char *name, bool *value)
{
	uint64_t x;
	int ret;

	if (!v || !name || !value)
		return -EINVAL;
	ret = get_num(v, name, &x);
	if (!ret)
		*value = x != 0;
	return ret;
}

int vblk_set_u64(struct vblk *v, const char *name, uint64_t value)
{
	if (!v || !name)
		return -EINVAL;
	return set_num(v, name, value);
}

int vblk_set_int(struct vblk *v, const char *name, int value)
{
	if (!v || !name)
		return -EINVAL;
	if (value < 0) {
		lib_set_error(0, "invalid %s %d", name, value);
		return -EINVAL;
	}
	return set_num(v, name, (uint64_t)value);
}

int vblk_set_bool(struct vblk *v, const char *name, bool value)
{
	if (!v || !name)
		return -EINVAL;
	return set_num(v, name, value);
}

int vblk_get_str(struct vblk *v, const char *name, char **value)
{
	const char *s;

	if (!v || !name || !value)
		return -EINVAL;
	if (!strcmp(name, "path"))
		s = v->path ? v->path : "";
	else if (!strcmp(name, "driver"))
		s = "virtio-blk-vhost-user";
	else {
		lib_set_error(0, "unknown string property %s", name);
		return -ENOENT;
	}
	*value = strdup(s);
	return *value ? 0 : -ENOMEM;
}

int vblk_set_str(struct vblk *v, const char *name, const char *value)
{
	char *s;

	if (!v || !name || !value)
		return -EINVAL;
	if (strcmp(name, "path")) {
		lib_set_error(0, "unknown or read-only string property %s", name);
		return -ENOENT;
	}
	if (v->state >= LIB_CONNECTED) {
		lib_set_error(0, "path cannot change after vblk_connect()");
		return -EBUSY;
	}
	s = strdup(value);
	if (!s)
		return -ENOMEM;
	free(v->path);
	v->path = s;
	return 0;
}

/* ---- connect: the handshake up to the config read ------------------------ */

#define FEAT(b) (1ull << (b))

static int proto_err(struct vblk *v, int ret, const char *what)
{
	lib_set_error(-ret, "vhost-user %s failed (server %s)", what, v->path);
	return ret;
}

int vblk_connect(struct vblk *v)
{
	uint64_t need = FEAT(VIRTIO_F_VERSION_1) | FEAT(VHOST_USER_F_PROTOCOL_FEATURES);
	uint64_t want = FEAT(VIRTIO_RING_F_EVENT_IDX) | FEAT(VIRTIO_RING_F_INDIRECT_DESC) |
			FEAT(VIRTIO_BLK_F_SIZE_MAX) | FEAT(VIRTIO_BLK_F_SEG_MAX) |
			FEAT(VIRTIO_BLK_F_BLK_SIZE) | FEAT(VIRTIO_BLK_F_TOPOLOGY) |
			FEAT(VIRTIO_BLK_F_FLUSH) | FEAT(VIRTIO_BLK_F_RO) | FEAT(VIRTIO_BLK_F_MQ) |
			FEAT(VIRTIO_BLK_F_DISCARD) | FEAT(VIRTIO_BLK_F_WRITE_ZEROES);
	uint64_t proto_need = FEAT(VHOST_USER_PROTOCOL_F_CONFIG);
	uint64_t proto_want = FEAT(VHOST_USER_PROTOCOL_F_MQ) | FEAT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
			      FEAT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	int ret;

	if (!v)
		return -EINVAL;
	if (v->state != LIB_CREATED) {
		lib_set_error(0, "vblk_connect: already connected");
		return -EBUSY;
	}
	if (!v->path) {
		lib_set_error(0, "vblk_connect: property \"path\" is not set");
		return -EINVAL;
	}
	if (v->packed)
		need |= FEAT(VIRTIO_F_RING_PACKED);
	if (v->dirty_log) {
		need |= FEAT(LIB_F_LOG_ALL);
		proto_need |= FEAT(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
	}
	if (v->access_platform)
		need |= FEAT(VIRTIO_F_ACCESS_PLATFORM);
	if (v->access_platform && v->dirty_log) {
		lib_set_error(0, "vblk_connect: \"access-platform\" and \"dirty-log\" cannot be "
			      "combined");
		return -EINVAL;
	}

	ret = vhost_frontend_connect(v->path, &v->f);
	if (ret) {
		lib_set_error(-ret, "cannot connect to vhost-user socket %s", v->path);
		return ret;
	}
	vhost_frontend_set_timeout(v->f, 5000);
	v->sock_fd = vhost_frontend_fd(v->f);

	ret = vhost_frontend_get_features(v->f, &v->offered);
	if (ret)
		goto err_proto;
	if ((v->offered & need) != need) {
		lib_set_error(0, "server %s lacks feature(s) 0x%llx%s", v->path,
			      (unsigned long long)(need & ~v->offered),
			      (need & ~v->offered & FEAT(VIRTIO_F_RING_PACKED)) ? " (packed ring)" : "");
		ret = -ENOTSUP;
		goto err_close;
	}
	v->acked = v->offered & (need | want);
	ret = vhost_frontend_get_protocol_features(v->f, &v->proto_offered);
	if (ret)
		goto err_proto;
	if ((v->proto_offered & proto_need) != proto_need) {
		lib_set_error(0, "server %s lacks vhost-user protocol feature(s) 0x%llx", v->path,
			      (unsigned long long)(proto_need & ~v->proto_offered));
		ret = -ENOTSUP;
		goto err_close;
	}
	v->proto_acked = v->proto_offered & (proto_need | proto_want);
	ret = vhost_frontend_set_protocol_features(v->f, v->proto_acked);
	if (ret)
		goto err_proto;
	v->max_queues = 1;
	if (v->proto_acked & FEAT(VHOST_USER_PROTOCOL_F_MQ)) {
		ret = vhost_frontend_get_queue_num(v->f, &v->max_queues);
		if (ret)
			goto err_proto;
	}
	v->max_mem_slots = VHOST_USER_MAX_MEM_REGIONS;
	if (v->proto_acked & FEAT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		ret = vhost_frontend_get_max_mem_slots(v->f, &v->max_mem_slots);
		if (ret)
			goto err_proto;
		v->max_mem_slots = MIN(v->max_mem_slots, LIB_MAX_REGIONS);
	}
	ret = vhost_frontend_set_owner(v->f);
	if (ret)
		goto err_proto;
	ret = vhost_frontend_get_config(v->f, 0, &v->cfg, CONFIG_LEN);
	if (ret)
		goto err_proto;
	if (has(v, VIRTIO_BLK_F_MQ) && v->cfg.num_queues)
		v->max_queues = MIN(v->max_queues, v->cfg.num_queues);
	else if (!has(v, VIRTIO_BLK_F_MQ))
		v->max_queues = 1;
	v->state = LIB_CONNECTED;
	return 0;

err_proto:
	proto_err(v, ret, "handshake");
err_close:
	vhost_frontend_destroy(v->f);
	v->f = NULL;
	v->sock_fd = -1;
	return ret;
}

/* ---- memory regions ------------------------------------------------------------ */

static struct gmem_region_desc region_desc(const struct vblk *v, const struct lib_region *r)
{
	return (struct gmem_region_desc){
		.gpa = r->iova + (v->access_platform ? LIB_GPA_OFFSET : 0), .size = r->len,
		.uva = (uint64_t)(uintptr_t)r->addr, .mmap_offset = (uint64_t)r->fd_offset,
	};
}

/*
 * "access-platform": tell the server's IOTLB that [r->iova, +len) maps
 * the region (@update) or no longer does. Sent in LIB_IOTLB_ENTRY pieces,
 * as an IOMMU hands out mappings, so lookups cross entries.
 */
static int region_iotlb(struct vblk *v, const struct lib_region *r, bool update)
{
	struct vhost_msg_iotlb m = {
		.perm = VHOST_ACCESS_RW,
		.type = update ? VHOST_IOTLB_UPDATE : VHOST_IOTLB_INVALIDATE,
	};
	uint64_t off;
	int ret;

	if (!v->access_platform)
		return 0;
	for (off = 0; off < r->len; off += LIB_IOTLB_ENTRY) {
		m.iova = r->iova + off;
		m.size = MIN(LIB_IOTLB_ENTRY, r->len - off);
		m.uaddr = (uint64_t)(uintptr_t)r->addr + off;
		ret = vhost_frontend_request(v->f, VHOST_USER_IOTLB_MSG, &m, sizeof(m), NULL, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* SET_MEM_TABLE with every region (at most 8 per message, rest by ADD_MEM_REG). */
static int send_mem_table(struct vblk *v)
{
	struct gmem_region_desc d[VHOST_USER_MAX_MEM_REGIONS];
	int fds[VHOST_USER_MAX_MEM_REGIONS];
	unsigned i, n = 0;
	int ret;

	for (i = 0; i < v->nregions && n < VHOST_USER_MAX_MEM_REGIONS; i++) {
		if (!v->regions[i].addr)
			continue;
		d[n] = region_desc(v, &v->regions[i]);
		fds[n++] = v->regions[i].fd;
	}
	ret = vhost_frontend_set_mem_table(v->f, d, fds, n);
	if (ret)
		return ret;
	for (; i < v->nregions; i++) {
		if (!v->regions[i].addr)
			continue;
		if (!(v->proto_acked & FEAT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)))
			return -ENOSPC;
		d[0] = region_desc(v, &v->regions[i]);
		ret = vhost_frontend_add_mem_reg(v->f, &d[0], v->regions[i].fd);
		if (ret)
			return ret;
	}
	for (i = 0; i < v->nregions; i++) {
		v->regions[i].registered = v->regions[i].addr != NULL;
		if (v->regions[i].registered) {
			ret = region_iotlb(v, &v->regions[i], true);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static unsigned region_count(const struct vblk *v)
{
	unsigned i, n = 0;

	for (i = 0; i < v->nregions; i++)
		n += v->regions[i].addr != NULL;
	return n;
}

/* Add @r to the table and, once started, to the server. */
static int region_add(struct vblk *v, const struct lib_region *r, int *index)
{
	struct gmem_region_desc d;
	unsigned i;
	int ret;

	if (region_count(v) >= (v->state >= LIB_CONNECTED ? v->max_mem_slots : LIB_MAX_REGIONS)) {
		lib_set_error(0, "too many memory regions (server allows %llu)",
			      (unsigned long long)v->max_mem_slots);
		return -ENOSPC;
	}
	for (i = 0; i < v->nregions && v->regions[i].addr; i++)
		;
	if (i == LIB_MAX_REGIONS)
		return -ENOSPC;
	v->regions[i] = *r;
	v->regions[i].iova = v->next_iova;
	/* A gap after each region: an overrun never lands in another one. */
	v->next_iova += ALIGN_UP(r->len, LIB_IOVA_ALIGN) + LIB_IOVA_ALIGN;
	if (i == v->nregions)
		__atomic_store_n(&v->nregions, i + 1, __ATOMIC_RELEASE);
	if (v->state == LIB_STARTED) {
		if (v->proto_acked & FEAT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
			d = region_desc(v, &v->regions[i]);
			ret = vhost_frontend_add_mem_reg(v->f, &d, r->fd);
			if (!ret)
				ret = region_iotlb(v, &v->regions[i], true);
		} else {
			ret = send_mem_table(v);
		}
		if (ret) {
			lib_set_error(-ret, "registering memory region with the server");
			memset(&v->regions[i], 0, sizeof(v->regions[i]));
			return ret;
		}
		v->regions[i].registered = true;
	}
	*index = (int)i;
	return 0;
}

static int region_find(struct vblk *v, const struct vblk_mem_region *region)
{
	unsigned i;

	for (i = 0; i < v->nregions; i++)
		if (v->regions[i].addr == region->addr && v->regions[i].len == region->len &&
		    (int)i != v->lib_region)
			return (int)i;
	return -1;
}

static void region_remove(struct vblk *v, int i)
{
	struct lib_region *r = &v->regions[i];
	struct gmem_region_desc d = region_desc(v, r);

	if (r->registered && v->f && !__atomic_load_n(&v->dead, __ATOMIC_ACQUIRE)) {
		/* Invalidated first: once acked, the server uses it no more. */
		region_iotlb(v, r, false);
		if (v->proto_acked & FEAT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
			vhost_frontend_rem_mem_reg(v->f, &d, r->fd);
		} else {
			uint8_t *addr = r->addr;

			r->addr = NULL;     /* leave it out of the new table */
			send_mem_table(v);
			r->addr = addr;
		}
	}
	region_release(r);
}

static int memfd_region(size_t len, const char *name, struct lib_region *r)
{
	int fd = memfd_create(name, MFD_CLOEXEC), ret;
	void *p;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0) {
		ret = -errno;
		goto err_close;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		goto err_close;
	}
	*r = (struct lib_region){ .addr = p, .len = len, .fd = fd, .owned = true };
	return 0;

err_close:
	close(fd);
	return ret;
}

int vblk_alloc_mem_region(struct vblk *v, size_t len, struct vblk_mem_region *region)
{
	struct lib_region r;
	int ret, i;

	if (!v || !region || len == 0) {
		lib_set_error(0, "vblk_alloc_mem_region: invalid argument");
		return -EINVAL;
	}
	len = ALIGN_UP(len, PAGE);
	ret = memfd_region(len, "libvblk-buf", &r);
	if (ret) {
		lib_set_error(-ret, "vblk_alloc_mem_region: memfd of %zu bytes", len);
		return ret;
	}
	ret = region_add(v, &r, &i);
	if (ret) {
		region_release(&r);
		return ret;
	}
	*region = (struct vblk_mem_region){
		.addr = r.addr, .len = len, .iova = v->regions[i].iova, .fd_offset = 0, .fd = r.fd,
	};
	return 0;
}

void vblk_free_mem_region(struct vblk *v, const struct vblk_mem_region *region)
{
	int i;

	if (!v || !region)
		return;
	i = region_find(v, region);
	if (i >= 0 && v->regions[i].owned)
		region_remove(v, i);
}

int vblk_map_mem_region(struct vblk *v, struct vblk_mem_region *region)
{
	struct lib_region r;
	int ret, i;

	if (!v || !region || !region->addr || region->len == 0 || region->fd < 0 ||
	    region->fd_offset < 0 || region->flags || (uintptr_t)region->addr % PAGE ||
	    region->len % PAGE) {
		lib_set_error(0, "vblk_map_mem_region: invalid region (needs a page-aligned, "
			      "fd-backed mapping)");
		return -EINVAL;
	}
	if (region_find(v, region) >= 0) {
		lib_set_error(0, "vblk_map_mem_region: region already mapped");
		return -EEXIST;
	}
	r = (struct lib_region){
		.addr = region->addr, .len = region->len, .fd = region->fd,
		.fd_offset = region->fd_offset,
	};
	ret = region_add(v, &r, &i);
	if (ret)
		return ret;
	region->iova = v->regions[i].iova;
	return 0;
}

void vblk_unmap_mem_region(struct vblk *v, const struct vblk_mem_region *region)
{
	int i;

	if (!v || !region)
		return;
	i = region_find(v, region);
	if (i >= 0 && !v->regions[i].owned)
		region_remove(v, i);
}

/* ---- start: library region, memory table, rings ----------------------------- */

static uint64_t queue_bytes(const struct vblk *v, uint64_t *desc, uint64_t *drv, uint64_t *dev)
{
	uint64_t n = (uint64_t)v->queue_size;

	/* virtio 1.x ring areas (with the EVENT_IDX words). */
	*desc = 16 * n;
	*drv = v->packed ? 4 : 6 + 2 * n;
	*dev = v->packed ? 4 : 6 + 8 * n;
	return ALIGN_UP(*desc, PAGE) + ALIGN_UP(*drv, PAGE) + ALIGN_UP(*dev, PAGE) +
	       ALIGN_UP((uint64_t)v->queue_size * SLOT_STRIDE, PAGE);
}

static int queue_init(struct vblk *v, struct vblkq *q, unsigned index, uint8_t *area,
		      uint64_t iova)
{
	uint64_t ds, drs, dvs, off;
	unsigned i, n = (unsigned)v->queue_size;
	struct epoll_event ev;
	int ret;

	queue_bytes(v, &ds, &drs, &dvs);
	q->v = v;
	q->index = index;
	q->area = area;
	q->area_iova = iova;
	q->indirect = has(v, VIRTIO_RING_F_INDIRECT_DESC);
	{
		uint64_t segs;

		get_num(v, "max-segments", &segs);
		q->max_segs = (unsigned)segs;
		if (!q->indirect)
			q->max_segs = MIN(q->max_segs, n > 2 ? n - 2 : 0);
		q->size_max = UINT32_MAX;
		if (has(v, VIRTIO_BLK_F_SIZE_MAX) && v->cfg.size_max >= 512)
			q->size_max = v->cfg.size_max & ~511u;
	}
	ret = virtq_drv_init(&q->drv, n, v->packed, has(v, VIRTIO_RING_F_EVENT_IDX), area,
			     area + ALIGN_UP(ds, PAGE), area + ALIGN_UP(ds, PAGE) + ALIGN_UP(drs, PAGE));
	if (ret)
		return ret;
	q->drv_ready = true;
	/* Completions are asked for only while someone waits for them. */
	virtq_drv_disable_cb(&q->drv);
	off = ALIGN_UP(ds, PAGE) + ALIGN_UP(drs, PAGE) + ALIGN_UP(dvs, PAGE);
	q->reqs = calloc(n, sizeof(*q->reqs));
	if (!q->reqs)
		return -ENOMEM;
	for (i = n; i-- > 0;) {
		struct lib_req *r = &q->reqs[i];

		r->shared = area + off + (uint64_t)i * SLOT_STRIDE;
		r->iova = iova + off + (uint64_t)i * SLOT_STRIDE;
		r->next = q->free_reqs;
		q->free_reqs = r;
	}
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (q->kick_fd < 0 || q->call_fd < 0 || q->ep_fd < 0)
		return -errno;
	/* The completion fd: the call eventfd, plus the socket's hang-up so
	 * a waiter wakes when the server goes away. */
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 0 };
	if (epoll_ctl(q->ep_fd, EPOLL_CTL_ADD, q->call_fd, &ev) < 0)
		return -errno;
	ev = (struct epoll_event){ .events = EPOLLRDHUP, .data.u32 = 1 };
	if (epoll_ctl(q->ep_fd, EPOLL_CTL_ADD, v->sock_fd, &ev) < 0)
		return -errno;
	return 0;
}

static int queue_start(struct vblk *v, struct vblkq *q)
{
	/* Ring addresses: IOVAs with ACCESS_PLATFORM, else our own VAs. */
	uint64_t ds, drs, dvs, uva = v->access_platform ? q->area_iova :
				     (uint64_t)(uintptr_t)q->area;
	unsigned i = q->index, base = v->packed ? 0x80008000u : 0;
	int ret;

	queue_bytes(v, &ds, &drs, &dvs);
	ret = vhost_frontend_set_vring_num(v->f, i, (unsigned)v->queue_size);
	ret = ret ?: vhost_frontend_set_vring_base(v->f, i, base);
	ret = ret ?: vhost_frontend_set_vring_addr(v->f, i, 0, uva,
						   uva + ALIGN_UP(ds, PAGE) + ALIGN_UP(drs, PAGE),
						   uva + ALIGN_UP(ds, PAGE), 0);
	ret = ret ?: vhost_frontend_set_vring_kick(v->f, i, q->kick_fd);
	ret = ret ?: vhost_frontend_set_vring_call(v->f, i, q->call_fd);
	ret = ret ?: vhost_frontend_set_vring_enable(v->f, i, true);
	return ret;
}

/*
 * The "dirty-log" property: behave like a frontend during live migration
 * (a log memfd covering LIB_LOG_COVER bytes of IOVA space, SET_LOG_BASE,
 * LOG_ALL already in the features), so the cost of the server's logging
 * can be measured. The bits are never read.
 */
static int dirty_log_start(struct vblk *v)
{
	uint64_t size = LIB_LOG_COVER / 4096 / 8;
	int fd = memfd_create("libvblk-dirty-log", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	v->log_fd = fd;
	return vhost_frontend_set_log_base(v->f, fd, size, 0);
}

int vblk_start(struct vblk *v)
{
	uint64_t ds, drs, dvs, per_q, total;
	struct lib_region r;
	unsigned i;
	int ret, idx;

	if (!v)
		return -EINVAL;
	if (v->state != LIB_CONNECTED) {
		lib_set_error(0, "vblk_start: %s", v->state < LIB_CONNECTED ? "not connected"
									: "already started");
		return v->state < LIB_CONNECTED ? -ENODEV : -EBUSY;
	}
	if (v->queues) {
		lib_set_error(0, "vblk_start: an earlier start failed; destroy the instance");
		return -EBUSY;
	}
	if ((uint64_t)v->num_queues > v->max_queues) {
		lib_set_error(0, "num-queues %d exceeds the server's %llu", v->num_queues,
			      (unsigned long long)v->max_queues);
		return -EINVAL;
	}
	per_q = queue_bytes(v, &ds, &drs, &dvs);
	total = per_q * (uint64_t)v->num_queues;
	ret = memfd_region(total, "libvblk-rings", &r);
	if (ret) {
		lib_set_error(-ret, "vblk_start: ring memory");
		return ret;
	}
	ret = region_add(v, &r, &idx);
	if (ret) {
		region_release(&r);
		return ret;
	}
	v->lib_region = idx;
	v->queues = calloc((size_t)v->num_queues, sizeof(*v->queues));
	if (!v->queues) {
		ret = -ENOMEM;
		goto err;
	}
	for (i = 0; i < (unsigned)v->num_queues; i++)
		v->queues[i].kick_fd = v->queues[i].call_fd = v->queues[i].ep_fd = -1;
	for (i = 0; i < (unsigned)v->num_queues; i++) {
		ret = queue_init(v, &v->queues[i], i, v->regions[idx].addr + i * per_q,
				 v->regions[idx].iova + i * per_q);
		if (ret) {
			lib_set_error(-ret, "vblk_start: queue %u", i);
			goto err;
		}
	}
	ret = vhost_frontend_set_features(v->f, v->acked);
	if (ret) {
		proto_err(v, ret, "SET_FEATURES");
		goto err;
	}
	if (v->dirty_log) {
		ret = dirty_log_start(v);
		if (ret) {
			proto_err(v, ret, "SET_LOG_BASE");
			goto err;
		}
	}
	ret = send_mem_table(v);
	if (ret) {
		proto_err(v, ret, "memory table");
		goto err;
	}
	for (i = 0; i < (unsigned)v->num_queues; i++) {
		ret = queue_start(v, &v->queues[i]);
		if (ret) {
			proto_err(v, ret, "vring set-up");
			goto err;
		}
	}
	v->state = LIB_STARTED;
	return 0;

err:
	/* The instance stays connected but unusable; vblk_destroy cleans up. */
	return ret;
}

struct vblkq *vblk_get_queue(struct vblk *v, int index)
{
	if (!v || v->state != LIB_STARTED || index < 0 || index >= v->num_queues) {
		lib_set_error(0, "vblk_get_queue: no queue %d (started: %s)", index,
			      v && v->state == LIB_STARTED ? "yes" : "no");
		return NULL;
	}
	return &v->queues[index];
}
