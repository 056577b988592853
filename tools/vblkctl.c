/* SPDX-License-Identifier: MIT */
/*
 * vblkctl.c - the command-line client of vblkd's control socket: one
 * command per run, mapped onto a JSON-RPC method (docs/control.md);
 * tables for people, --json for scripts, `call` for any method.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "mgmt/mgmt_client.h"
#include "vblkctl.h"

#define DEFAULT_CONTROL "/run/vblkd/control.sock"

static const char usage_text[] =
"Usage: vblkctl [--control=PATH] [--json] [--timeout=SECONDS] COMMAND [ARGS]\n"
"\n"
"Talk to vblkd's control socket (vblkd --control=PATH).\n"
"\n"
"Commands:\n"
"  list [EXPORT]             the exports (one export: every detail)\n"
"  add KEY=VALUE[,KEY=VALUE...]\n"
"                            add an export; the keys of vblkd --export\n"
"                            (socket-path, file, null, rbd, num-queues, ...)\n"
"  remove [--force] EXPORT   remove an export; --force even with a VM connected\n"
"  resize EXPORT [SIZE]      resize an export to SIZE (512M, 20G, bytes), or\n"
"                            without SIZE pick up its image's current size\n"
"  stats [EXPORT] [--queues] I/O statistics: requests, bytes, errors and\n"
"                            latency by type (--queues: each queue too)\n"
"  stats [EXPORT] --watch [--interval=SECONDS] [--count=N]\n"
"                            per-second rates like iostat, every SECONDS\n"
"                            (default 1), N times (default: until killed)\n"
"  qos EXPORT [KEY=VALUE...]  show an export's I/O limits, or change them: iops,\n"
"                            iops-rd, iops-wr, bps, bps-rd, bps-wr (per second,\n"
"                            0: no limit), burst-ms, qos-group (\"\": leave it)\n"
"  version                   vblkd's version and pid\n"
"  methods                   the methods the daemon answers\n"
"  call METHOD [JSON]        call any method with JSON params (an object)\n"
"\n"
"EXPORT is the export's socket path (as export-list shows it).\n"
"\n"
"Options:\n"
"  -c, --control=PATH   the control socket (default: $VBLKCTL_CONTROL, else\n"
"                       " DEFAULT_CONTROL ")\n"
"  -j, --json           print the JSON-RPC result as JSON, for scripts\n"
"  -t, --timeout=SECONDS  how long to wait for the daemon (default 60)\n"
"  -h, --help           this text\n"
"  -V, --version        print vblkctl's version\n"
"\n"
"Exit status: 0 success, 1 the daemon refused (its message is printed),\n"
"2 usage error, 3 no answer from the daemon.\n";

bool opt_json;

int usage_error(const char *fmt, const char *arg)
{
	fputs("vblkctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'vblkctl --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

const char *jstr(struct json_object *o, const char *key, const char *dflt)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return dflt;
	return json_object_get_string(v);
}

uint64_t ju64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_uint64(v) : 0;
}

static bool jbool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* 1536 -> "1.5K", 21474836480 -> "20G", 1000 -> "1000". */
const char *human_size(uint64_t v, char *buf, size_t n)
{
	static const char units[] = "KMGTP";
	unsigned u = 0;
	double d;

	if (v < 1024) {
		snprintf(buf, n, "%" PRIu64, v);
		return buf;
	}
	d = (double)v / 1024;
	while (d >= 1024 && u < sizeof(units) - 2) {
		d /= 1024;
		u++;
	}
	if (d == (double)(uint64_t)d)
		snprintf(buf, n, "%" PRIu64 "%c", (uint64_t)d, units[u]);
	else
		snprintf(buf, n, "%.1f%c", d, units[u]);
	return buf;
}

