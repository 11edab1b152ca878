/*
 * pagefrag: fragment free memory into isolated order-0 blocks by physical
 * address (scenarios/scale.sh, built with gcc -static).
 *
 *   pagefrag MARGIN_MB READY_FILE
 *
 * 1. map an anonymous region (MADV_NOHUGEPAGE) of MemFree minus twice
 *    min_free_kbytes minus MARGIN_MB and touch every page;
 * 2. read the region's page frame numbers from /proc/self/pagemap (bits
 *    0-54 of each 64-bit entry, bit 63 = present; PFNs need
 *    CAP_SYS_ADMIN, see Documentation/admin-guide/mm/pagemap.rst) and
 *    MADV_DONTNEED every page whose PFN is odd.  Its order-0 buddy
 *    (PFN ^ 1) is even and still mapped here, so the freed page cannot
 *    merge (mm/page_alloc.c __free_one_page): one isolated free block per
 *    freed page, about half of the guest's RAM;
 * 3. write key=value lines to READY_FILE and sleep forever, keeping the
 *    layout until the panic.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define CHUNK 65536UL	/* pagemap entries read at a time */

static long meminfo_kb(const char *key)
{
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = atol(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static uint64_t ent[CHUNK];
	long margin_mb, free_kb, min_kb = 4096, a_kb;
	size_t len, npages, i, j, n, freed = 0, notpresent = 0;
	double t0 = now();
	char *a;
	FILE *f;
	int pm;

	if (argc != 3) {
		fprintf(stderr, "usage: pagefrag MARGIN_MB READY_FILE\n");
		return 2;
	}
	margin_mb = atol(argv[1]);
	free_kb = meminfo_kb("MemFree");
	f = fopen("/proc/sys/vm/min_free_kbytes", "r");
	if (f) {
		if (fscanf(f, "%ld", &min_kb) != 1)
			min_kb = 4096;
		fclose(f);
	}
	a_kb = free_kb - 2 * min_kb - margin_mb * 1024;
	if (a_kb < 64 * 1024) {
		fprintf(stderr, "pagefrag: only %ld kB free\n", free_kb);
		return 1;
	}
	len = (size_t)a_kb * 1024 & ~(PAGE - 1);
	npages = len / PAGE;
	a = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("pagefrag: mmap");
		return 1;
	}
	madvise(a, len, MADV_NOHUGEPAGE);
	for (i = 0; i < len; i += PAGE)
		a[i] = 1;

	pm = open("/proc/self/pagemap", O_RDONLY);
	if (pm < 0) {
		perror("pagefrag: /proc/self/pagemap");
		return 1;
	}
	/* read all entries of a chunk before freeing any of its pages */
	for (i = 0; i < npages; i += n) {
		off_t off = (off_t)((uintptr_t)a / PAGE + i) * 8;

		n = npages - i < CHUNK ? npages - i : CHUNK;
		if (pread(pm, ent, n * 8, off) != (ssize_t)(n * 8)) {
			perror("pagefrag: pread pagemap");
			return 1;
		}
		for (j = 0; j < n; j++) {
			uint64_t pfn = ent[j] & ((1ULL << 55) - 1);

			if (!(ent[j] >> 63) || !pfn) {
				notpresent++;
				continue;
			}
			if ((pfn & 1) &&
			    madvise(a + (i + j) * PAGE, PAGE, MADV_DONTNEED) == 0)
				freed++;
		}
	}
	close(pm);

	f = fopen(argv[2], "w");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	fprintf(f, "region_kb=%zu\nmapped_pages=%zu\nfreed_odd_pfn_pages=%zu\n"
		"no_pfn_pages=%zu\nmemfree_kb=%ld\nmin_free_kbytes=%ld\n"
		"seconds=%.1f\n", len >> 10, npages, freed, notpresent,
		meminfo_kb("MemFree"), min_kb, now() - t0);
	fclose(f);
	for (;;)
		pause();
	return 0;
}
