/* SPDX-License-Identifier: MIT */
/*
 * fuzz_vhost_msg.c - the vhost-user backend against a fuzzer-written
 * stream of frontend messages (headers, payloads, fds: eventfds or memfds
 * of a few small sizes), over a socketpair handed to vhost_server_create()
 * or over a listening socket the fuzzer reconnects to. The control loop
 * runs in this thread (loop_run_until) until each message is consumed or
 * the connection closes. A fake device checks what vhost asks of it
 * (queue start/stop pairing, config ranges) and may pop from the rings it
 * is given. Per input: no crash or hang, no fd leaked, and in listening
 * mode a new frontend is served afterwards.
 *
 * Input: see struct fv_msg in fuzz_formats.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "fuzz.h"
#include "fixture/fixture.h"
#include "fuzz_formats.h"
#include "vhost/vhost.h"
#include "vhost/vhost_msg.h"

#define FV_NUM_QUEUES  2u
#define FV_CONFIG_SIZE 60u
#define FV_TIMEOUT_MS  3000
#define FV_MAX_CONNS   8u      /* reconnects per input in listening mode */
#define FV_POP_IOV     64u

struct fv {
	struct loop *ctrl;
	struct vhost_server *srv;
	struct vhost_dev_info info;
	uint8_t session;           /* FV_S_* */
	int client;                /* the fuzzer's frontend socket */
	bool closed;               /* the backend closed it (EOF seen) */
	struct sockaddr_un addr;   /* listening mode */
	socklen_t addr_len;
	unsigned conns;            /* connections made to the server */
	/* fake device state */
	unsigned disconnects;
	unsigned starts;
	unsigned posts;            /* done() calls queued on the loop */
	bool running[FV_NUM_QUEUES];
	uint8_t config[FV_CONFIG_SIZE];
	struct iovec iov[FV_POP_IOV];
	volatile uint8_t sink;
};

static struct fv fv;

/* ---- fake device ------------------------------------------------------- */

static int fv_get_config(void *o, uint32_t off, void *buf, uint32_t len)
{
	struct fv *f = o;

	FUZZ_CHECK(off <= FV_CONFIG_SIZE && len <= FV_CONFIG_SIZE - off,
		   "get_config(%u, %u) beyond %u bytes", off, len, FV_CONFIG_SIZE);
	memcpy(buf, f->config + off, len);
	return 0;
}

static int fv_set_config(void *o, uint32_t off, const void *buf, uint32_t len)
{
	struct fv *f = o;

	FUZZ_CHECK(off <= FV_CONFIG_SIZE && len <= FV_CONFIG_SIZE - off,
		   "set_config(%u, %u) beyond %u bytes", off, len, FV_CONFIG_SIZE);
	if (f->session & FV_S_REFUSE_CFG)
		return -EINVAL;
	memcpy(f->config + off, buf, len);
	return 0;
}

static void fv_set_features(void *o, uint64_t features)
{
	struct fv *f = o;

	for (unsigned i = 0; i < FV_NUM_QUEUES; i++)
		FUZZ_CHECK(!f->running[i], "set_features while vring %u runs", i);
	FUZZ_CHECK(!(features & ~(f->info.features | 1ull << VHOST_USER_F_PROTOCOL_FEATURES)),
		   "features %#llx not offered", (unsigned long long)features);
}

/* What a device does with a ring it serves: pop, check, push back. */
static void fv_serve(struct fv *f, struct vhost_vring *vr)
{
	struct virtq_elem e;
	unsigned resubmit = virtq_resubmit_pending(&vr->vq);
	int n;

	if (!(f->session & FV_S_POP))
		return;
	for (n = 0; n < 4; n++) {
		int ret = virtq_pop(&vr->vq, vr->mem, &e, f->iov, FV_POP_IOV);

		/* -EAGAIN: an IOTLB view lacks an address (ACCESS_PLATFORM). */
		FUZZ_CHECK(ret == 0 || ret == 1 || ret == -EIO ||
			   (ret == -EAGAIN && gmem_is_view(vr->mem)), "virtq_pop: %d", ret);
		if (ret != 1)
			break;
		for (unsigned i = 0; i < e.out_num + e.in_num; i++) {
			f->sink ^= ((uint8_t *)e.iov[i].iov_base)[0];
			f->sink ^= ((uint8_t *)e.iov[i].iov_base)[e.iov[i].iov_len - 1];
		}
		virtq_push(&vr->vq, &e, 0);
	}
	(void)virtq_needs_notify(&vr->vq);
	(void)virtq_enable_notify(&vr->vq);
	if (log_max_level >= LOG_DEBUG)
		fprintf(stderr, "fuzz: vring %u: %d popped (%u to resubmit before)%s\n", vr->index,
			n, resubmit, vr->vq.broken ? ", broken" : "");
}

