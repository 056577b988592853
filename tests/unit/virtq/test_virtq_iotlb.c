/* SPDX-License-Identifier: MIT */
/*
 * virtq_pop through an IOTLB view (gmem_view_create): descriptors,
 * indirect tables and buffers given as IOVAs are translated through the
 * view; a chain whose buffer, indirect table or part of one the view lacks
 * comes back -EAGAIN with the first missing IOVA and the access needed,
 * and nothing is consumed (the same chain pops once a view has it);
 * buffers whose mapping forbids the access pop with elem.denied (and
 * status_denied when the last writable one is among them); an unreadable
 * indirect table breaks the queue. Split and packed rings.
 *
 * Guest memory: one memfd region at GPA 0 (frontend VA 0x7000_0000_0000);
 * the driver writes IOVAs = GPA + IOVA_OFF into the rings.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "gmem/gmem.h"
#include "gmem/iotlb.h"
#include "virtq/virtq.h"

#define MEM      0x40000u
#define UVA      0x700000000000ull
#define IOVA_OFF 0x100000000ull
#define NUM      8u
#define PAGE     0x1000u

static uint8_t *host;
static struct gmem *mem;

static struct gmem *view_of(struct iotlb *t)
{
	struct gmem *v;

	if (iotlb_view(t, mem, &v))
		tap_bail("view");
	return v;
}

/* Map GPA range [gpa, gpa+len) at its IOVA with @perm. */
static void map(struct iotlb *t, uint64_t gpa, uint64_t len, unsigned perm)
{
	if (iotlb_update(t, gpa + IOVA_OFF, len, UVA + gpa, perm))
		tap_bail("update");
}