void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void print_export_list(struct json_object *res)
{
	size_t n = json_object_array_length(res), w = 6;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(jstr(json_object_array_get_idx(res, i), "name", ""));

		w = l > w ? l : w;
	}
	printf("%-*s  %-6s  %8s  %-7s  %-6s  %-9s  %s\n", (int)w, "EXPORT", "ENGINE", "SIZE",
	       "QUEUES", "RING", "CONNECTED", "IMAGE");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(res, i);
		char size[32], queues[32];

		snprintf(queues, sizeof(queues), "%" PRIu64 "x%" PRIu64, ju64(e, "num-queues"),
			 ju64(e, "queue-size"));
		printf("%-*s  %-6s  %8s  %-7s  %-6s  %-9s  %s\n", (int)w, jstr(e, "name", "?"),
		       jstr(e, "engine", "?"), human_size(ju64(e, "size"), size, sizeof(size)), queues,
		       jstr(e, "ring", "-"), jbool(e, "connected") ? "yes" : "no",
		       jstr(e, "image", "-"));
	}
}

static void print_export_detail(struct json_object *e)
{
	struct json_object *names;
	char size[32];

	printf("export:      %s\n", jstr(e, "name", "?"));
	printf("socket:      %s\n", jstr(e, "socket-path", "(inherited fd)"));
	printf("engine:      %s\n", jstr(e, "engine", "?"));
	printf("image:       %s\n", jstr(e, "image", "-"));
	printf("size:        %s (%" PRIu64 " bytes)\n",
	       human_size(ju64(e, "size"), size, sizeof(size)), ju64(e, "size"));
	printf("queues:      %" PRIu64 " (up to %" PRIu64 " entries each)\n", ju64(e, "num-queues"),
	       ju64(e, "queue-size"));
	printf("read-only:   %s\n", jbool(e, "read-only") ? "yes" : "no");
	printf("connected:   %s\n", jbool(e, "connected") ? "yes" : "no");
	printf("ring:        %s\n", jstr(e, "ring", "-"));
	printf("features:    %s", jstr(e, "features", "0x0"));
	if (json_object_object_get_ex(e, "feature-names", &names) &&
	    json_object_is_type(names, json_type_array))
		for (size_t i = 0; i < json_object_array_length(names); i++)
			printf("%s%s", i ? " " : " (",
			       json_object_get_string(json_object_array_get_idx(names, i)));
	if (names && json_object_array_length(names))
		printf(")");
	printf("\n");
}

/* One line per limit; "-" for none. */
static void print_qos(struct json_object *res)
{
	static const char *const keys[] = { "iops", "iops-rd", "iops-wr", "bps", "bps-rd",
					    "bps-wr" };
	char a[32];

	printf("%s: qos-group %s, burst %" PRIu64 " ms\n", jstr(res, "export", "?"),
	       jstr(res, "qos-group", "-"), ju64(res, "burst-ms"));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint64_t v = ju64(res, keys[i]);

		if (!v)
			printf("  %-8s -\n", keys[i]);
		else if (keys[i][0] == 'b')
			printf("  %-8s %s/s\n", keys[i], human_size(v, a, sizeof(a)));
		else
			printf("  %-8s %" PRIu64 "/s\n", keys[i], v);
	}
}

/* Print @res, the result of @command, for people. */
static void print_human(const char *command, struct json_object *res, int nargs)
{
	char a[32], b[32];

	if (!strcmp(command, "list")) {
		if (nargs && json_object_array_length(res) == 1)
			print_export_detail(json_object_array_get_idx(res, 0));
		else
			print_export_list(res);
	} else if (!strcmp(command, "add")) {
		printf("added %s\n", jstr(res, "name", "?"));
	} else if (!strcmp(command, "remove")) {
		printf("removed %s%s\n", jstr(res, "export", "?"),
		       jbool(res, "was-connected") ? " (its frontend was disconnected)" : "");
	} else if (!strcmp(command, "resize")) {
		printf("%s: %s -> %s", jstr(res, "export", ""),
		       human_size(ju64(res, "old-size"), a, sizeof(a)),
		       human_size(ju64(res, "new-size"), b, sizeof(b)));
		if (ju64(res, "old-size") == ju64(res, "new-size"))
			printf(" (unchanged)\n");
		else if (jbool(res, "guest-notified"))
			printf(" (the guest was told)\n");
		else
			printf("\nwarning: %s\n", jstr(res, "notify-error", "the guest was not told"));
	} else if (!strcmp(command, "qos")) {
		print_qos(res);
	} else if (!strcmp(command, "version")) {
		printf("vblkd %s (pid %" PRIu64 ")\n", jstr(res, "version", "?"), ju64(res, "pid"));
	} else if (!strcmp(command, "methods")) {
		for (size_t i = 0; i < json_object_array_length(res); i++) {
			struct json_object *m = json_object_array_get_idx(res, i);

			printf("%-16s %s\n", jstr(m, "name", "?"), jstr(m, "summary", ""));
		}
	} else {
		print_json(res);
	}
}

