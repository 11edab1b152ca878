/*
 * cgmany: create many dying memory cgroups quickly (scenarios/memcg-many.sh,
 * built with gcc -static).
 *
 *   cgmany PARENT_DIR COUNT FILE_DIR SUMMARY_FILE
 *
 * For i in 1..COUNT: mkdir PARENT_DIR/gI, start a child directly inside it
 * with clone3(CLONE_INTO_CGROUP) (Linux 5.7+, cgroup v2; unlike a write to
 * cgroup.procs it does not take cgroup_threadgroup_rwsem for writing, which
 * costs an RCU grace period per migration, see kernel/cgroup/cgroup.c), the
 * child writes one byte to FILE_DIR/fI (one tmpfs page charged to gI) and
 * exits, then rmdir gI.  The tmpfs page keeps every memcg dying.
 * Writes count, first/last cgroup inode and elapsed seconds to SUMMARY_FILE.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char path[4096], file[4096];
	long count, i;
	unsigned long first = 0, last = 0;
	double t0 = now();
	FILE *f;

	if (argc != 5) {
		fprintf(stderr, "usage: cgmany PARENT COUNT FILEDIR SUMMARY\n");
		return 2;
	}
	count = atol(argv[2]);
	for (i = 1; i <= count; i++) {
		struct clone_args args;
		struct stat st;
		int fd, status;
		pid_t pid;

		snprintf(path, sizeof(path), "%s/g%ld", argv[1], i);
		snprintf(file, sizeof(file), "%s/f%ld", argv[3], i);
		if (mkdir(path, 0755) < 0) {
			perror(path);
			return 1;
		}
		fd = open(path, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(path);
			return 1;
		}
		if (!first)
			first = st.st_ino;
		last = st.st_ino;
		memset(&args, 0, sizeof(args));
		args.flags = CLONE_INTO_CGROUP;
		args.exit_signal = SIGCHLD;
		args.cgroup = fd;
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid < 0) {
			perror("clone3(CLONE_INTO_CGROUP)");
			return 1;
		}
		if (pid == 0) {
			int out = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (out < 0 || write(out, "x", 1) != 1)
				_exit(1);
			close(out);
			_exit(0);
		}
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			fprintf(stderr, "cgmany: child %ld failed\n", i);
			return 1;
		}
		close(fd);
		if (rmdir(path) < 0) {
			perror(path);
			return 1;
		}
		if (i % 1000 == 0) {
			printf("@@CRASHEXT:PROGRESS cgmany %ld %.1f@@\n", i,
			       now() - t0);
			fflush(stdout);
		}
	}
	f = fopen(argv[4], "w");
	if (!f) {
		perror(argv[4]);
		return 1;
	}
	fprintf(f, "count=%ld\nfirst_ino=%lu\nlast_ino=%lu\nseconds=%.1f\n",
		count, first, last, now() - t0);
	fclose(f);
	return 0;
}