static int fv_queue_start(void *o, struct vhost_vring *vr)
{
	struct fv *f = o;

	FUZZ_CHECK(vr->index < f->info.num_queues, "start of vring %u", vr->index);
	FUZZ_CHECK(!f->running[vr->index], "vring %u started twice", vr->index);
	FUZZ_CHECK(vr->started && vr->mem, "vring %u started without memory", vr->index);
	if (f->session & FV_S_FAIL_START)
		return -EIO;
	f->running[vr->index] = true;
	f->starts++;
	fv_serve(f, vr);
	return 0;
}

struct fv_post {
	vhost_done_cb done;
	void *arg;
};

static void fv_post_fn(void *arg)
{
	struct fv_post p = *(struct fv_post *)arg;

	free(arg);
	fv.posts--;
	p.done(p.arg);
}

static void fv_queue_stop(void *o, struct vhost_vring *vr, vhost_done_cb done, void *arg)
{
	struct fv *f = o;
	struct fv_post *p;

	FUZZ_CHECK(vr->index < f->info.num_queues && f->running[vr->index],
		   "stop of vring %u, not running", vr->index);
	fv_serve(f, vr);
	f->running[vr->index] = false;
	if (!(f->session & FV_S_ASYNC_STOP)) {
		done(arg);
		return;
	}
	p = malloc(sizeof(*p));
	FUZZ_SETUP(p, "malloc");
	*p = (struct fv_post){ done, arg };
	f->posts++;
	FUZZ_SETUP(loop_post(f->ctrl, fv_post_fn, p) == 0, "loop_post");
}

static int fv_queue_exec(void *o, struct vhost_vring *vr, loop_fn fn, void *arg)
{
	struct fv *f = o;

	FUZZ_CHECK(vr->index < f->info.num_queues && f->running[vr->index],
		   "exec on vring %u, not running", vr->index);
	fn(arg);
	fv_serve(f, vr);   /* swapped memory / fds must be usable at once */
	return 0;
}

static void fv_disconnected(void *o)
{
	struct fv *f = o;

	for (unsigned i = 0; i < FV_NUM_QUEUES; i++)
		FUZZ_CHECK(!f->running[i], "disconnected while vring %u runs", i);
	f->disconnects++;
}

static const struct vhost_dev_ops fv_ops = {
	.get_config = fv_get_config,
	.set_config = fv_set_config,
	.set_features = fv_set_features,
	.queue_start = fv_queue_start,
	.queue_stop = fv_queue_stop,
	.queue_exec = fv_queue_exec,
	.disconnected = fv_disconnected,
};

/* ---- the frontend side ------------------------------------------------- */

#define count_fds() fixture_count_fds(0)

/* Read and drop whatever the backend sent (closing any fds); note EOF. */
static void fv_drain(struct fv *f)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	char data[1024];

	while (!f->closed) {
		struct iovec v = { data, sizeof(data) };
		struct msghdr mh = {
			.msg_iov = &v, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n = recvmsg(f->client, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(fd);
			}
		}
		if (n <= 0)
			f->closed = true;   /* EOF, ECONNRESET: the backend let go */
	}
}

/* Everything sent has been read by the backend, and no done() is queued. */
static bool fv_settled(void *arg)
{
	struct fv *f = arg;
	int outq = 0;

	fv_drain(f);
	if (f->closed)
		return f->posts == 0;
	if (ioctl(f->client, SIOCOUTQ, &outq) < 0)
		return true;
	return outq == 0 && f->posts == 0;
}

static void fv_pump(struct fv *f, const char *what)
{
	int ret = loop_run_until(f->ctrl, fv_settled, f, FV_TIMEOUT_MS);

	FUZZ_CHECK(ret == 0, "backend stuck %s (posts %u, closed %d)", what, f->posts,
		   f->closed);
}

/* Until the server has dropped every connection made so far. */
static bool fv_all_gone(void *arg)
{
	struct fv *f = arg;

	return f->disconnects == f->conns && f->posts == 0;
}

static void fv_connect(struct fv *f)
{
	f->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	FUZZ_SETUP(f->client >= 0, "socket");
	FUZZ_SETUP(connect(f->client, (struct sockaddr *)&f->addr, f->addr_len) == 0,
		   "connect");
	f->closed = false;
	f->conns++;
}

/* Close our end and wait until the backend has torn the session down. */
static void fv_hangup(struct fv *f)
{
	int ret;

	close(f->client);
	f->client = -1;
	ret = loop_run_until(f->ctrl, fv_all_gone, f, FV_TIMEOUT_MS);
	FUZZ_CHECK(ret == 0, "connection not released (%u of %u, posts %u)",
		   f->disconnects, f->conns, f->posts);
}

