/*
 * fragment: fragment the guest's free memory so that high-order free blocks
 * are scarce (used by scenarios/fragmented.sh, built with gcc -static).
 *
 *   fragment [margin_mb] [ready_file]
 *
 * 1. map an anonymous region A (MADV_NOHUGEPAGE) of MemFree - margin and
 *    touch every page: order-0 allocations, which the buddy allocator takes
 *    smallest-first (mm/page_alloc.c __rmqueue_smallest), so what is left
 *    free afterwards is mostly the large blocks of the margin;
 * 2. eat those: fault 2 MiB MADV_HUGEPAGE chunks (order-9 THP allocations,
 *    with transparent_hugepage/defrag=never set by the scenario so that no
 *    compaction runs) while /proc/buddyinfo shows a free block of order >=
 *    9 (pageblock_order on x86_64) in a zone other than DMA, and MemFree
 *    stays above a reserve;
 * 3. MADV_DONTNEED every other page of A: about half of A becomes free
 *    order-0 pages whose buddies are still in use, so they cannot merge;
 * 4. write a summary to ready_file (if given) and sleep forever, keeping
 *    the layout in place until the panic.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)

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

static long read_long(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* free blocks of order >= min_order in zones other than DMA */
static long high_order_blocks(int min_order)
{
	char line[512], zone[32];
	long total = 0;
	FILE *f = fopen("/proc/buddyinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		int node, n, off, order = 0;
		char *p;
		long cnt;

		if (sscanf(line, "Node %d, zone %31s%n", &node, zone, &n) < 2)
			continue;
		if (!strcmp(zone, "DMA"))
			continue;
		p = line + n;
		while (sscanf(p, "%ld%n", &cnt, &off) == 1) {
			if (order >= min_order)
				total += cnt;
			order++;
			p += off;
		}
	}
	fclose(f);
	return total;
}

int main(int argc, char **argv)
{
	long margin_mb = argc > 1 ? atol(argv[1]) : 64;
	const char *ready = argc > 2 ? argv[2] : NULL;
	long free_kb = meminfo_kb("MemFree");
	long min_kb = read_long("/proc/sys/vm/min_free_kbytes");
	long reserve_kb = (min_kb > 0 ? min_kb : 4096) * 3;
	size_t a_len, i, freed = 0, b_chunks = 0;
	char *a, *b;
	size_t b_max;

	if (free_kb <= margin_mb * 1024 + reserve_kb) {
		fprintf(stderr, "fragment: only %ld kB free\n", free_kb);
		return 1;
	}
	a_len = (size_t)(free_kb - margin_mb * 1024) * 1024 & ~(PAGE - 1);
	a = mmap(NULL, a_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("fragment: mmap A");
		return 1;
	}
	madvise(a, a_len, MADV_NOHUGEPAGE);
	for (i = 0; i < a_len; i += PAGE)
		a[i] = 1;

	/* region B: reserve address space, fault 2 MiB THP chunks */
	b_max = (size_t)margin_mb << 20;
	b = mmap(NULL, b_max + HUGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b == MAP_FAILED) {
		perror("fragment: mmap B");
		return 1;
	}
	b = (char *)(((unsigned long)b + HUGE - 1) & ~(HUGE - 1));
	madvise(b, b_max, MADV_HUGEPAGE);
	while (b_chunks * HUGE < b_max && high_order_blocks(9) > 0 &&
	       meminfo_kb("MemFree") > reserve_kb + 2048) {
		b[b_chunks * HUGE] = 1;
		b_chunks++;
	}

	for (i = 0; i < a_len; i += 2 * PAGE) {
		if (madvise(a + i, PAGE, MADV_DONTNEED) == 0)
			freed++;
	}

	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f) {
			fprintf(f, "region_a_kb=%zu\nfreed_pages=%zu\n"
				"thp_chunks=%zu\nmemfree_kb=%ld\n"
				"high_order_blocks_ge9=%ld\n",
				a_len >> 10, freed, b_chunks,
				meminfo_kb("MemFree"), high_order_blocks(9));
			fclose(f);
		}
	}
	for (;;)
		pause();
	return 0;
}
