/* SPDX-License-Identifier: MIT */
/*
 * vhost_server_log.c - dirty logging for migration on the backend side:
 * SET_LOG_BASE, and applying VHOST_F_LOG_ALL / a ring's log address to
 * running rings (the log itself: vhost_log.c, gmem_log).
 */
#include <errno.h>

#include "vhost/vhost_server_internal.h"

/* Running rings (all, or only @only) take @log's logging; -EPROTO, nothing
 * changed, if one's areas are outside it. */
int log_apply(struct vhost_server *s, struct gmem_log *log, bool on,
	      struct vhost_vring *only)
{
	const char *why;
	unsigned i;

	if (vhost_log_apply(s->vrings, s->info.num_queues, only, log, on, s->mem, s->ops,
			    s->opaque, &i, &why)) {
		bad(s, "vring %u: %s", i, why);
		return -EPROTO;
	}
	return 0;
}

/*
 * The dirty log for migration (protocol feature LOG_SHMFD): checked,
 * mapped, then swapped into every running ring before the old one is
 * unmapped, so no iothread ever marks an unmapped log. QEMU waits for an
 * (empty) reply.
 */
int h_set_log_base(struct vhost_server *s, struct vhost_msg *m)
{
	struct gmem_log *log, *old = s->log;
	const char *why;
	int ret;

	if (!(s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD))) {
		bad(s, "SET_LOG_BASE: protocol feature LOG_SHMFD not negotiated");
		return -EPROTO;
	}
	ret = vhost_log_open(&m->payload.log, m->fds[0], s->mem, &log, &why);
	if (ret) {
		bad(s, "SET_LOG_BASE: size %#llx offset %#llx: %s",
		    (unsigned long long)m->payload.log.mmap_size,
		    (unsigned long long)m->payload.log.mmap_offset, why);
		return -EPROTO;
	}
	if (log_apply(s, log, log_all_on(s), NULL)) {
		gmem_log_put(log);
		return -EPROTO;
	}
	s->log = log;
	gmem_log_put(old);
	return send_reply(s, m->hdr.request, NULL, 0);
}
