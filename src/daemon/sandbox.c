/* SPDX-License-Identifier: MIT */
/*
 * sandbox.c - vblkd's privilege drop and seccomp allow-list. The list is
 * what the serving daemon was seen to call (strace -f over the func and
 * e2e tests; see docs/operations.md), not what it might call one day:
 * anything new it needs must be added here on purpose.
 * Knows nothing of exports, vhost or blk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/fs.h>

#ifdef HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "common/log.h"
#include "daemon/sandbox.h"

/* AddressSanitizer builds (tests only) need a little more; see below. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

int sandbox_parse_mode(const char *s, enum sandbox_mode *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "on"))
		*out = SANDBOX_ON;
	else if (!strcmp(s, "off"))
		*out = SANDBOX_OFF;
	else if (!strcmp(s, "log"))
		*out = SANDBOX_LOG;
	else
		return -EINVAL;
	return 0;
}

/* setgroups(0), setgid, setuid: the order that leaves nothing of root. */
static int sandbox_drop_user(const char *name)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int ret;

	ret = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (ret || !res) {
		log_err("sandbox: unknown user '%s'%s%s", name, ret ? ": " : "",
			ret ? strerror(ret) : "");
		return ret ? -ret : -ENOENT;
	}
	if (pw.pw_uid == 0) {
		log_err("sandbox: --user=%s is root; refusing", name);
		return -EINVAL;
	}
	/* glibc applies set*id to every thread of the process. */
	if (setgroups(0, NULL) < 0 || setgid(pw.pw_gid) < 0 || setuid(pw.pw_uid) < 0) {
		ret = -errno;
		log_err("sandbox: cannot switch to user %s (uid %u): %s", name,
			(unsigned)pw.pw_uid, strerror(-ret));
		return ret;
	}
#ifdef SANDBOX_ASAN
	/*
	 * setuid made the process non-dumpable: LeakSanitizer's tracer could
	 * not attach at exit. Production builds stay non-dumpable, so that
	 * no other process of this user can ptrace the daemon.
	 */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	/* Must not be able to come back. */
	if (setuid(0) == 0) {
		log_err("sandbox: still able to regain root after dropping to %s", name);
		return -EPERM;
	}
	log_info("sandbox: running as user %s (uid %u, gid %u)", name, (unsigned)pw.pw_uid,
		 (unsigned)pw.pw_gid);
	return 0;
}

#ifdef HAVE_SECCOMP

/*
 * One allowed call, by libseccomp name, resolved for the filter's
 * architecture. Architectures built on the kernel's asm-generic table
 * (arm64, riscv64, loongarch) lack the old calls (open, unlink,
 * epoll_wait, getdents, readlink, ...): there glibc makes the newer call
 * named in @instead, with the same effect. @instead is NULL where every
 * architecture has the call (a missing one is an error: the list is
 * wrong), "" where nothing takes the place of an absent call.
 */
struct sandbox_call {
	const char *name;
	const char *instead;
};
#define SYS(n)             { #n, NULL }
#define SYS_OR(n, instead) { #n, #instead }
#define SYS_IF_ANY(n)      { #n, "" }

/*
 * Calls the serving daemon makes, any thread, from sandbox_enter() to
 * exit, as seen by strace -f over tests/func and tests/e2e (vblkd backend:
 * fio-verify, trim, guest-view, packed, read-only). Grouped by who makes
 * them; the few not seen in those runs say why they are here.
 */
static const struct sandbox_call sandbox_allowed[] = {
	/* loops: epoll, eventfd doorbells, kick/call/err eventfds, locks */
	SYS_OR(epoll_wait, epoll_pwait), SYS(epoll_ctl),
	SYS(read), SYS(write), SYS(futex),
	/* vhost-user socket: messages with fds, reconnects on the kept listen fd */
	SYS(recvmsg), SYS(sendmsg), SYS(accept4), SYS(close),
	/* vhost-user: arming the stalled-message timer (timerfd made at setup) */
	SYS(timerfd_settime),
	/* guest memory: SET_MEM_TABLE / ADD_MEM_REG map received fds (fstat,
	 * F_GET_SEALS); malloc (brk, madvise, arenas) */
	SYS(munmap), SYS(madvise), SYS(brk),
	SYS(fstat), SYS(newfstatat), SYS(fcntl),
	/* GET_INFLIGHT_FD: a new sealed memfd for the inflight area */
	SYS(memfd_create), SYS(ftruncate),
	/* storage: io_uring (the ring exists already), the sync at close */
	SYS(io_uring_enter), SYS(fdatasync),
	/* shutdown: removing the socket file, threads ending */
	SYS_OR(unlink, unlinkat), SYS(rt_sigprocmask), SYS(exit), SYS(exit_group),
	/* not seen, harmless: signal return paths, getpid for abort() */
	SYS(rt_sigreturn), SYS(restart_syscall), SYS(getpid),
	/* polling loops read the clock: the vDSO, unless the clocksource
	 * cannot be read from userspace (some VMs), then a real call; and
	 * yield when a poll finds nothing */
	SYS(clock_gettime), SYS(sched_yield),
};

