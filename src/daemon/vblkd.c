/* SPDX-License-Identifier: MIT */
/*
 * vblkd.c - the vhost-user virtio-blk daemon: command line, exports,
 * iothreads, signals. Follows the vhost-user backend program conventions
 * (--socket-path, --fd, --print-capabilities, --blk-file, --read-only).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sys/signalfd.h>

#include "common/compiler.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/control.h"
#include "daemon/control_stats.h"
#include "daemon/metrics.h"
#include "daemon/options.h"
#include "daemon/systemd.h"
#include "daemon/sandbox.h"
#include "mgmt/mgmt.h"

#define MAX_EXPORTS 64
#define MAX_IOTHREADS 64
/* Adaptive polling keeps spinning this long after the last request: more
 * than a guest's turnaround at QD1 (completion interrupt, guest block
 * layer, next submission: typically 10-50 us), so a synchronous stream
 * stays polled; and at most 0.1 ms of CPU spent per burst once idle. */
#define DEFAULT_POLL_IDLE_US 100
#define MAX_POLL_IDLE_US 1000000
/* How long shutdown waits for requests in flight, seconds. */
#define DEFAULT_SHUTDOWN_TIMEOUT 30
#define MAX_SHUTDOWN_TIMEOUT 3600
/* Then an export still holding requests gets a flush bounded by this (or
 * by the shutdown timeout, if shorter). */
#define SHUTDOWN_FLUSH_TIMEOUT_MS 5000
/* Exit status: requests were still in flight at the shutdown timeout, or
 * an image could not be flushed (man/vblkd.8, EXIT STATUS). */
#define EXIT_SHUTDOWN_INCOMPLETE 3

static const char usage_text[] =
"Usage: vblkd --socket-path=PATH (--file=IMAGE | --rbd=POOL/IMAGE | --null=SIZE) [options]\n"
"       vblkd --export=socket-path=PATH,file=IMAGE[,num-queues=N,...] [--export=...]\n"
"       vblkd --print-capabilities\n"
"\n"
"Serve a disk image to a VM over the vhost-user-blk protocol.\n"
"\n"
"Export options (apply to the export given by --socket-path/--fd):\n"
"  --socket-path=PATH   listen on this unix socket\n"
"  --fd=FD              use this inherited listening (or connected) socket\n"
"  --file=IMAGE         serve this file or block device (alias --blk-file)\n"
"  --null=SIZE          serve a null device of SIZE bytes (K/M/G/T suffixes):\n"
"                       reads return zeroes, writes are dropped\n"
"  --rbd=POOL/IMAGE[@SNAP]\n"
"                       serve this Ceph RBD image through librbd (a snapshot is\n"
"                       served read-only)\n"
"  --ceph-conf=PATH     rbd: the ceph.conf to read (default: librados' search)\n"
"  --id=NAME            rbd: the Ceph client name, without 'client.' (default admin)\n"
"  --keyring=PATH       rbd: the keyring holding the client's key\n"
"  --rbd-timeout=SECONDS\n"
"                       rbd: a request, or connecting, that takes longer fails\n"
"                       (I/O error) (1-3600, default %u)\n"
"  --num-queues=N       request queues (1-%d, default 1)\n"
"  --queue-size=N       largest ring size accepted (power of two, 4-%d, default %d)\n"
"  --read-only          refuse writes; the guest sees a read-only disk\n"
"  --direct             open the image with O_DIRECT (bypass the host page cache)\n"
"  --writethrough       report no volatile cache: every write is durable when acked\n"
"  --serial=STRING      the disk serial the guest reads (up to 20 bytes)\n"
"  --no-packed          do not offer the packed ring layout\n"
"  --iommu              offer VIRTIO_F_ACCESS_PLATFORM: addresses are I/O virtual\n"
"                       addresses translated through the vhost-user IOTLB\n"
"  --iops=N, --iops-rd=N, --iops-wr=N\n"
"                       limit requests per second: all, reads, writes (0: none)\n"
"  --bps=N, --bps-rd=N, --bps-wr=N\n"
"                       limit bytes per second (K/M/G/T suffixes) likewise\n"
"  --burst-ms=MS        the limits allow bursts of MS milliseconds of their rate\n"
"                       (1-%u, default %u)\n"
"  --qos-group=NAME     share one set of limits with every export of the group\n"
"\n"
"  --export=KEY=VALUE,...  one more export; keys are the option names above\n"
"                       without dashes (socket-path, fd, file, null, rbd, ceph-conf,\n"
"                       id, keyring, rbd-timeout, num-queues, queue-size,\n"
"                       read-only, direct, writethrough, serial, packed, iommu,\n"
"                       iops, iops-rd, iops-wr, bps, bps-rd, bps-wr, burst-ms,\n"
"                       qos-group)\n"
"\n"
"Daemon options:\n"
"  --iothreads=N        threads serving queues (default: one per CPU, at most the\n"
"                       total number of queues)\n"
"  --poll-mode=event|poll|adaptive\n"
"                       how iothreads wait for requests: event: sleep until the\n"
"                       guest kicks; poll: busy-poll the rings and io_uring (one\n"
"                       CPU per iothread, always); adaptive: poll while requests\n"
"                       keep coming, sleep after --poll-idle-us without any\n"
"                       (default)\n"
"  --poll-idle-us=N     adaptive: idle time before sleeping (0-%d, default %d)\n"
"  --sandbox=on|off|log once set up, allow only the system calls serving needs;\n"
"                       on: any other call kills the daemon (default; without\n"
"                       seccomp support a warning is logged), log: the kernel\n"
"                       only logs it\n"
"  --user=NAME          once set up, switch to this user and its group\n"
"  --shutdown-timeout=SECONDS\n"
"                       at SIGTERM, wait this long for requests in flight, then\n"
"                       flush what can be and exit 3 (1-%d, default %d)\n"
"  --control=PATH       answer JSON-RPC 2.0 requests on this unix socket (vblkctl;\n"
"                       see docs/control.md)\n"
"  --control-mode=MODE  the control socket's permissions, octal (default 0600)\n"
"  --metrics=ADDR:PORT  serve Prometheus metrics over HTTP at /metrics on this\n"
"                       numeric address (127.0.0.1:9100, [::1]:9100, 0.0.0.0:9100;\n"
"                       port 0: any free port, logged); default off\n"
"  --print-capabilities print the vhost-user backend capabilities as JSON and exit\n"
"  -v, --verbose        more logging (repeat for debug)\n"
"  -q, --quiet          only errors\n"
"  -h, --help           this text\n"
"  -V, --version        print the version\n";

