/* SPDX-License-Identifier: MIT */
/*
 * test_sandbox.c - the seccomp filter and privilege drop of
 * sandbox_enter(), each in a forked child: allowed calls work, open fails
 * with EACCES, a forbidden call (socket, execve, an executable mapping)
 * kills the whole process with SIGSYS, also from a thread that existed
 * before the filter (TSYNC); log mode only logs; --user leaves no root.
 * And the filter as built for x86_64 and aarch64 (no kernel needed): every
 * rule names a call that exists there, with the asm-generic replacements
 * (epoll_pwait, unlinkat) on aarch64.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/compiler.h"
#include "common/log.h"
#include "daemon/sandbox.h"
#include "tap.h"

/* What a child reports: bit flags written to the pipe before it goes on. */
enum {
	R_ENTERED = 1 << 0,  /* sandbox_enter returned 0 */
	R_WRITE_OK = 1 << 1,
	R_OPEN_EACCES = 1 << 2,
	R_UID_NOT_ROOT = 1 << 3,
	R_NO_SETUID0 = 1 << 4,
};

enum action { ACT_SOCKET, ACT_EXECVE, ACT_MMAP_EXEC, ACT_THREAD_SOCKET, ACT_NONE };

static int report_fd = -1, hold_fd = -1;
static volatile int go, thread_up;

static void report(unsigned bits)
{
	if (write(report_fd, &bits, sizeof(bits)) != sizeof(bits))
		_exit(99);
}

static void do_forbidden(enum action a)
{
	char *argv[] = { "/bin/true", NULL };
	char *envp[] = { NULL };

	switch (a) {
	case ACT_SOCKET:
		(void)socket(AF_INET, SOCK_STREAM, 0);
		break;
	case ACT_EXECVE:
		execve(argv[0], argv, envp);
		break;
	case ACT_MMAP_EXEC:
		(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	default:
		break;
	}
}

static void *thread_fn(void *arg)
{
	__atomic_store_n(&thread_up, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	do_forbidden(ACT_SOCKET);
	return NULL;
}

/* The child: enter the sandbox, report, then try @a. Exit 0 if it lives. */
static void child(const struct sandbox_opts *o, enum action a)
{
	unsigned bits = 0;
	pthread_t th;
	int fd;

	if (a == ACT_THREAD_SOCKET && pthread_create(&th, NULL, thread_fn, NULL))
		_exit(98);
	/* Past glibc's thread start-up (rseq, robust list): those calls are
	 * not in the filter, and the thread must be running, not starting. */
	while (a == ACT_THREAD_SOCKET && !__atomic_load_n(&thread_up, __ATOMIC_ACQUIRE))
		;
	if (sandbox_enter(o))
		_exit(97);
	bits |= R_ENTERED;
	if (write(report_fd, "", 0) == 0)
		bits |= R_WRITE_OK;
	fd = open("/etc/hostname", O_RDONLY);
	if (fd < 0 && errno == EACCES)
		bits |= R_OPEN_EACCES;
	if (o->mode == SANDBOX_OFF) {
		/* getuid and setuid are outside the filter: only checked here */
		if (getuid() != 0 && geteuid() != 0)
			bits |= R_UID_NOT_ROOT;
		if (setuid(0) < 0)
			bits |= R_NO_SETUID0;
	}
	report(bits);
	/* Stay as is until the parent has read /proc/pid/status. */
	while (read(hold_fd, &bits, 1) > 0)
		;
	if (a == ACT_THREAD_SOCKET) {
		__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
	} else {
		do_forbidden(a);
	}
	_exit(0);
}

struct result {
	unsigned bits;
	int wstatus;
	char status[4096];   /* /proc/pid/status after the report */
};

static int run(const struct sandbox_opts *o, enum action a, struct result *r)
{
	int p[2], hold[2];
	pid_t pid;
	ssize_t n;
	char path[64];
	FILE *f;

	memset(r, 0, sizeof(*r));
	if (pipe(p) || pipe(hold))
		tap_bail("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		close(hold[1]);
		report_fd = p[1];
		hold_fd = hold[0];
		child(o, a);
	}
	close(p[1]);
	close(hold[0]);
	n = read(p[0], &r->bits, sizeof(r->bits));
	if (n == sizeof(r->bits)) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "r");
		if (f) {
			size_t len = fread(r->status, 1, sizeof(r->status) - 1, f);

			r->status[len] = '\0';
			fclose(f);
		}
	}
	close(p[0]);
	close(hold[1]);   /* the child goes on */
	if (waitpid(pid, &r->wstatus, 0) != pid)
		tap_bail("waitpid: %s", strerror(errno));
	return n == sizeof(r->bits) ? 0 : -1;
}

