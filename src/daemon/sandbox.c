/* SPDX-License-Identifier: MIT */
/*
 * sandbox.c - vblkd's privilege drop and seccomp allow-list. The list is
 * what the serving daemon was seen to call (strace -f over the func and
 * e2e tests; see docs/operations.md), not what it might call one day:
 * anything new it needs must be added here on purpose.
 * Knows nothing of exports, vhost or blk.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

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
 * Calls the serving daemon makes, any thread, from sandbox_enter() to
 * exit, as seen by strace -f over tests/func and tests/e2e (vblkd backend:
 * fio-verify, trim, guest-view, packed, read-only). Grouped by who makes
 * them; the few not seen in those runs say why they are here.
 */
static const int sandbox_allowed[] = {
	/* loops: epoll, eventfd doorbells, kick/call/err eventfds, locks */
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_ctl),
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(futex),
	/* vhost-user socket: messages with fds, reconnects on the kept listen fd */
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(accept4), SCMP_SYS(close),
	/* guest memory: SET_MEM_TABLE / ADD_MEM_REG map received fds (fstat,
	 * F_GET_SEALS); malloc (brk, madvise, arenas) */
	SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(fcntl),
	/* GET_INFLIGHT_FD: a new sealed memfd for the inflight area */
	SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
	/* storage: io_uring (the ring exists already), the sync at close */
	SCMP_SYS(io_uring_enter), SCMP_SYS(fdatasync),
	/* shutdown: removing the socket file, threads ending */
	SCMP_SYS(unlink), SCMP_SYS(rt_sigprocmask), SCMP_SYS(exit), SCMP_SYS(exit_group),
	/* not seen, harmless: signal return paths, getpid for abort() */
	SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall), SCMP_SYS(getpid),
	/* polling loops read the clock: the vDSO, unless the clocksource
	 * cannot be read from userspace (some VMs), then a real call; and
	 * yield when a poll finds nothing */
	SCMP_SYS(clock_gettime), SCMP_SYS(sched_yield),
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
 */
static const int sandbox_rbd_allowed[] = {
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(shutdown),
	SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(uname), SCMP_SYS(gettid),
};

/*
 * Denied with EACCES rather than killed: glibc malloc reads
 * /proc/sys/vm/overcommit_memory the first time it trims a thread's heap
 * (seen at iothread exit), and copes with not being able to.
 */
static const int sandbox_eacces[] __attribute__((unused)) = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2),
};

/*
 * AddressSanitizer builds only (tests, never production): what ASan does as
 * threads exit (sigaltstack) and LeakSanitizer's check at exit (a clone
 * that ptrace-stops every thread and reads /proc). Seen with
 * --sandbox=log, from the kernel's audit lines, over tests/func.
 */
#ifdef SANDBOX_ASAN
static const int sandbox_asan_allowed[] = {
	SCMP_SYS(sigaltstack), SCMP_SYS(getppid), SCMP_SYS(prctl), SCMP_SYS(gettid),
	SCMP_SYS(clone), SCMP_SYS(ptrace), SCMP_SYS(wait4),
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(getdents), SCMP_SYS(getdents64),
	SCMP_SYS(lseek),
	SCMP_SYS(readlink), SCMP_SYS(pread64), SCMP_SYS(rt_sigaction), SCMP_SYS(kill),
	SCMP_SYS(tgkill), SCMP_SYS(mremap), SCMP_SYS(exit), SCMP_SYS(fstat),
};
#endif

/* Rules whose arguments matter. */
static int sandbox_add_arg_rules(scmp_filter_ctx ctx)
{
	pid_t pid = getpid();
	int ret;

	/* Memory may be mapped or re-protected, never made executable. */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (ret)
		return ret;
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (ret)
		return ret;
	/* abort() (a failed assert) signals itself: let it, to nobody else. */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
			       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)pid));
	if (ret)
		return ret;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
				SCMP_A0(SCMP_CMP_EQ, SIGABRT));
}

static int sandbox_seccomp(enum sandbox_mode mode, bool rbd)
{
	scmp_filter_ctx ctx;
	int ret;

	ctx = seccomp_init(mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	/* Every thread, not just this one; no_new_privs comes along. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (!ret)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
	/* The kernel's own errno from seccomp_load, not -ECANCELED (>= 2.5.0). */
	if (!ret)
		(void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	for (size_t i = 0; !ret && i < ARRAY_SIZE(sandbox_allowed); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sandbox_allowed[i], 0);
	for (size_t i = 0; rbd && !ret && i < ARRAY_SIZE(sandbox_rbd_allowed); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sandbox_rbd_allowed[i], 0);
#ifdef SANDBOX_ASAN
	for (size_t i = 0; !ret && i < ARRAY_SIZE(sandbox_asan_allowed); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sandbox_asan_allowed[i], 0);
#else
	for (size_t i = 0; !ret && i < ARRAY_SIZE(sandbox_eacces); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), sandbox_eacces[i], 0);
#endif
	if (!ret)
		ret = sandbox_add_arg_rules(ctx);
	/* librbd names the threads it starts (seen in release builds only:
	 * ASan builds allow prctl whole). */
	if (!ret && rbd)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				       SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	if (ret) {
		log_err("sandbox: cannot build the seccomp filter: %s", strerror(-ret));
		goto out;
	}
	ret = seccomp_load(ctx);
	/* No CONFIG_SECCOMP_FILTER, or a kernel without TSYNC/KILL_PROCESS. */
	if (ret == -ECANCELED || ret == -ENOSYS || ret == -EINVAL)
		ret = -ENOTSUP;
out:
	seccomp_release(ctx);
	return ret;
}

#else /* !HAVE_SECCOMP */

static int sandbox_seccomp(enum sandbox_mode mode, bool rbd)
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
	ret = sandbox_seccomp(o->mode, o->rbd);
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
