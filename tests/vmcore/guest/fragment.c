/*
 * fragment: fragment the guest's free memory so that high-order free blocks
 * are scarce (used by scenarios/fragmented.sh, built with gcc -static).
 *
 *   fragment [margin_mb] [ready_file]
 *
 * 1. map an anonymous region A (MADV_NOHUGEPAGE) of
 *    MemFree - DMA-zone free - 2 * min_free_kbytes - margin and touch every
 *    page: order-0 allocations, which the buddy allocator serves
 *    smallest-block-first (mm/page_alloc.c __rmqueue_smallest, 5.10..6.12),
 *    so the memory left free is mostly the large blocks of the margin;
 * 2. MADV_DONTNEED every other page of A: about half of A becomes free
 *    order-0 pages whose buddies are still in use, so they cannot merge;
 * 3. eat the remaining large blocks: fault 2 MiB MADV_HUGEPAGE chunks
 *    (order-9 THP allocations; the scenario sets transparent_hugepage/
 *    defrag=never so no compaction runs) while /proc/buddyinfo shows a free
 *    block of order >= 9 (pageblock_order on x86_64) in a zone other than
 *    DMA.  Now that half of A is free the watermarks are no obstacle, and
 *    order-0 holes cannot serve order-9 requests, so each fault takes one
 *    of the large blocks;
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

/*
 * Free blocks of order >= min_order in zones other than DMA; if dma_kb is
 * not NULL, also the free kB of the DMA zone (unusable for user memory
 * because of lowmem_reserve).
 */
static long high_order_blocks(int min_order, long *dma_kb)
{
	char line[512], zone[32];
	long total = 0;
	FILE *f = fopen("/proc/buddyinfo", "r");

	if (!f)
		return -1;
	if (dma_kb)
		*dma_kb = 0;
	while (fgets(line, sizeof(line), f)) {
		int node, n, off, order = 0;
		char *p;
		long cnt;
		int dma;

		if (sscanf(line, "Node %d, zone %31s%n", &node, zone, &n) < 2)
			continue;
		dma = !strcmp(zone, "DMA");
		p = line + n;
		while (sscanf(p, "%ld%n", &cnt, &off) == 1) {
			if (dma && dma_kb)
				*dma_kb += (cnt << order) * 4;
			if (!dma && order >= min_order)
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
	long dma_kb = 0, guard_kb, a_kb, left, best, stale = 0;
	size_t a_len, i, freed = 0, b_chunks = 0, b_max;
	char *a, *b;

	if (min_kb < 0)
		min_kb = 4096;
	high_order_blocks(9, &dma_kb);
	guard_kb = dma_kb + 2 * min_kb;
	a_kb = free_kb - guard_kb - margin_mb * 1024;
	if (a_kb < 64 * 1024) {
		fprintf(stderr, "fragment: only %ld kB free\n", free_kb);
		return 1;
	}
	a_len = (size_t)a_kb * 1024 & ~(PAGE - 1);
	a = mmap(NULL, a_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("fragment: mmap A");
		return 1;
	}
	madvise(a, a_len, MADV_NOHUGEPAGE);
	for (i = 0; i < a_len; i += PAGE)
		a[i] = 1;

	for (i = 0; i < a_len; i += 2 * PAGE) {
		if (madvise(a + i, PAGE, MADV_DONTNEED) == 0)
			freed++;
	}

	/* region B: address space for the THP chunks */
	b_max = (size_t)free_kb * 1024 / 2;
	b = mmap(NULL, b_max + HUGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b == MAP_FAILED) {
		perror("fragment: mmap B");
		return 1;
	}
	b = (char *)(((unsigned long)b + HUGE - 1) & ~(HUGE - 1));
	madvise(b, b_max, MADV_HUGEPAGE);
	/* stop if 64 faults in a row did not reduce the large blocks (THP
	 * failing and falling back to order-0 pages, which eat the holes) */
	best = high_order_blocks(9, NULL);
	while ((b_chunks + 1) * HUGE <= b_max &&
	       (left = high_order_blocks(9, NULL)) > 0 &&
	       stale < 64 && meminfo_kb("MemFree") > guard_kb + 4096) {
		b[b_chunks * HUGE] = 1;
		b_chunks++;
		if (left < best) {
			best = left;
			stale = 0;
		} else {
			stale++;
		}
	}

	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f) {
			fprintf(f, "region_a_kb=%zu\nfreed_pages=%zu\n"
				"thp_chunks=%zu\nmemfree_kb=%ld\n"
				"min_free_kbytes=%ld\ndma_free_kb=%ld\n"
				"high_order_blocks_ge9=%ld\n",
				a_len >> 10, freed, b_chunks,
				meminfo_kb("MemFree"), min_kb, dma_kb,
				high_order_blocks(9, NULL));
			fclose(f);
		}
	}
	for (;;)
		pause();
	return 0;
}