static bool died_of_sigsys(int ws)
{
	return WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSYS;
}

/* "Seccomp:\t2": the line's value, -1 if missing. */
static long status_field(const char *status, const char *key)
{
	const char *s = strstr(status, key);

	return s ? strtol(s + strlen(key), NULL, 10) : -1;
}

/* "Groups:" followed by blanks only. */
static bool no_groups(const char *status)
{
	const char *s = strstr(status, "Groups:");

	if (!s)
		return false;
	for (s += strlen("Groups:"); *s == ' ' || *s == '\t'; s++)
		;
	return *s == '\n';
}

/*
 * The filter for @arch as pseudo code; the rule lines read
 * '# filter for syscall "NAME" (NR) ...'. Return: how many rules name a
 * call that does not exist on @arch (libseccomp's pseudo numbers, which
 * no real call ever matches: such a rule allows nothing); *has[i] says
 * whether want[i] is allowed by a real rule. -1 if the export failed.
 */
static int filter_check(const char *arch, const char *const *want, bool *has, size_t n)
{
	char line[256], name[64];
	int fd = memfd_create("pfc", 0), ret, bad = 0;
	unsigned long long nr;
	FILE *f;

	if (fd < 0)
		tap_bail("memfd_create: %s", strerror(errno));
	ret = sandbox_export(SANDBOX_ON, arch, fd);
	if (ret) {
		diag("sandbox_export(%s): %s", arch, strerror(-ret));
		close(fd);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		has[i] = false;
	lseek(fd, 0, SEEK_SET);
	f = fdopen(fd, "r");
	if (!f)
		tap_bail("fdopen: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " # filter for syscall \"%63[^\"]\" (%llu)", name, &nr) != 2)
			continue;
		if (nr > 0x7fffffffull) {   /* a negative pseudo number */
			diag("%s: rule for %s, which %s lacks", arch, name, arch);
			bad++;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (!strcmp(name, want[i]))
				has[i] = true;
	}
	fclose(f);
	return bad;
}

static void filter_arch(const char *arch, const char *const *want, size_t n)
{
	bool has[8];

	is(filter_check(arch, want, has, n), 0, "%s filter: every rule is a real call there", arch);
	for (size_t i = 0; i < n; i++)
		ok(has[i], "%s filter: %s allowed", arch, want[i]);
}

static bool seccomp_usable(void)
{
	struct sandbox_opts o = { .mode = SANDBOX_ON, .required = true };
	struct result r;

	return run(&o, ACT_NONE, &r) == 0 && (r.bits & R_ENTERED);
}

int main(void)
{
	struct sandbox_opts on = { .mode = SANDBOX_ON, .required = true };
	struct sandbox_opts log = { .mode = SANDBOX_LOG, .required = true };
	enum sandbox_mode m;
	struct result r;

	log_max_level = LOG_ERR;

	is(sandbox_parse_mode("on", &m), 0, "parse on");
	is(m, SANDBOX_ON, "on is SANDBOX_ON");
	is(sandbox_parse_mode("off", &m), 0, "parse off");
	is(m, SANDBOX_OFF, "off is SANDBOX_OFF");
	is(sandbox_parse_mode("log", &m), 0, "parse log");
	is(m, SANDBOX_LOG, "log is SANDBOX_LOG");
	is(sandbox_parse_mode("yes", &m), -EINVAL, "parse junk: -EINVAL");
	is(sandbox_parse_mode(NULL, &m), -EINVAL, "parse NULL: -EINVAL");

	{
		/* What glibc calls on each for epoll_wait(), unlink(), fstat(). */
		static const char *const x86[] = { "epoll_wait", "unlink", "newfstatat" };
		static const char *const a64[] = { "epoll_pwait", "unlinkat", "newfstatat" };
		int fd = memfd_create("pfc", 0);

		if (sandbox_export(SANDBOX_ON, NULL, fd) == -ENOTSUP) {
			ok(1, "filter per architecture # SKIP built without libseccomp");
		} else if (test_qemu_user()) {
			/* seccomp_init() probes the kernel's seccomp() */
			skip("filter per architecture: libseccomp needs seccomp(), which "
			     "qemu-user (%s) does not emulate", test_qemu_user());
		} else {
			filter_arch("x86_64", x86, ARRAY_SIZE(x86));
			filter_arch("aarch64", a64, ARRAY_SIZE(a64));
			is(sandbox_export(SANDBOX_ON, "no-such-arch", fd), -EINVAL,
			   "unknown architecture: -EINVAL");
		}
		close(fd);
	}

	if (!seccomp_usable()) {
		diag("seccomp filters are not available here: filter checks skipped");
	} else {
		ok(run(&on, ACT_SOCKET, &r) == 0, "on: child entered the sandbox");
		ok(r.bits & R_WRITE_OK, "on: write() still works");
#if defined(__SANITIZE_ADDRESS__)
		ok(1, "on: open() fails with EACCES # SKIP ASan build: LeakSanitizer needs open");
#else
		ok(r.bits & R_OPEN_EACCES, "on: open() fails with EACCES");
#endif
		is(status_field(r.status, "Seccomp:"), 2, "on: /proc status Seccomp: 2");
		is(status_field(r.status, "NoNewPrivs:"), 1, "on: /proc status NoNewPrivs: 1");
		ok(died_of_sigsys(r.wstatus), "on: socket() kills the process with SIGSYS (status %#x)",
		   r.wstatus);

		run(&on, ACT_EXECVE, &r);
		ok(died_of_sigsys(r.wstatus), "on: execve() kills with SIGSYS (status %#x)", r.wstatus);

		run(&on, ACT_MMAP_EXEC, &r);
		ok(died_of_sigsys(r.wstatus), "on: mmap(PROT_EXEC) kills with SIGSYS (status %#x)",
		   r.wstatus);

		run(&on, ACT_THREAD_SOCKET, &r);
		ok(r.bits & R_ENTERED, "tsync: entered with a second thread running");
		ok(died_of_sigsys(r.wstatus),
		   "tsync: socket() in a thread started before the filter kills the process "
		   "(status %#x)", r.wstatus);

		run(&log, ACT_SOCKET, &r);
		ok(r.bits & R_ENTERED, "log: entered");
		is(status_field(r.status, "Seccomp:"), 2, "log: Seccomp: 2");
		ok(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0,
		   "log: socket() is only logged, the process lives (status %#x)", r.wstatus);

		run(&on, ACT_NONE, &r);
		ok(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0,
		   "on: a child that only uses allowed calls exits 0 (status %#x)", r.wstatus);
	}

	if (geteuid() == 0) {
		struct sandbox_opts u = { .mode = SANDBOX_OFF, .user = "nobody" };
		struct sandbox_opts bad = { .mode = SANDBOX_OFF, .user = "no-such-user-vblk" };
		struct sandbox_opts root = { .mode = SANDBOX_OFF, .user = "root" };

		ok(run(&u, ACT_NONE, &r) == 0 && (r.bits & R_ENTERED), "user nobody: entered");
		ok(r.bits & R_UID_NOT_ROOT, "user nobody: uid and euid are not 0");
		ok(r.bits & R_NO_SETUID0, "user nobody: setuid(0) fails");
		ok(status_field(r.status, "Uid:") > 0, "user nobody: /proc status Uid %ld",
		   status_field(r.status, "Uid:"));
		is(status_field(r.status, "NoNewPrivs:"), 1, "user nobody: NoNewPrivs: 1");
		ok(no_groups(r.status), "user nobody: no supplementary groups");
		is(run(&bad, ACT_NONE, &r), -1, "unknown user: sandbox_enter fails");
		ok(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 97, "unknown user: error returned");
		is(run(&root, ACT_NONE, &r), -1, "user root: refused");
	} else {
		diag("not root: --user checks skipped");
	}
	return tap_done();
}