static void run(bool packed)
{
	const char *m = packed ? "packed" : "split";
	uint64_t desc = 0x0000, drv = 0x1000, dev = 0x2000;
	struct virtq_config cfg = { .num = NUM, .packed = packed, .indirect = true,
				    .desc = host + desc, .driver = host + drv,
				    .device = host + dev, .base = packed ? 0x8000 : 0 };
	struct virtq vq;
	struct virtq_drv d;
	struct virtq_elem el;
	struct iovec iov[16];
	struct iotlb *t;
	struct gmem *v;
	/* header (16, readable), data 0x1800 bytes crossing pages (writable),
	 * status (1, writable) */
	struct virtq_drv_buf b[3] = {
		{ 0x8000 + IOVA_OFF, 16 }, { 0x9800 + IOVA_OFF, 0x1800 }, { 0xc000 + IOVA_OFF, 1 },
	};

	memset(host, 0, MEM);
	if (virtq_init(&vq, &cfg) ||
	    virtq_drv_init(&d, NUM, packed, false, cfg.desc, cfg.driver, cfg.device))
		tap_bail("init");
	iotlb_create(&t);
	/* Rings are the caller's (vhost translates them); buffers miss. */
	map(t, 0, 0x3000, GMEM_PERM_RW);
	map(t, 0x8000, PAGE, GMEM_PERM_READ);
	v = view_of(t);
	virtq_drv_add(&d, b, 1, 2, (void *)1, NULL, 0);
	is(virtq_pop(&vq, v, &el, iov, 16), -EAGAIN, "%s: data not mapped: -EAGAIN", m);
	ok(!vq.broken, "%s: not broken", m);
	is(vq.miss_iova, 0x9800 + IOVA_OFF, "%s: the miss names the data buffer", m);
	is(vq.miss_perm, GMEM_PERM_WRITE, "%s: for writing", m);
	gmem_put(v);

	/* Page by page, as an IOMMU answers misses. */
	map(t, 0x9000, PAGE, GMEM_PERM_WRITE);
	v = view_of(t);
	is(virtq_pop(&vq, v, &el, iov, 16), -EAGAIN, "%s: half the data: -EAGAIN", m);
	is(vq.miss_iova, 0xa000 + IOVA_OFF, "%s: at the next page", m);
	gmem_put(v);
	map(t, 0xa000, PAGE, GMEM_PERM_WRITE);
	map(t, 0xc000, PAGE, GMEM_PERM_RW);
	v = view_of(t);
	is(virtq_pop(&vq, v, &el, iov, 16), 1, "%s: all mapped: the same chain pops", m);
	is(el.out_num, 1u, "%s: one readable iovec", m);
	is(el.in_num, 2u, "%s: data pages merged into one iovec, plus the status", m);
	ok(el.in_num == 2 && iov[1].iov_base == host + 0x9800 && iov[1].iov_len == 0x1800,
	   "%s: data at the right host address", m);
	ok(!el.denied, "%s: nothing denied", m);
	virtq_push(&vq, &el, 1);
	gmem_put(v);

	/* The data mapped read-only: popped, denied; status still writable. */
	map(t, 0x9000, 2 * PAGE, GMEM_PERM_READ);
	v = view_of(t);
	virtq_drv_get_used(&d, &(uint32_t){ 0 });
	virtq_drv_add(&d, b, 1, 2, (void *)2, NULL, 0);
	is(virtq_pop(&vq, v, &el, iov, 16), 1, "%s: read-only data: popped", m);
	ok(el.denied && !el.status_denied, "%s: denied, status byte writable", m);
	virtq_push(&vq, &el, 1);
	gmem_put(v);
	/* The status too. */
	map(t, 0xc000, PAGE, GMEM_PERM_READ);
	v = view_of(t);
	virtq_drv_get_used(&d, &(uint32_t){ 0 });
	virtq_drv_add(&d, b, 1, 2, (void *)3, NULL, 0);
	is(virtq_pop(&vq, v, &el, iov, 16), 1, "%s: read-only status: popped", m);
	ok(el.denied && el.status_denied, "%s: denied, status denied too", m);
	virtq_push(&vq, &el, 1);
	gmem_put(v);
	/* A write-only header: the device may not read it. */
	map(t, 0x9000, 2 * PAGE, GMEM_PERM_WRITE);
	map(t, 0xc000, PAGE, GMEM_PERM_RW);
	map(t, 0x8000, PAGE, GMEM_PERM_WRITE);
	v = view_of(t);
	virtq_drv_get_used(&d, &(uint32_t){ 0 });
	virtq_drv_add(&d, b, 1, 2, (void *)4, NULL, 0);
	is(virtq_pop(&vq, v, &el, iov, 16), 1, "%s: write-only header: popped", m);
	ok(el.denied && !el.status_denied, "%s: denied", m);
	virtq_push(&vq, &el, 1);
	gmem_put(v);

	/* Indirect: the table itself misses, then is not readable. */
	{
		void *table = host + 0xd000;

		map(t, 0x8000, PAGE, GMEM_PERM_READ);
		v = view_of(t);
		virtq_drv_get_used(&d, &(uint32_t){ 0 });
		virtq_drv_add(&d, b, 1, 2, (void *)5, table, 0xd000 + IOVA_OFF);
		is(virtq_pop(&vq, v, &el, iov, 16), -EAGAIN, "%s: indirect table missing", m);
		is(vq.miss_iova, 0xd000 + IOVA_OFF, "%s: the miss names the table", m);
		is(vq.miss_perm, GMEM_PERM_READ, "%s: for reading", m);
		gmem_put(v);
		map(t, 0xd000, PAGE, GMEM_PERM_READ);
		v = view_of(t);
		is(virtq_pop(&vq, v, &el, iov, 16), 1, "%s: indirect chain pops once mapped", m);
		ok(el.out_num == 1 && el.in_num == 2 && !el.denied, "%s: its buffers", m);
		virtq_push(&vq, &el, 1);
		gmem_put(v);

		map(t, 0xd000, PAGE, GMEM_PERM_WRITE);
		v = view_of(t);
		virtq_drv_get_used(&d, &(uint32_t){ 0 });
		virtq_drv_add(&d, b, 1, 2, (void *)6, table, 0xd000 + IOVA_OFF);
		is(virtq_pop(&vq, v, &el, iov, 16), -EIO, "%s: write-only indirect table: -EIO", m);
		ok(vq.broken, "%s: the queue is broken", m);
		gmem_put(v);
	}
	iotlb_destroy(t);
	virtq_drv_fini(&d);
	virtq_fini(&vq);
}

int main(void)
{
	struct gmem_region_desc rd = { .gpa = 0, .size = MEM, .uva = UVA };
	int fd = memfd_create("vblk-virtq-iotlb", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, MEM) || gmem_add(NULL, &rd, fd, &mem))
		tap_bail("memory");
	host = gmem_ptr(mem, 0, MEM);
	run(false);
	run(true);
	gmem_put(mem);
	close(fd);
	return tap_done();
}