static void usage(FILE *f)
{
	fprintf(f, usage_text, STORAGE_RBD_DEFAULT_TIMEOUT, VHOST_MAX_QUEUES, MAX_QUEUE_SIZE,
		DEFAULT_QUEUE_SIZE, QOS_MAX_BURST_MS, QOS_DEFAULT_BURST_MS, MAX_POLL_IDLE_US, DEFAULT_POLL_IDLE_US, MAX_SHUTDOWN_TIMEOUT,
		DEFAULT_SHUTDOWN_TIMEOUT);
}

static void print_capabilities(void)
{
	printf("{\n  \"type\": \"block\",\n  \"features\": [\n"
	       "    \"read-only\",\n    \"blk-file\"\n  ]\n}\n");
}

enum {
	OPT_SOCKET = 256, OPT_FD, OPT_FILE, OPT_NULL, OPT_QUEUES, OPT_QSIZE, OPT_RO,
	OPT_DIRECT, OPT_WT, OPT_SERIAL, OPT_NOPACKED, OPT_IOMMU, OPT_EXPORT, OPT_IOTHREADS, OPT_CAPS,
	OPT_SANDBOX, OPT_USER, OPT_POLL_MODE, OPT_POLL_IDLE, OPT_RBD, OPT_CEPH_CONF, OPT_RBD_ID,
	OPT_KEYRING, OPT_RBD_TIMEOUT, OPT_SHUTDOWN_TIMEOUT, OPT_CONTROL, OPT_CONTROL_MODE,
	OPT_METRICS,
	OPT_QOS,   /* the key is the option's name */
};