static int fv_make_fds(uint8_t ctl, int *fds, const uint8_t *fill, size_t fill_len)
{
	unsigned n = ctl & FV_C_NFDS_MASK, kind = (ctl & FV_C_KIND_MASK) >> FV_C_KIND_SHIFT;
	int memfd = -1;

	if (n > FV_MAX_FDS)
		n = FV_MAX_FDS;
	if (kind && n) {
		memfd = memfd_create("vblk-fuzz-vhost", MFD_CLOEXEC);
		FUZZ_SETUP(memfd >= 0 && ftruncate(memfd, fv_memfd_size[kind]) == 0, "memfd");
		if (fill_len > fv_memfd_size[kind])
			fill_len = fv_memfd_size[kind];
		FUZZ_SETUP(!fill_len || pwrite(memfd, fill, fill_len, 0) == (ssize_t)fill_len,
			   "pwrite");
	}
	for (unsigned i = 0; i < n; i++) {
		fds[i] = kind ? memfd : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		FUZZ_SETUP(fds[i] >= 0, "eventfd");
	}
	return (int)n;
}

static void fv_close_fds(uint8_t ctl, int *fds, int n)
{
	bool memfd = ctl & FV_C_KIND_MASK;

	for (int i = 0; i < n && !(memfd && i); i++)
		close(fds[i]);
}

/* One sendmsg, waiting (running the loop) while the socket is full. */
static void fv_send(struct fv *f, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FV_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t off = 0;

	do {
		struct iovec v = { (char *)buf + off, len - off };
		struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1 };
		ssize_t n;

		if (nfds && !off) {
			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
		}
		n = sendmsg(f->client, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			fv_pump(f, "with a full socket");
			if (f->closed)
				return;
			continue;
		}
		if (n < 0) {   /* EPIPE, ECONNRESET: the backend closed */
			fv_pump(f, "after closing");
			f->closed = true;
			return;
		}
		off += (size_t)n;
	} while (off < len);
}

/* Send one message from the input; false when the input is used up. */
static bool fv_message(struct fv *f, struct fuzz_in *in)
{
	uint8_t buf[sizeof(struct vhost_msg_hdr) + UINT16_MAX];
	struct vhost_msg_hdr hdr;
	struct fv_msg m;
	int fds[FV_MAX_FDS], nfds;
	const uint8_t *fill = NULL;
	size_t len, fill_len = 0;

	if (in->n < sizeof(m))
		return false;
	fin_copy(in, &m, sizeof(m));
	hdr = (struct vhost_msg_hdr){
		.request = m.request,
		.flags = m.flags,
		.size = (uint32_t)(m.size[0] | m.size[1] << 8),
	};
	memcpy(buf, &hdr, sizeof(hdr));
	len = in->n < hdr.size ? in->n : hdr.size;
	fin_copy(in, buf + sizeof(hdr), len);
	if (m.ctl & FV_C_FILL) {
		fill_len = fin_u16(in);
		fill_len = in->n < fill_len ? in->n : fill_len;
		fill = in->p;
		in->p += fill_len;
		in->n -= fill_len;
	}
	nfds = fv_make_fds(m.ctl, fds, fill, fill_len);
	if (m.ctl & FV_C_SPLIT) {
		fv_send(f, buf, sizeof(hdr), fds, nfds);
		if (!f->closed)
			fv_send(f, buf + sizeof(hdr), len, NULL, 0);
	} else {
		fv_send(f, buf, sizeof(hdr) + len, fds, nfds);
	}
	fv_close_fds(m.ctl, fds, nfds);
	if (!f->closed)
		fv_pump(f, "reading a message");
	return true;
}