/*
 * With an rbd export only: what librbd/librados threads call once serving,
 * seen with --sandbox=log (kernel audit lines, printk rate limit off) over
 * tests/func/test_daemon_rbd.c (I/O, snapshots, resize, an OSD restarted
 * and frozen, shutdown with requests stuck): the messenger reconnecting to
 * a restarted OSD (socket, connect, setsockopt, getsockname, shutdown; and
 * getsockopt/getpeername, the rest of its connect path), threads librbd
 * starts lazily (clone/clone3 and what a new glibc thread does:
 * set_robust_list, rseq, sched_getaffinity), its timer and back-off
 * sleeps (clock_nanosleep, nanosleep) and uname (ceph's
 * entity/hostname lookups in its timer and dispatch threads). No listening
 * socket, no file opened (the config and keyring are read before).
 * librbd breaking the exclusive lock of a dead client (once its watch
 * expired; test_daemon_rbd's takeover case) starts a boost::asio
 * io_context for the blocklist command: eventfd2, epoll_create1,
 * timerfd_create.
 */
static const struct sandbox_call sandbox_rbd_allowed[] = {
	SYS(socket), SYS(connect), SYS(setsockopt), SYS(getsockopt),
	SYS(getsockname), SYS(getpeername), SYS(shutdown),
	SYS(clone), SYS(clone3), SYS(set_robust_list), SYS(rseq),
	SYS(sched_getaffinity), SYS(clock_nanosleep), SYS(nanosleep),
	SYS(uname), SYS(gettid),
	SYS(eventfd2), SYS(epoll_create1), SYS(timerfd_create),
};

/*
 * With a control socket only (--control): what export-add does once the
 * filter is on, seen with strace -f over tests/func/test_control.c: the
 * export's eventfd and timerfds, and its listening socket (bind, listen;
 * connect probes a stale socket file). socket() and openat() are not
 * here: they are allowed by argument (sandbox_add_runtime_rules): unix
 * sockets only, and images opened without creating anything.
 */
static const struct sandbox_call sandbox_runtime_allowed[] = {
	SYS(eventfd2), SYS(timerfd_create), SYS(bind), SYS(listen), SYS(connect),
};

/*
 * With --metrics only: what libmicrohttpd's thread calls once serving,
 * seen with strace -f over tests/func/test_stats.c and scrapes by curl
 * (the thread, its epoll fd and eventfd exist before the sandbox; the
 * listening TCP socket too): accepting and closing connections, reading
 * requests (recvfrom) and sending replies (sendto, sendmsg for header and
 * body at once), TCP_NODELAY/TCP_CORK on them (setsockopt), shutdown of a
 * finished connection. The page is built on the control thread, which
 * makes no call the base list lacks. The thread's start-up calls (glibc's,
 * its name) are over before the filter goes on: metrics_start waits for
 * its answer to a first request.
 */
static const struct sandbox_call sandbox_metrics_allowed[] = {
	SYS(accept4), SYS(recvfrom), SYS(sendto), SYS(sendmsg), SYS(setsockopt),
	SYS(shutdown),
};

/*
 * Denied with EACCES rather than killed: glibc malloc reads
 * /proc/sys/vm/overcommit_memory the first time it trims a thread's heap
 * (seen at iothread exit), and copes with not being able to.
 */
static const struct sandbox_call sandbox_eacces[] __attribute__((unused)) = {
	SYS(openat),   /* first: left out with runtime exports (see below) */
	SYS_IF_ANY(open), SYS(openat2),
};

/*
 * AddressSanitizer builds only (tests, never production): what ASan does as
 * threads exit (sigaltstack) and LeakSanitizer's check at exit (a clone
 * that ptrace-stops every thread and reads /proc). Seen with
 * --sandbox=log, from the kernel's audit lines, over tests/func.
 */
#ifdef SANDBOX_ASAN
static const struct sandbox_call sandbox_asan_allowed[] = {
	SYS(sigaltstack), SYS(getppid), SYS(prctl), SYS(gettid),
	SYS(clone), SYS(ptrace), SYS(wait4),
	SYS_OR(open, openat), SYS(openat), SYS_OR(getdents, getdents64), SYS(getdents64),
	SYS(lseek),
	SYS_OR(readlink, readlinkat), SYS(pread64), SYS(rt_sigaction), SYS(kill),
	SYS(tgkill), SYS(mremap), SYS(exit), SYS(fstat),
};
#endif

