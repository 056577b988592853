/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging of ring writes (virtq_set_log): each write the device
 * makes to the rings sets exactly the bits of the pages it touched, after
 * the write; pops (reads) set none; logging off sets none. The rings are
 * placed so that entries cross page boundaries. GPA = memfd offset.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "gmem/gmem.h"
#include "gmem/gmem_log.h"
#include "virtq/virtq.h"

#define MEM 0x10000u
#define LOG_BYTES 8u            /* 64 pages: 256 KiB */
#define NUM 8u

static uint8_t *mem_host;
static struct gmem *mem;
static int log_fd;
static struct gmem_log *lg;

/* The pages marked since the last call, as a bit mask; clears the log. */
static uint64_t take_bits(void)
{
	uint64_t v = 0;

	if (pread(log_fd, &v, sizeof(v), 0) != (ssize_t)sizeof(v))
		tap_bail("pread");
	if (pwrite(log_fd, &(uint64_t){ 0 }, sizeof(v), 0) != (ssize_t)sizeof(v))
		tap_bail("pwrite");
	return v;
}

#define PG(n) (1ull << (n))

static void add_req(struct virtq_drv *d, uint64_t buf)
{
	struct virtq_drv_buf b[2] = { { buf, 16 }, { buf + 0x100, 512 } };

	if (virtq_drv_add(d, b, 1, 1, (void *)1, NULL, 0))
		tap_bail("drv add");
}

static void test_split(bool event_idx)
{
	uint64_t desc = 0x0000, avail = 0x0800, used = 0x1ff8;  /* used ring crosses 0x2000 */
	struct virtq_config cfg = { .num = NUM, .event_idx = event_idx, .desc = mem_host + desc,
				    .driver = mem_host + avail, .device = mem_host + used };
	struct virtq vq;
	struct virtq_drv d;
	struct virtq_elem el[2];
	struct iovec iov[2][4];
	const char *m = event_idx ? "split/event_idx" : "split";

	memset(mem_host, 0, MEM);
	if (virtq_init(&vq, &cfg) ||
	    virtq_drv_init(&d, NUM, false, event_idx, cfg.desc, cfg.driver, cfg.device))
		tap_bail("init");
	virtq_set_log(&vq, lg, 0, used);
	take_bits();
	add_req(&d, 0x8000);
	add_req(&d, 0x9000);
	is(virtq_pop(&vq, mem, &el[0], iov[0], 4), 1, "%s: pop", m);
	is(virtq_pop(&vq, mem, &el[1], iov[1], 4), 1, "%s: pop", m);
	is(take_bits(), 0, "%s: pops write nothing", m);
	virtq_fill(&vq, &el[0], 1);
	is(take_bits(), PG(1) | PG(2), "%s: used entry 0 (0x1ffc..0x2003): pages 1 and 2", m);
	virtq_fill(&vq, &el[1], 1);
	is(take_bits(), PG(2), "%s: used entry 1: page 2", m);
	virtq_flush(&vq);
	is(take_bits(), PG(1), "%s: used->idx (0x1ffa): page 1", m);
	virtq_disable_notify(&vq);
	is(take_bits(), event_idx ? PG(2) : PG(1),
	   "%s: notification off: %s", m, event_idx ? "avail_event (0x203c)" : "used->flags");
	virtq_enable_notify(&vq);
	is(take_bits(), event_idx ? PG(2) : PG(1), "%s: notification on: same word", m);

	/* Logging off: the same writes mark nothing. */
	virtq_set_log(&vq, NULL, 0, 0);
	add_req(&d, 0x8000);
	is(virtq_pop(&vq, mem, &el[0], iov[0], 4), 1, "%s: pop", m);
	virtq_push(&vq, &el[0], 1);
	virtq_disable_notify(&vq);
	is(take_bits(), 0, "%s: logging off: nothing marked", m);
	virtq_drv_fini(&d);
	virtq_fini(&vq);
}

static void test_packed(void)
{
	uint64_t desc = 0x2ff0, drv = 0x5000, dev = 0x6ffe - 2;  /* desc 1 starts page 3 */
	struct virtq_config cfg = { .num = NUM, .packed = true, .desc = mem_host + desc,
				    .driver = mem_host + drv, .device = mem_host + dev,
				    .base = 0x8000 /* wrap counters start at 1 */ };
	struct virtq vq;
	struct virtq_drv d;
	struct virtq_elem el[2];
	struct iovec iov[2][4];

	memset(mem_host, 0, MEM);
	if (virtq_init(&vq, &cfg) ||
	    virtq_drv_init(&d, NUM, true, false, cfg.desc, cfg.driver, cfg.device))
		tap_bail("init");
	virtq_set_log(&vq, lg, desc, dev);
	take_bits();
	add_req(&d, 0x8000);
	add_req(&d, 0x9000);
	is(virtq_pop(&vq, mem, &el[0], iov[0], 4), 1, "packed: pop");
	is(virtq_pop(&vq, mem, &el[1], iov[1], 4), 1, "packed: pop");
	is(take_bits(), 0, "packed: pops write nothing");
	/* A 2-descriptor chain: its used descriptor goes in slot 0. */
	virtq_fill(&vq, &el[0], 1);
	is(take_bits(), PG(2), "packed: used descriptor in slot 0 (0x2ff0): page 2");
	virtq_fill(&vq, &el[1], 1);
	is(take_bits(), PG(3), "packed: used descriptor in slot 2 (0x3010): page 3");
	virtq_disable_notify(&vq);
	is(take_bits(), PG(6), "packed: device event area: page 6");
	virtq_set_log(&vq, NULL, 0, 0);
	virtq_enable_notify(&vq);
	is(take_bits(), 0, "packed: logging off: nothing marked");
	virtq_drv_fini(&d);
	virtq_fini(&vq);
}

int main(void)
{
	struct gmem_region_desc r = { .gpa = 0, .size = MEM, .uva = 0x7f0000000000ull };
	int fd = memfd_create("vq-log-mem", MFD_CLOEXEC);

	log_fd = memfd_create("vq-log", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, MEM) || log_fd < 0 || ftruncate(log_fd, LOG_BYTES))
		tap_bail("memfd");
	mem_host = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem_host == MAP_FAILED || gmem_add(NULL, &r, fd, &mem) ||
	    gmem_log_create(log_fd, LOG_BYTES, 0, &lg))
		tap_bail("setup");
	test_split(false);
	test_split(true);
	test_packed();
	gmem_log_put(lg);
	gmem_put(mem);
	munmap(mem_host, MEM);
	close(fd);
	close(log_fd);
	return tap_done();
}