/* A whole reply is waiting, or the backend hung up. */
static bool fv_reply_ready(void *arg)
{
	struct fv *f = arg;
	char c;
	int avail = 0;

	if (recv(f->client, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		return true;
	return ioctl(f->client, FIONREAD, &avail) == 0 &&
	       avail >= (int)(sizeof(struct vhost_msg_hdr) + sizeof(uint64_t));
}

/* A fresh frontend must still get an answer to GET_FEATURES. */
static void fv_check_served(struct fv *f)
{
	struct vhost_msg_hdr hdr = { VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0 };
	struct { struct vhost_msg_hdr h; uint64_t v; } __attribute__((packed)) r;
	ssize_t got;

	fv_connect(f);
	fv_send(f, &hdr, sizeof(hdr), NULL, 0);
	FUZZ_CHECK(!f->closed && loop_run_until(f->ctrl, fv_reply_ready, f, FV_TIMEOUT_MS) == 0,
		   "a new frontend got no reply to GET_FEATURES");
	got = recv(f->client, &r, sizeof(r), MSG_DONTWAIT);
	FUZZ_CHECK(got == (ssize_t)sizeof(r), "GET_FEATURES reply: %zd bytes", got);
	FUZZ_CHECK(r.h.request == VHOST_USER_GET_FEATURES && r.h.size == 8 &&
		   r.h.flags == (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) &&
		   r.v == (f->info.features | 1ull << VHOST_USER_F_PROTOCOL_FEATURES),
		   "bad GET_FEATURES reply: request %u flags %#x size %u",
		   r.h.request, r.h.flags, r.h.size);
	fv_hangup(f);
}

static void fv_setup(void)
{
	if (fv.ctrl)
		return;
	FUZZ_SETUP(loop_create("fuzz-ctrl", &fv.ctrl) == 0, "loop_create");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned serial;
	struct fuzz_in in = { data, size };
	int fds0, sv[2], ret, lfd;
	struct loop *ctrl;

	fuzz_quiet_logs();
	fv_setup();
	fds0 = count_fds();

	ctrl = fv.ctrl;
	memset(&fv, 0, sizeof(fv));
	fv.ctrl = ctrl;
	fv.session = fin_u8(&in);
	for (unsigned i = 0; i < FV_CONFIG_SIZE; i++)
		fv.config[i] = (uint8_t)(0xa0 + i);
	fv.info = (struct vhost_dev_info){
		.num_queues = fv.session & FV_S_ONE_QUEUE ? 1 : FV_NUM_QUEUES,
		.max_queue_size = 1024,
		.features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
			    (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
			    (1ull << VIRTIO_F_RING_PACKED) | (1ull << 9) /* BLK_F_FLUSH */ |
			    (1ull << 26) /* VHOST_F_LOG_ALL: dirty logging */ |
			    (1ull << VIRTIO_F_ACCESS_PLATFORM) /* the IOTLB */,
		.config_size = FV_CONFIG_SIZE,
	};

	if (fv.session & FV_S_LISTEN) {
		/* An abstract socket name: nothing to clean up on disk. */
		fv.addr.sun_family = AF_UNIX;
		ret = snprintf(fv.addr.sun_path + 1, sizeof(fv.addr.sun_path) - 1,
			       "vblk-fuzz-vhost-%d-%u", (int)getpid(), serial++);
		fv.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + ret);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		FUZZ_SETUP(lfd >= 0 && bind(lfd, (struct sockaddr *)&fv.addr, fv.addr_len) == 0 &&
			   listen(lfd, 8) == 0, "listening socket");
		ret = vhost_server_create(fv.ctrl, NULL, lfd, &fv.info, &fv_ops, &fv, &fv.srv);
		FUZZ_SETUP(ret == 0, "vhost_server_create (listening fd)");
		fv_connect(&fv);
	} else {
		FUZZ_SETUP(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
			   "socketpair");
		ret = vhost_server_create(fv.ctrl, NULL, sv[1], &fv.info, &fv_ops, &fv, &fv.srv);
		FUZZ_SETUP(ret == 0, "vhost_server_create (connected fd)");
		fv.client = sv[0];
		FUZZ_SETUP(fcntl(fv.client, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
		fv.conns = 1;
	}

	while (fv_message(&fv, &in)) {
		if (!fv.closed)
			continue;
		if (!(fv.session & FV_S_LISTEN) || fv.conns == FV_MAX_CONNS)
			break;
		/* The backend dropped us: a frontend reconnects. */
		fv_hangup(&fv);
		fv_connect(&fv);
	}
	fv_hangup(&fv);
	FUZZ_CHECK(!vhost_server_connected(fv.srv), "still connected after hang-up");
	if (fv.session & FV_S_LISTEN)
		fv_check_served(&fv);

	if (log_max_level >= LOG_DEBUG)
		fprintf(stderr, "fuzz: vhost: %u connections, %u ring starts\n", fv.conns,
			fv.starts);
	vhost_server_destroy(fv.srv);
	fv.srv = NULL;
	FUZZ_CHECK(fv.posts == 0, "%u done() calls left queued", fv.posts);
	for (unsigned i = 0; i < FV_NUM_QUEUES; i++)
		FUZZ_CHECK(!fv.running[i], "vring %u left running", i);
	ret = count_fds();
	/* qemu-user keeps the fds a too-small control buffer would have cut */
	FUZZ_CHECK(ret == fds0 || test_qemu_user(), "fd leak: %d open before, %d after", fds0,
		   ret);
	return 0;
}