/*
 * The syscall for @c on @arch, in the numbering seccomp_rule_add() takes
 * (the native one; libseccomp translates for @arch, and gives calls the
 * native architecture lacks a pseudo number). Return: that number; 0 with
 * *skip set when the call is absent and nothing replaces it; -ENOSYS when
 * the list is wrong for @arch.
 */
static int sandbox_resolve(uint32_t arch, const struct sandbox_call *c, int *nr, bool *skip)
{
	const char *name = c->name;

	*skip = false;
	if (seccomp_syscall_resolve_name_arch(arch, name) < 0) {
		name = c->instead;
		if (name && !*name) {
			*skip = true;
			return 0;
		}
		if (!name || seccomp_syscall_resolve_name_arch(arch, name) < 0) {
			log_err("sandbox: no system call %s%s%s on this architecture", c->name,
				name ? " nor " : "", name ? name : "");
			return -ENOSYS;
		}
	}
	*nr = seccomp_syscall_resolve_name(name);
	return *nr == __NR_SCMP_ERROR ? -ENOSYS : 0;
}

static int sandbox_add_calls(scmp_filter_ctx ctx, uint32_t arch, uint32_t action,
			     const struct sandbox_call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool skip;
		int nr, ret;

		ret = sandbox_resolve(arch, &calls[i], &nr, &skip);
		if (!ret && !skip)
			ret = seccomp_rule_add(ctx, action, nr, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* Rules whose arguments matter. */
static int sandbox_add_arg_rules(scmp_filter_ctx ctx)
{
	pid_t pid = getpid();
	int ret;

	/* Memory may be mapped or re-protected, never made executable. */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("mmap"), 1,
			       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (ret)
		return ret;
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("mprotect"), 1,
			       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (ret)
		return ret;
	/* abort() (a failed assert) signals itself: let it, to nobody else. */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("tgkill"), 1,
			       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)pid));
	if (ret)
		return ret;
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("rt_sigaction"), 1,
			       SCMP_A0(SCMP_CMP_EQ, SIGABRT));
	if (ret)
		return ret;
	/* The SIGBUS handler (gmem_guard.c) restores the default action for
	 * a SIGBUS outside guest memory, and may raise it again. */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("rt_sigaction"), 1,
			       SCMP_A0(SCMP_CMP_EQ, SIGBUS));
	if (ret)
		return ret;
	/* A memory region on a block device: its size (gmem_check_fd). */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("ioctl"), 1,
				SCMP_A1(SCMP_CMP_EQ, BLKGETSIZE64));
}

/*
 * export-add at runtime (--control): open an image (a file or block
 * device, read-write or read-only, never created or truncated), make a
 * unix socket, read a block device's block sizes. Anything else openat or
 * socket would do still fails.
 */
static int sandbox_add_runtime_rules(scmp_filter_ctx ctx)
{
	const scmp_datum_t creating = O_CREAT | O_TRUNC | __O_TMPFILE;
	int ret;

	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("openat"), 1,
			       SCMP_A2(SCMP_CMP_MASKED_EQ, creating, 0));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("socket"),
				       1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("ioctl"), 1,
				       SCMP_A1(SCMP_CMP_EQ, BLKSSZGET));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("ioctl"), 1,
				       SCMP_A1(SCMP_CMP_EQ, BLKPBSZGET));
	return ret;
}

/*
 * The filter for @arch (SCMP_ARCH_NATIVE: this machine), built but not
 * loaded. Return: 0 or -errno; *out is the caller's to release.
 */
