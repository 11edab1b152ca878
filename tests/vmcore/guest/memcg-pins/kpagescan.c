/*
 * kpagescan INO [INO...]: the pages the kernel itself says belong to the
 * memory cgroups with these inode numbers, by kind, read from
 * /proc/kpagecgroup (page_cgroup_ino() of each page frame) and
 * /proc/kpageflags (stable_page_flags()), one line per cgroup:
 *
 *   INO <tab> file <tab> shmem <tab> anon <tab> slab <tab> other <tab> total
 *
 * Kinds, from the KPF_* bits of include/uapi/linux/kernel-page-flags.h
 * (stable since 2.6.31; PGTABLE since 4.x):
 *   slab   KPF_SLAB
 *   anon   KPF_ANON (PageAnon: mapping with PAGE_MAPPING_ANON)
 *   shmem  KPF_SWAPBACKED without KPF_ANON (tmpfs/shmem, also in swap cache)
 *   file   KPF_LRU or KPF_UPTODATE, none of the above (page cache; a page
 *          still in a per-CPU LRU batch is uptodate but not yet on the LRU)
 *   other  the rest (kernel pages charged with __GFP_ACCOUNT: pipe buffers,
 *          page tables, kernel stacks)
 * A tail page of a compound page counts with its head: page_cgroup_ino() of
 * a tail is 0 on kernels that keep the memcg in the head (folio) only.
 * Run while the cgroups are online: page_cgroup_ino() walks up to the first
 * online ancestor, so a removed cgroup's pages report another inode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KPF_UPTODATE 3
#define KPF_LRU 5
#define KPF_SLAB 7
#define KPF_ANON 12
#define KPF_SWAPBACKED 14
#define KPF_COMPOUND_TAIL 16
#define KPF_NOPAGE 20

#define CHUNK 8192
#define MAXINO 64

enum { FILE_, SHMEM, ANON, SLAB, OTHER, NKIND };

static int kind_of(uint64_t f)
{
	if (f & (1ULL << KPF_SLAB))
		return SLAB;
	if (f & (1ULL << KPF_ANON))
		return ANON;
	if (f & (1ULL << KPF_SWAPBACKED))
		return SHMEM;
	if (f & ((1ULL << KPF_LRU) | (1ULL << KPF_UPTODATE)))
		return FILE_;
	return OTHER;
}

int main(int argc, char **argv)
{
	static uint64_t cg[CHUNK], fl[CHUNK];
	uint64_t inos[MAXINO], counts[MAXINO][NKIND];
	uint64_t head_ino = 0;
	int head_kind = OTHER, n = argc - 1, cfd, ffd, i, k;

	if (n < 1 || n > MAXINO) {
		fprintf(stderr, "usage: kpagescan INO [INO...] (at most %d)\n", MAXINO);
		return 2;
	}
	for (i = 0; i < n; i++)
		inos[i] = strtoull(argv[i + 1], NULL, 10);
	memset(counts, 0, sizeof(counts));
	cfd = open("/proc/kpagecgroup", O_RDONLY);
	ffd = open("/proc/kpageflags", O_RDONLY);
	if (cfd < 0 || ffd < 0) {
		perror("open /proc/kpage*");
		return 1;
	}
	for (;;) {
		ssize_t a = read(cfd, cg, sizeof(cg));
		ssize_t b = read(ffd, fl, sizeof(fl));
		size_t m;

		if (a < 0 || b < 0) {
			perror("read /proc/kpage*");
			return 1;
		}
		if (a == 0 || b == 0)
			break;
		if (a != b) {
			fprintf(stderr, "kpagecgroup and kpageflags out of step\n");
			return 1;
		}
		for (m = 0; m < (size_t)a / 8; m++) {
			uint64_t ino = cg[m], f = fl[m];
			int kind;

			if (f & (1ULL << KPF_NOPAGE))
				continue;
			if (f & (1ULL << KPF_COMPOUND_TAIL)) {
				ino = head_ino;
				kind = head_kind;
			} else {
				kind = kind_of(f);
				head_ino = ino;
				head_kind = kind;
			}
			for (i = 0; i < n; i++)
				if (inos[i] == ino)
					counts[i][kind]++;
		}
	}
	for (i = 0; i < n; i++) {
		uint64_t total = 0;

		printf("%llu", (unsigned long long)inos[i]);
		for (k = 0; k < NKIND; k++) {
			printf("\t%llu", (unsigned long long)counts[i][k]);
			total += counts[i][k];
		}
		printf("\t%llu\n", (unsigned long long)total);
	}
	return 0;
}