static const struct option long_opts[] = {
	{ "socket-path", required_argument, NULL, OPT_SOCKET },
	{ "fd", required_argument, NULL, OPT_FD },
	{ "file", required_argument, NULL, OPT_FILE },
	{ "blk-file", required_argument, NULL, OPT_FILE },
	{ "null", required_argument, NULL, OPT_NULL },
	{ "rbd", required_argument, NULL, OPT_RBD },
	{ "ceph-conf", required_argument, NULL, OPT_CEPH_CONF },
	{ "id", required_argument, NULL, OPT_RBD_ID },
	{ "keyring", required_argument, NULL, OPT_KEYRING },
	{ "rbd-timeout", required_argument, NULL, OPT_RBD_TIMEOUT },
	{ "num-queues", required_argument, NULL, OPT_QUEUES },
	{ "queue-size", required_argument, NULL, OPT_QSIZE },
	{ "read-only", no_argument, NULL, OPT_RO },
	{ "direct", no_argument, NULL, OPT_DIRECT },
	{ "writethrough", no_argument, NULL, OPT_WT },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "no-packed", no_argument, NULL, OPT_NOPACKED },
	{ "iommu", no_argument, NULL, OPT_IOMMU },
	{ "iops", required_argument, NULL, OPT_QOS },
	{ "iops-rd", required_argument, NULL, OPT_QOS },
	{ "iops-wr", required_argument, NULL, OPT_QOS },
	{ "bps", required_argument, NULL, OPT_QOS },
	{ "bps-rd", required_argument, NULL, OPT_QOS },
	{ "bps-wr", required_argument, NULL, OPT_QOS },
	{ "burst-ms", required_argument, NULL, OPT_QOS },
	{ "qos-group", required_argument, NULL, OPT_QOS },
	{ "export", required_argument, NULL, OPT_EXPORT },
	{ "iothreads", required_argument, NULL, OPT_IOTHREADS },
	{ "print-capabilities", no_argument, NULL, OPT_CAPS },
	{ "sandbox", required_argument, NULL, OPT_SANDBOX },
	{ "poll-mode", required_argument, NULL, OPT_POLL_MODE },
	{ "poll-idle-us", required_argument, NULL, OPT_POLL_IDLE },
	{ "user", required_argument, NULL, OPT_USER },
	{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "control-mode", required_argument, NULL, OPT_CONTROL_MODE },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

struct config {
	struct export_opts exports[MAX_EXPORTS];
	unsigned nexports;
	bool main_used;          /* the flat options describe exports[0] */
	unsigned iothreads;
	enum loop_poll_mode poll_mode;
	bool poll_mode_set;      /* --poll-mode given; else event with rbd, adaptive without */
	unsigned poll_idle_us;
	unsigned shutdown_timeout;  /* seconds */
	bool caps;
	struct sandbox_opts sandbox;
	const char *control;     /* --control socket path */
	unsigned control_mode;
	unsigned control_timeout_ms;
	const char *metrics;     /* --metrics ADDR:PORT */
	unsigned msg_timeout_ms;  /* VBLKD_MSG_TIMEOUT_MS, 0: default */
};