static int sandbox_build(enum sandbox_mode mode, uint32_t arch, bool rbd, bool runtime,
			 bool metrics, scmp_filter_ctx *out)
{
	scmp_filter_ctx ctx;
	int ret = 0;

	ctx = seccomp_init(mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	if (arch != SCMP_ARCH_NATIVE && arch != seccomp_arch_native()) {
		/* Another architecture's filter (tests): only that one. */
		ret = seccomp_arch_add(ctx, arch);
		if (!ret)
			ret = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
	}
	arch = arch == SCMP_ARCH_NATIVE ? seccomp_arch_native() : arch;
	/* Every thread, not just this one; no_new_privs comes along. */
	if (!ret)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (!ret)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
	/* The kernel's own errno from seccomp_load, not -ECANCELED (>= 2.5.0). */
	if (!ret)
		(void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	if (!ret)
		ret = sandbox_add_calls(ctx, arch, SCMP_ACT_ALLOW, sandbox_allowed,
					ARRAY_SIZE(sandbox_allowed));
	if (!ret && rbd)
		ret = sandbox_add_calls(ctx, arch, SCMP_ACT_ALLOW, sandbox_rbd_allowed,
					ARRAY_SIZE(sandbox_rbd_allowed));
	if (!ret && runtime)
		ret = sandbox_add_calls(ctx, arch, SCMP_ACT_ALLOW, sandbox_runtime_allowed,
					ARRAY_SIZE(sandbox_runtime_allowed));
	if (!ret && runtime)
		ret = sandbox_add_runtime_rules(ctx);
	if (!ret && metrics)
		ret = sandbox_add_calls(ctx, arch, SCMP_ACT_ALLOW, sandbox_metrics_allowed,
					ARRAY_SIZE(sandbox_metrics_allowed));
#ifdef SANDBOX_ASAN
	if (!ret)
		ret = sandbox_add_calls(ctx, arch, SCMP_ACT_ALLOW, sandbox_asan_allowed,
					ARRAY_SIZE(sandbox_asan_allowed));
#else
	/* With runtime exports, openat has its own rule: the rest of the
	 * EACCES list only (an openat that would create a file kills). */
	if (!ret)
		ret = sandbox_add_calls(ctx, arch, SCMP_ACT_ERRNO(EACCES),
					sandbox_eacces + (runtime ? 1 : 0),
					ARRAY_SIZE(sandbox_eacces) - (runtime ? 1 : 0));
#endif
	if (!ret)
		ret = sandbox_add_arg_rules(ctx);
	/* librbd names the threads it starts (seen in release builds only:
	 * ASan builds allow prctl whole). */
	if (!ret && rbd)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("prctl"), 1,
				       SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	if (ret) {
		log_err("sandbox: cannot build the seccomp filter: %s", strerror(-ret));
		seccomp_release(ctx);
		return ret;
	}
	*out = ctx;
	return 0;
}

static int sandbox_seccomp(enum sandbox_mode mode, bool rbd, bool runtime, bool metrics)
{
	scmp_filter_ctx ctx;
	int ret;

	ret = sandbox_build(mode, SCMP_ARCH_NATIVE, rbd, runtime, metrics, &ctx);
	if (ret)
		return ret;
	ret = seccomp_load(ctx);
	/* No CONFIG_SECCOMP_FILTER, or a kernel without TSYNC/KILL_PROCESS. */
	if (ret == -ECANCELED || ret == -ENOSYS || ret == -EINVAL)
		ret = -ENOTSUP;
	seccomp_release(ctx);
	return ret;
}

int sandbox_export(enum sandbox_mode mode, const char *arch, int fd)
{
	uint32_t token = SCMP_ARCH_NATIVE;
	scmp_filter_ctx ctx;
	int ret;

	if (arch) {
		token = seccomp_arch_resolve_name(arch);
		if (!token)
			return -EINVAL;
	}
	ret = sandbox_build(mode, token, true, true, true, &ctx);
	if (ret)
		return ret;
	ret = seccomp_export_pfc(ctx, fd);
	seccomp_release(ctx);
	return ret;
}

#else /* !HAVE_SECCOMP */

static int sandbox_seccomp(enum sandbox_mode mode, bool rbd, bool runtime, bool metrics)
{
	return -ENOTSUP;
}

int sandbox_export(enum sandbox_mode mode, const char *arch, int fd)
{
	return -ENOTSUP;
}

#endif

int sandbox_enter(const struct sandbox_opts *o)
{
	int ret;

	/* Before the user change: a filter can then never be lifted by exec. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		log_err("sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(-ret));
		return ret;
	}
	if (o->user) {
		ret = sandbox_drop_user(o->user);
		if (ret)
			return ret;
	}
	if (o->mode == SANDBOX_OFF)
		return 0;
	ret = sandbox_seccomp(o->mode, o->rbd, o->runtime_exports, o->metrics);
	if (ret && !o->required) {
		log_warn("sandbox: no seccomp filter (%s); running without one",
			 ret == -ENOTSUP ? "not supported here" : strerror(-ret));
		return 0;
	}
	if (ret) {
		log_err("sandbox: cannot install the seccomp filter: %s",
			ret == -ENOTSUP ? "not supported here" : strerror(-ret));
		return ret;
	}
	log_info("sandbox: seccomp filter on (%s)",
		 o->mode == SANDBOX_LOG ? "log mode: forbidden calls are only logged" :
		 "forbidden calls kill the daemon");
	return 0;
}
