/*
 * pinhold anon MIB READY | pinhold pipe KIB READY
 *
 * Charge memory to the cgroup this process is in, say so in the file READY,
 * then sleep until killed, so that what was charged stays charged after the
 * process is moved to another cgroup and the first one is removed:
 *   anon: MIB MiB of private anonymous memory, every page written with its
 *         own contents (no zero page, nothing for KSM to merge);
 *   pipe: KIB KiB written into a pipe this process keeps both ends of (pipe
 *         buffers are allocated with __GFP_ACCOUNT: kernel memory charged to
 *         the writer's cgroup, fs/pipe.c).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void ready(const char *path, const char *what, long n)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(1);
	}
	fprintf(f, "%s %ld\n", what, n);
	fclose(f);
}

int main(int argc, char **argv)
{
	long n;

	if (argc != 4) {
		fprintf(stderr, "usage: pinhold anon MIB READY | pinhold pipe KIB READY\n");
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	if (!strcmp(argv[1], "anon")) {
		size_t len = (size_t)n << 20, off;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (off = 0; off < len; off += 4096)
			snprintf(p + off, 64, "crashext pinhold page %zu", off >> 12);
	} else if (!strcmp(argv[1], "pipe")) {
		int fds[2];
		char buf[1024];
		long i;

		if (pipe(fds) < 0) {
			perror("pipe");
			return 1;
		}
		fcntl(fds[1], F_SETFL, O_NONBLOCK);
		memset(buf, 'p', sizeof(buf));
		for (i = 0; i < n; i++)
			if (write(fds[1], buf, sizeof(buf)) != sizeof(buf)) {
				perror("write pipe");
				return 1;
			}
	} else {
		fprintf(stderr, "pinhold: unknown kind %s\n", argv[1]);
		return 2;
	}
	ready(argv[3], argv[1], n);
	for (;;)
		pause();
}