/* Returns 0 to run, 1 to exit successfully, <0 on a usage error. */
static int parse_args(int argc, char **argv, struct config *c)
{
	struct export_opts *m = &c->exports[0];
	const char *key;
	int opt, ret, idx;

	export_opts_init(m);
	c->nexports = 1;
	c->sandbox.mode = SANDBOX_ON;
	c->poll_mode = LOOP_POLL_ADAPTIVE;
	c->poll_idle_us = DEFAULT_POLL_IDLE_US;
	c->shutdown_timeout = DEFAULT_SHUTDOWN_TIMEOUT;
	c->control_mode = 0600;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vqhV", long_opts, &idx)) != -1) {
		ret = 0;
		key = NULL;
		switch (opt) {
		case OPT_SOCKET: key = "socket-path"; break;
		case OPT_FD: key = "fd"; break;
		case OPT_FILE: key = "file"; break;
		case OPT_NULL: key = "null"; break;
		case OPT_RBD: key = "rbd"; break;
		case OPT_CEPH_CONF: key = "ceph-conf"; break;
		case OPT_RBD_ID: key = "id"; break;
		case OPT_KEYRING: key = "keyring"; break;
		case OPT_RBD_TIMEOUT: key = "rbd-timeout"; break;
		case OPT_QUEUES: key = "num-queues"; break;
		case OPT_QSIZE: key = "queue-size"; break;
		case OPT_RO: key = "read-only"; break;
		case OPT_DIRECT: key = "direct"; break;
		case OPT_WT: key = "writethrough"; break;
		case OPT_SERIAL: key = "serial"; break;
		case OPT_QOS: key = long_opts[idx].name; break;
		case OPT_NOPACKED:
			ret = export_opt(m, "packed", "off");
			c->main_used = true;
			break;
		case OPT_IOMMU:
			ret = export_opt(m, "iommu", "on");
			c->main_used = true;
			break;
		case OPT_EXPORT:
			if (c->nexports == MAX_EXPORTS)
				return opt_fail("too many exports (at most %d)", MAX_EXPORTS);
			export_opts_init(&c->exports[c->nexports]);
			ret = export_opt_list(&c->exports[c->nexports], optarg);
			c->nexports++;
			break;
		case OPT_IOTHREADS:
			ret = opt_parse_uint("iothreads", optarg, 1, MAX_IOTHREADS, &c->iothreads);
			break;
		case OPT_POLL_MODE:
			if (loop_poll_mode_parse(optarg, &c->poll_mode))
				return opt_fail("invalid poll-mode '%s': expected event, poll or adaptive",
					    optarg);
			c->poll_mode_set = true;
			break;
		case OPT_POLL_IDLE:
			ret = opt_parse_uint("poll-idle-us", optarg, 0, MAX_POLL_IDLE_US,
					 &c->poll_idle_us);
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			ret = opt_parse_uint("shutdown-timeout", optarg, 1, MAX_SHUTDOWN_TIMEOUT,
					 &c->shutdown_timeout);
			break;
		case OPT_CAPS: c->caps = true; break;
		case OPT_SANDBOX:
			if (sandbox_parse_mode(optarg, &c->sandbox.mode))
				return opt_fail("invalid sandbox '%s': expected on, off or log", optarg);
			c->sandbox.required = c->sandbox.mode != SANDBOX_OFF;
			break;
		case OPT_USER:
			if (!*optarg)
				return opt_fail("--user needs a user name");
			c->sandbox.user = optarg;
			break;
		case OPT_CONTROL:
			if (!*optarg || strlen(optarg) >= 108)
				return opt_fail("invalid control socket path '%s' (1-107 bytes)", optarg);
			c->control = optarg;
			break;
		case OPT_CONTROL_MODE: {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 8);
			if (!*optarg || *end || errno || v == 0 || v > 0777 || !(v & 0600))
				return opt_fail("invalid control-mode '%s': expected octal permissions "
					    "like 0600 or 0660, owner read and write", optarg);
			c->control_mode = (unsigned)v;
			break;
		}
		case OPT_METRICS:
			ret = metrics_check_addr(optarg);
			if (ret == -ENOTSUP)
				return opt_fail("--metrics: this vblkd was built without libmicrohttpd "
						"or statistics");
			if (ret)
				return opt_fail("invalid metrics address '%s': expected a numeric "
						"ADDR:PORT like 127.0.0.1:9100 or [::1]:9100", optarg);
			c->metrics = optarg;
			break;
		case 'v': log_max_level = log_max_level < LOG_DEBUG ? log_max_level + 1 : LOG_DEBUG; break;
		case 'q': log_max_level = LOG_ERR; break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("vblkd %s\n", VBLK_VERSION); return 1;
		case ':': return opt_fail("option '%s' needs a value", argv[optind - 1]);
		default: return opt_fail("unknown option '%s'", argv[optind - 1]);
		}
		if (key) {
			ret = export_opt(m, key, optarg);
			c->main_used = true;
		}
		if (ret)
			return ret;
	}
	if (optind < argc)
		return opt_fail("unexpected argument '%s'", argv[optind]);
	if (c->caps)
		return 0;
	if (!c->main_used) {
		/* Only --export given: drop the empty flat export. */
		memmove(&c->exports[0], &c->exports[1], (c->nexports - 1) * sizeof(c->exports[0]));
		c->nexports--;
	}
	/* systemd socket activation: its sockets become exports' sockets. */
	if (systemd_take_listen_fds(c->exports, c->nexports) < 0)
		return -EINVAL;
	if (c->nexports == 0 && !c->control)
		return opt_fail("nothing to serve: give --socket-path=PATH and --file=IMAGE or --rbd=POOL/IMAGE");
	for (unsigned i = 0; i < c->nexports; i++) {
		ret = export_opts_check(&c->exports[i], i);
		if (ret)
			return ret;
		for (unsigned j = 0; j < i; j++) {
			const char *a = c->exports[i].p.socket_path, *b = c->exports[j].p.socket_path;

			if (a && b && !strcmp(a, b))
				return opt_fail("two exports use the socket %s", a);
		}
	}
	return 0;
}