/* "k=v,k2=v2" (and more such arguments) into an object of strings. */
static int add_params(int argc, char **argv, struct json_object *params)
{
	for (int i = 0; i < argc; i++) {
		char *list = strdup(argv[i]), *save = NULL;

		if (!list)
			return -ENOMEM;
		for (char *kv = strtok_r(list, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');

			if (eq)
				*eq++ = '\0';
			if (!*kv) {
				free(list);
				return -EINVAL;
			}
			json_object_object_add(params, kv, eq ? json_object_new_string(eq) :
					       json_object_new_boolean(1));
		}
		free(list);
	}
	return 0;
}

/* The method and params for @command. Return: EXIT_OK or EXIT_USAGE. */
static int build_request(const char *command, int argc, char **argv, const char **method,
			 struct json_object **params)
{
	struct json_object *p = json_object_new_object();
	bool force = false;

	*params = p;
	if (!strcmp(command, "list")) {
		*method = "export-list";
		if (argc > 1)
			return usage_error("list takes at most one export, not '%s'", argv[1]);
		if (argc)
			json_object_object_add(p, "export", json_object_new_string(argv[0]));
	} else if (!strcmp(command, "add")) {
		*method = "export-add";
		if (!argc)
			return usage_error("%s needs KEY=VALUE options", "add");
		if (add_params(argc, argv, p))
			return usage_error("bad option list '%s'", argv[0]);
	} else if (!strcmp(command, "remove")) {
		*method = "export-remove";
		for (; argc && !strcmp(argv[0], "--force"); argc--, argv++)
			force = true;
		if (argc == 2 && !strcmp(argv[1], "--force")) {
			force = true;
			argc--;
		}
		if (argc != 1)
			return usage_error("%s needs one EXPORT", "remove");
		json_object_object_add(p, "export", json_object_new_string(argv[0]));
		if (force)
			json_object_object_add(p, "force", json_object_new_boolean(1));
	} else if (!strcmp(command, "resize")) {
		*method = "export-resize";
		if (argc < 1 || argc > 2)
			return usage_error("%s needs EXPORT [SIZE]", "resize");
		json_object_object_add(p, "export", json_object_new_string(argv[0]));
		if (argc == 2)
			json_object_object_add(p, "size", json_object_new_string(argv[1]));
	} else if (!strcmp(command, "qos")) {
		*method = argc > 1 ? "export-set-qos" : "export-get-qos";
		if (argc < 1)
			return usage_error("%s needs EXPORT [KEY=VALUE...]", "qos");
		if (argc > 1 && add_params(argc - 1, argv + 1, p))
			return usage_error("bad option list '%s'", argv[1]);
		if (json_object_object_get_ex(p, "export", NULL))
			return usage_error("%s", "give the export as the first argument");
		json_object_object_add(p, "export", json_object_new_string(argv[0]));
	} else if (!strcmp(command, "version") || !strcmp(command, "methods")) {
		*method = !strcmp(command, "version") ? "version" : "help";
		if (argc)
			return usage_error("unexpected argument '%s'", argv[0]);
		json_object_put(p);
		*params = NULL;
	} else if (!strcmp(command, "call")) {
		if (argc < 1 || argc > 2)
			return usage_error("%s needs METHOD [JSON]", "call");
		*method = argv[0];
		json_object_put(p);
		*params = NULL;
		if (argc == 2) {
			*params = json_tokener_parse(argv[1]);
			if (!*params || !json_object_is_type(*params, json_type_object))
				return usage_error("params must be a JSON object: %s", argv[1]);
		}
	} else {
		return usage_error("unknown command '%s'", command);
	}
	return EXIT_OK;
}

int connect_control(const char *control)
{
	int fd = mgmt_client_connect(control);

	if (fd < 0)
		fprintf(stderr, "vblkctl: cannot connect to %s: %s\n", control, strerror(-fd));
	return fd;
}

int call_method(int fd, const char *control, const char *method, struct json_object *params,
		int timeout_ms, struct json_object **reply)
{
	struct json_object *err;
	int ret;

	*reply = NULL;
	ret = mgmt_client_call(fd, method, params, reply, timeout_ms);
	if (ret) {
		fprintf(stderr, "vblkctl: %s: no answer from %s: %s\n", method, control,
			ret == -EPIPE ? "connection closed" : strerror(-ret));
		return EXIT_CONN;
	}
	if (json_object_object_get_ex(*reply, "error", &err)) {
		fprintf(stderr, "vblkctl: %s: %s (error %s)\n", method, jstr(err, "message", "?"),
			jstr(err, "code", "?"));
		json_object_put(*reply);
		*reply = NULL;
		return EXIT_RPC;
	}
	if (!json_object_object_get_ex(*reply, "result", NULL)) {
		fprintf(stderr, "vblkctl: %s: a reply without a result\n", method);
		json_object_put(*reply);
		*reply = NULL;
		return EXIT_CONN;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = getenv("VBLKCTL_CONTROL"), *method = NULL, *command;
	struct json_object *params = NULL, *reply = NULL, *res = NULL;
	long timeout_s = 60;
	int opt, fd, rc;
	char *end;

	if (!control || !*control)
		control = DEFAULT_CONTROL;
	/* Options stop at the command: "remove --force X" keeps its --force. */
	while ((opt = getopt_long(argc, argv, "+c:jt:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': control = optarg; break;
		case 'j': opt_json = true; break;
		case 't':
			errno = 0;
			timeout_s = strtol(optarg, &end, 10);
			if (errno || *end || timeout_s < 1 || timeout_s > 86400)
				return usage_error("invalid timeout '%s' (1-86400 seconds)", optarg);
			break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		case 'V': printf("vblkctl %s\n", VBLK_VERSION); return EXIT_OK;
		default: return usage_error("%s", "unknown option");
		}
	}
	if (optind >= argc)
		return usage_error("%s", "no command given");
	command = argv[optind];
	/* stats has options of its own, and --watch keeps calling. */
	if (!strcmp(command, "stats"))
		return stats_command(control, (int)timeout_s * 1000, argc - optind - 1,
				     argv + optind + 1);
	rc = build_request(command, argc - optind - 1, argv + optind + 1, &method, &params);
	if (rc) {
		json_object_put(params);
		return rc;
	}
	fd = connect_control(control);
	if (fd < 0) {
		json_object_put(params);
		return EXIT_CONN;
	}
	rc = call_method(fd, control, method, params, (int)timeout_s * 1000, &reply);
	close(fd);
	json_object_put(params);
	if (rc)
		return rc;
	json_object_object_get_ex(reply, "result", &res);
	if (opt_json) {
		print_json(res);
	} else if (!res) {
		printf("ok\n");
	} else {
		/* resize's result does not name the export: add it for the line. */
		if (!strcmp(command, "resize") && json_object_is_type(res, json_type_object))
			json_object_object_add(res, "export",
					       json_object_new_string(argv[optind + 1]));
		print_human(command, res, argc - optind - 1);
	}
	json_object_put(reply);
	return EXIT_OK;
}
