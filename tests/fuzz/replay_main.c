/* SPDX-License-Identifier: MIT */
/*
 * replay_main.c - main() for a fuzz target built without libFuzzer (any
 * compiler): runs LLVMFuzzerTestOneInput once over every file named on
 * the command line, and every file inside directories named there (in
 * name order; names starting with '.' and README files are skipped). CI
 * replays the seed corpus and the crash regressions this way under
 * ASan/UBSan. A crash or failed invariant aborts, so the test fails.
 *
 * Exit: 0 after all inputs ran, 1 if a path cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned replayed;

static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Exactly the file's size, so reading past the input is caught. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			fprintf(stderr, "replay: %s: short read\n", path);
			free(buf);
			close(fd);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	printf("replay: %s (%zu bytes)\n", path, got);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	replayed++;
	return 0;
}

static int skip_name(const char *name)
{
	return name[0] == '.' || strncmp(name, "README", 6) == 0;
}

static int replay_path(const char *path)
{
	struct dirent **list;
	struct stat st;
	int n, ret = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	n = scandir(path, &list, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *child;

		if (!ret && !skip_name(list[i]->d_name)) {
			if (asprintf(&child, "%s/%s", path, list[i]->d_name) < 0) {
				ret = -1;
			} else {
				if (stat(child, &st) == 0 && S_ISREG(st.st_mode))
					ret = replay_file(child);
				free(child);
			}
		}
		free(list[i]);
	}
	free(list);
	return ret;
}

int main(int argc, char **argv)
{
	int ret = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 1;
	}
	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i]))
			ret = 1;
	printf("replay: %u inputs, %s\n", replayed, ret ? "errors" : "no crash");
	return ret;
}