static int signal_fd = -1;

static void on_signal(void *opaque, uint32_t events)
{
	struct loop *ctrl = opaque;
	struct signalfd_siginfo si;

	if (read(signal_fd, &si, sizeof(si)) == sizeof(si))
		log_info("received signal %u", si.ssi_signo);
	loop_stop(ctrl);
}

/*
 * VBLKD_MSG_TIMEOUT_MS: how long a vhost-user message may stay received in
 * part (or a reply unread) before the connection is closed; default 30 s.
 * An environment variable rather than an option: it is for tests and for
 * the rare frontend that needs more, not for everyday tuning.
 */
static int msg_timeout_from_env(struct config *c)
{
	const char *v = getenv("VBLKD_CONTROL_TIMEOUT_MS");
	unsigned ms;

	/* Likewise the control socket's idle timeout (docs/control.md). */
	if (v && opt_parse_uint("VBLKD_CONTROL_TIMEOUT_MS", v, 1, 3600 * 1000,
			    &c->control_timeout_ms))
		return -EINVAL;
	v = getenv("VBLKD_MSG_TIMEOUT_MS");

	if (!v)
		return 0;
	if (opt_parse_uint("VBLKD_MSG_TIMEOUT_MS", v, 1, 3600 * 1000, &ms))
		return -EINVAL;
	for (unsigned i = 0; i < c->nexports; i++)
		c->exports[i].p.msg_timeout_ms = ms;
	c->msg_timeout_ms = ms;
	return 0;
}

int main(int argc, char **argv)
{
	static struct config c;
	struct iothread *iothreads[MAX_IOTHREADS];
	struct control_params cp = { 0 };
	struct control *exports = NULL;
	unsigned niothreads, total_queues = 0;
	struct loop *ctrl = NULL;
	struct mgmt *mgmt = NULL;
	struct metrics *metrics = NULL;
	sigset_t mask;
	int sfd, ret, rc = 1;
	long ncpu;

	ret = parse_args(argc, argv, &c);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (c.caps) {
		print_capabilities();
		return 0;
	}
	ret = msg_timeout_from_env(&c);
	if (ret)
		return 2;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);   /* iothreads inherit the mask */

	for (unsigned i = 0; i < c.nexports; i++)
		total_queues += c.exports[i].p.num_queues;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	niothreads = c.iothreads ? c.iothreads : (unsigned)(ncpu > 0 ? ncpu : 1);
	/* With a control socket, exports added later need iothreads too. */
	if (!c.iothreads && !c.control && niothreads > total_queues)
		niothreads = total_queues;
	if (niothreads > MAX_IOTHREADS)
		niothreads = MAX_IOTHREADS;

	if (loop_create("vblk-ctrl", &ctrl))
		return 1;
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	signal_fd = sfd;
	if (sfd < 0 || loop_add_fd(ctrl, sfd, EPOLLIN, on_signal, ctrl)) {
		log_err("cannot set up signal handling: %s", strerror(errno));
		goto out_ctrl;
	}
	for (unsigned i = 0; i < c.nexports; i++)
		c.sandbox.rbd |= c.exports[i].p.storage.engine == STORAGE_RBD;
	/*
	 * Without --poll-mode, a daemon serving rbd waits for events: an rbd
	 * request spends hundreds of microseconds in librbd and the OSDs, so
	 * polling gains no latency, and a polling iothread takes the CPU
	 * librbd's threads (and, on a converged host, the OSDs) need. Measured
	 * in bench/run.sh --only rbd; see "Ceph RBD images" in
	 * docs/operations.md.
	 */
	if (!c.poll_mode_set && c.sandbox.rbd)
		c.poll_mode = LOOP_POLL_EVENT;
	cp.poll_event_for_rbd = !c.poll_mode_set && !c.sandbox.rbd;
	log_info("%u iothread%s, poll mode %s%s", niothreads, niothreads == 1 ? "" : "s",
		 loop_poll_mode_name(c.poll_mode),
		 c.poll_mode_set ? "" : c.sandbox.rbd ? " (the default with rbd)" : " (the default)");
	for (unsigned i = 0; i < niothreads; i++) {
		ret = iothread_create(i, &iothreads[i]);
		if (ret) {
			niothreads = i;
			goto out_iothreads;
		}
		ret = iothread_set_poll_mode(iothreads[i], c.poll_mode,
					     (uint64_t)c.poll_idle_us * 1000);
		if (ret) {
			niothreads = i + 1;
			goto out_iothreads;
		}
	}
	cp.ctrl = ctrl;
	cp.iothreads = iothreads;
	cp.niothreads = niothreads;
	cp.msg_timeout_ms = c.msg_timeout_ms;
	/* Test only, see docs/operations.md: never set in production. */
	cp.test_skip_data_log = getenv("VBLKD_TEST_SKIP_DATA_LOG") &&
				!strcmp(getenv("VBLKD_TEST_SKIP_DATA_LOG"), "1");
	cp.runtime_rbd = c.sandbox.mode == SANDBOX_OFF || c.sandbox.rbd;
	if (control_create(&cp, &exports))
		goto out_iothreads;
	for (unsigned i = 0; i < c.nexports; i++) {
		char err[256];

		ret = control_add(exports, &c.exports[i], NULL, 0, err, sizeof(err));
		if (ret) {
			log_err("%s", err);
			goto out_exports;
		}
	}
	if (c.metrics) {
		ret = metrics_start(c.metrics, ctrl, exports, &metrics);
		if (ret) {
			log_err("cannot serve metrics on %s: %s", c.metrics, strerror(-ret));
			goto out_exports;
		}
	}
	if (c.control) {
		ret = mgmt_create(ctrl, &mgmt);
		if (!ret)
			ret = mgmt_listen(mgmt, c.control, c.control_mode, c.control_timeout_ms);
		if (ret) {
			log_err("cannot listen on the control socket %s: %s", c.control,
				ret == -EADDRINUSE ? "in use by another process" : strerror(-ret));
			goto out_exports;
		}
		ret = control_register(exports, mgmt);
		if (!ret)
			ret = control_stats_register(exports, mgmt,
						     metrics ? metrics_url(metrics) : NULL);
		if (ret) {
			log_err("cannot register the control methods: %s", strerror(-ret));
			goto out_exports;
		}
		log_info("control socket on %s", c.control);
	}
	c.sandbox.runtime_exports = c.control != NULL;
	c.sandbox.metrics = metrics != NULL;
	systemd_notify_open();
	if (sandbox_enter(&c.sandbox))
		goto out_exports;
	systemd_notify("READY=1\nSTATUS=serving %u export%s%s%s", c.nexports,
		       c.nexports == 1 ? "" : "s", c.control ? ", control socket " : "",
		       c.control ? c.control : "");
	loop_run(ctrl);
	log_info("shutting down");
	systemd_notify("STOPPING=1\nSTATUS=shutting down: finishing requests in flight");
	rc = 0;

out_exports:
	/* No request runs under the teardown: the control socket goes first
	 * (and the metrics, whose requests run on this thread). */
	metrics_stop(metrics);
	metrics = NULL;
	mgmt_destroy(mgmt);
	mgmt = NULL;
	ret = control_shutdown(exports, (int)c.shutdown_timeout * 1000,
			       MIN((int)c.shutdown_timeout * 1000, SHUTDOWN_FLUSH_TIMEOUT_MS));
	if (ret == -ETIMEDOUT) {
		/*
		 * Requests are stuck in storage, and maybe an iothread with
		 * them (a FUSE or NFS file blocks even io_uring submission):
		 * tearing down what it may still touch would be unsafe and
		 * waiting for it could be for ever. What could be flushed was.
		 */
		log_err("shutdown timed out with requests in flight; exiting with status %d",
			EXIT_SHUTDOWN_INCOMPLETE);
		_exit(EXIT_SHUTDOWN_INCOMPLETE);
	}
	if (ret && rc == 0) {
		/* Data maybe not durable: the supervisor must know. */
		log_err("shutdown: an image could not be flushed");
		rc = EXIT_SHUTDOWN_INCOMPLETE;
	}
	control_destroy(exports);
out_iothreads:
	for (unsigned i = 0; i < niothreads; i++)
		iothread_destroy(iothreads[i]);
	loop_del_fd(ctrl, sfd);
	close(sfd);
out_ctrl:
	loop_destroy(ctrl);
	if (rc)
		log_info("exiting with status %d", rc);
	return rc;
}
