/* SPDX-License-Identifier: MIT */
/*
 * The cases of the kernel's own KSM tests, ported to the public API
 * (include/samepage.h) and judged by the kernel's counter meanings
 * (Documentation/admin-guide/mm/ksm.rst), "two full scans" as API.md counts
 * them: full_scans grows by two. Each test names the case it comes from:
 *
 * - tools/testing/selftests/mm/ksm_functional_tests.c: test_unmerge,
 *   test_unmerge_zero_pages, test_unmerge_discarded, test_prot_none.
 * - tools/testing/selftests/mm/ksm_tests.c: -M (check_ksm_merge), -U
 *   (check_ksm_unmerge), -Z (check_ksm_zero_page_merge), -N
 *   (check_ksm_numa_merge), and the functional part of -D (unmerge time) and
 *   -C (copy-on-write time).
 * - LTP testcases/kernel/mem/ksm: ksm01 (create_same_memory's four phases,
 *   ksm_group_check), ksm02 (the same under a memory binding, then in a
 *   cpuset), ksm06 (merge_across_nodes with two nodes).
 *
 * A "process" of the LTP tests is a set of regions here: a pool belongs to
 * one process. LTP's ksm02 binds its memory with set_mempolicy(MPOL_BIND)
 * and then runs again in a cpuset limited to that node: here a pool of two
 * nodes, its regions bound to node 1 with sp_mbind (SP_MPOL_BIND, moving
 * what is placed), and then a pool whose node-0 sections are all offline,
 * so that every frame comes from node 1 as a cpuset would have it. ksm06's
 * NUMA nodes are the pool's two (logical) nodes.
 *
 * Not ported, and why:
 * - test_unmerge_uffd_wp: the program registers a userfaultfd of its own on
 *   the range; pool memory is registered with samepage's userfaultfd, and a
 *   second registration of a range fails (EBUSY).
 * - test_prot_none's PROT_NONE: the pool owns its mappings' protections (the
 *   SIGSEGV mode guards pages with mprotect). Its writes through
 *   /proc/self/mem are ported.
 * - test_prctl, test_prctl_fork, test_prctl_fork_exec, test_prctl_unmerge,
 *   ksm_tests -t 1: PR_SET_MEMORY_MERGE makes a whole process mergeable; a
 *   pool's memory is mergeable per region (SP_MERGEABLE, sp_madvise), which
 *   test_unmerge covers. The fork cases need fork() of pool memory and
 *   merging across processes: issue 15 (fork support).
 * - LTP ksm01/ksm02 as separate processes, ksm03/ksm04 (memory cgroup),
 *   ksm05 (fork race): fork and cross-process merging, issue 15; cgroups do
 *   not apply to a pool's frames.
 * - ksm_tests -P, -H and the timing of -D and -C: benchmarks
 *   (bench/bench_ksm); -H needs huge pages, which a pool does not have.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

#define MiB (1ul << 20)
#define PG SP_PAGE_SIZE

static sp_pool *pool_nodes(unsigned mode, unsigned nr_sections, unsigned nr_nodes, bool ksmd)
{
	struct sp_pool_config cfg = { .section_size = 4 * MiB,
				      .nr_sections = nr_sections,
				      .max_sections = nr_sections,
				      .nr_nodes = nr_nodes,
				      .flags = mode | (ksmd ? 0 : SP_POOL_NO_KSMD) };
	sp_pool *pool = sp_pool_create(&cfg);

	assert_non_null(pool);
	return pool;
}

static void set(sp_pool *pool, const char *knob, long v)
{
	assert_int_equal(sp_ksm_set(pool, knob, v), 0);
}

/* ksm_functional_tests' ksm_merge(): run=1, then two full scans. */
static void ksm_merge(sp_pool *pool)
{
	set(pool, "run", 1);
	full_scan(pool);
	full_scan(pool);
}

static char *alloc_filled(sp_pool *pool, size_t len, int val)
{
	char *p = sp_alloc(pool, len, SP_MERGEABLE);

	assert_non_null(p);
	memset(p, val, len);
	return p;
}

/* The frame numbers of n pages (0: not present, or not shown to us). */
static void pagemap_pfns(const char *p, unsigned long n, uint64_t *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (off_t)((uintptr_t)p / PG) * 8;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, pfn, n * 8, off), (ssize_t)(n * 8));
	close(fd);
	for (unsigned long i = 0; i < n; i++)
		pfn[i] = (pfn[i] >> 63) ? pfn[i] & ((1ull << 55) - 1) : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The selftests' range_maps_duplicates(): does the range map one frame
 * twice? PFNs are shown to root only; *shown says whether any was.
 */
static bool range_maps_duplicates(const char *p, unsigned long n, bool *shown)
{
	uint64_t *pfn = calloc(n, sizeof(*pfn));
	bool dup = false;

	assert_non_null(pfn);
	pagemap_pfns(p, n, pfn);
	qsort(pfn, n, sizeof(*pfn), cmp_u64);
	*shown = false;
	for (unsigned long i = 0; i < n; i++) {
		*shown |= pfn[i] != 0;
		dup |= i && pfn[i] && pfn[i] == pfn[i - 1];
	}
	free(pfn);
	return dup;
}

static long count_ksm(sp_pool *pool, const char *p, unsigned long n)
{
	long k = 0;

	for (unsigned long i = 0; i < n; i++)
		k += sp_page_is_ksm(pool, p + i * PG) == 1;
	return k;
}

/* Merged before, unmerged now: by pagemap where it is shown, and by sp_page_is_ksm. */
static void assert_unmerged(sp_pool *pool, const char *p, unsigned long n)
{
	bool shown;

	assert_false(range_maps_duplicates(p, n, &shown));
	assert_int_equal(count_ksm(pool, p, n), 0);
}

static void assert_merged(sp_pool *pool, const char *p, unsigned long n)
{
	bool shown;
	bool dup = range_maps_duplicates(p, n, &shown);

	assert_true(dup || !shown);
	assert_int_equal(count_ksm(pool, p, n), (long)n);
}

static void assert_filled(const char *p, size_t len, int val)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (char)val)
			fail_msg("byte %zu is %d, not %d", i, p[i], val);
}

/* ---- ksm_functional_tests.c ------------------------------------------- */

/* mmap_and_merge_range(): KSM off (run=2), size bytes of val, merged. */
static char *merge_range(sp_pool *pool, int val, size_t size)
{
	char *map;

	set(pool, "run", 2);
	map = alloc_filled(pool, size, val);
	ksm_merge(pool);
	return map;
}

/* test_unmerge: 2 MiB merged, MADV_UNMERGEABLE, no frame mapped twice. */
static void functional_unmerge(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_nodes(mode, 2, 1, false);
	char *map = merge_range(pool, 0xcf, 2 * MiB);

	assert_merged(pool, map, 2 * MiB / PG);
	assert_int_equal(sp_madvise(pool, map, 2 * MiB, SP_MADV_UNMERGEABLE), 0);
	assert_unmerged(pool, map, 2 * MiB / PG);
	assert_filled(map, 2 * MiB, 0xcf);
	sp_pool_destroy(pool);
}

/*
 * test_unmerge_zero_pages: use_zero_pages=1, 2 MiB of zeros merged with the
 * zero page (ksm_zero_pages counts them), half unmerged, the other half
 * written. The kernel counts a written zero page in the write fault;
 * samepage when the scanner next passes (samepage(3), differences): so the
 * last figure is read after a scan.
 */
static void functional_unmerge_zero_pages(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_nodes(mode, 2, 1, false);
	unsigned long pages = 2 * MiB / PG;
	char *map;

	set(pool, "use_zero_pages", 1);
	map = merge_range(pool, 0, 2 * MiB);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), (long)pages);
	assert_int_equal(sp_madvise(pool, map, MiB, SP_MADV_UNMERGEABLE), 0);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), (long)pages / 2);
	for (unsigned long offs = MiB; offs < 2 * MiB; offs += PG)
		*(unsigned *)&map[offs] = (unsigned)offs;
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), 0);
	assert_unmerged(pool, map, pages);
	for (unsigned long offs = 0; offs < 2 * MiB; offs += PG)
		assert_int_equal(*(unsigned *)&map[offs], offs < MiB ? 0 : (unsigned)offs);
	sp_pool_destroy(pool);
}

/*
 * test_unmerge_discarded: half of the merged range MADV_DONTNEED-ed by the
 * program, then MADV_UNMERGEABLE. Pool memory is shared memory: DONTNEED
 * drops the mapping, not the data, so the discarded half still reads 0xcf
 * (anonymous memory would read zeros).
 */
static void functional_unmerge_discarded(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_nodes(mode, 2, 1, false);
	char *map = merge_range(pool, 0xcf, 2 * MiB);

	assert_int_equal(madvise(map, MiB, MADV_DONTNEED), 0);
	assert_int_equal(sp_madvise(pool, map, 2 * MiB, SP_MADV_UNMERGEABLE), 0);
	assert_unmerged(pool, map, 2 * MiB / PG);
	assert_filled(map, 2 * MiB, 0xcf);
	sp_pool_destroy(pool);
}

/*
 * test_prot_none, without the PROT_NONE: a unique value stored in each page
 * of one half through /proc/self/mem (as ptrace would), the other half
 * unmerged with MADV_UNMERGEABLE: no frame is mapped twice.
 */
static void functional_prot_none(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_nodes(mode, 2, 1, false);
	char *map = merge_range(pool, 0x11, 2 * MiB);
	int fd = open("/proc/self/mem", O_RDWR);

	assert_true(fd >= 0);
	for (unsigned i = 0; i < MiB; i += PG)
		assert_int_equal(pwrite(fd, &i, sizeof(i), (off_t)(uintptr_t)(map + i)),
				 (ssize_t)sizeof(i));
	close(fd);
	assert_int_equal(sp_madvise(pool, map + MiB, MiB, SP_MADV_UNMERGEABLE), 0);
	full_scan(pool); /* the kernel's copies of the first half are noticed */
	assert_unmerged(pool, map, 2 * MiB / PG);
	for (unsigned i = 0; i < MiB; i += PG)
		assert_int_equal(*(unsigned *)&map[i], i);
	assert_filled(map + MiB, MiB, 0x11);
	sp_pool_destroy(pool);
}

/* ---- ksm_tests.c ------------------------------------------------------- */

/* assert_ksm_pages_count(): what n duplicates come to, max_page_sharing at most per frame. */
static void assert_ksm_pages_count(sp_pool *pool, long dupl)
{
	long max = ksm_of(pool, "max_page_sharing");
	long shared = ksm_of(pool, "pages_shared"), sharing = ksm_of(pool, "pages_sharing");

	if (dupl % max == 1 || dupl % max == 0) {
		assert_int_equal(shared, dupl / max);
		assert_int_equal(sharing, shared * (max - 1));
	} else {
		assert_int_equal(shared, dupl / max + 1);
		assert_int_equal(sharing, dupl - shared);
	}
}

/* ksm_tests' setup: run=2, sleep_millisecs=0, pages_to_scan=page_count. */
static sp_pool *tests_pool(unsigned mode, unsigned nr_nodes, long page_count)
{
	sp_pool *pool =
		pool_nodes(mode, 2 + (unsigned)(page_count * PG / (4 * MiB)), nr_nodes, false);

	set(pool, "run", 2);
	set(pool, "sleep_millisecs", 0);
	set(pool, "pages_to_scan", page_count);
	return pool;
}

/* -M, check_ksm_merge: page_count pages of '*', with max_page_sharing from 2 up. */
static void tests_merge(void **state)
{
	unsigned mode = *(unsigned *)*state;
	static const long cases[][2] = { { 10, 256 }, { 10, 2 },  { 11, 10 },  { 12, 10 },
					 { 20, 4 },   { 100, 7 }, { 257, 256 } };

	for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		sp_pool *pool = tests_pool(mode, 1, cases[c][0]);
		char *map;

		set(pool, "max_page_sharing", cases[c][1]);
		map = alloc_filled(pool, (size_t)cases[c][0] * PG, '*');
		ksm_merge(pool);
		assert_ksm_pages_count(pool, cases[c][0]);
		assert_filled(map, (size_t)cases[c][0] * PG, '*');
		sp_pool_destroy(pool);
	}
}

/* -U, check_ksm_unmerge: two merged pages, a byte of each changed, one scan: none merged. */
static void tests_unmerge(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = tests_pool(mode, 1, 2);
	char *map = alloc_filled(pool, 2 * PG, '*');

	ksm_merge(pool);
	assert_ksm_pages_count(pool, 2);
	memset(map, '-', 1);
	memset(map + PG, '+', 1);
	full_scan(pool);
	assert_ksm_pages_count(pool, 0);
	assert_int_equal(map[0], '-');
	assert_int_equal(map[PG], '+');
	assert_filled(map + 1, PG - 1, '*');
	assert_filled(map + PG + 1, PG - 1, '*');
	sp_pool_destroy(pool);
}

/* -Z, check_ksm_zero_page_merge: zeros merge with each other, or with the zero page. */
static void tests_zero_page_merge(void **state)
{
	unsigned mode = *(unsigned *)*state;

	for (int use_zero_pages = 0; use_zero_pages < 2; use_zero_pages++) {
		sp_pool *pool = tests_pool(mode, 1, 10);
		char *map;

		set(pool, "use_zero_pages", use_zero_pages);
		map = alloc_filled(pool, 10 * PG, 0);
		ksm_merge(pool);
		assert_ksm_pages_count(pool, use_zero_pages ? 0 : 10);
		assert_int_equal(ksm_of(pool, "ksm_zero_pages"), use_zero_pages ? 10 : 0);
		assert_filled(map, 10 * PG, 0);
		sp_pool_destroy(pool);
	}
}

/* -N, check_ksm_numa_merge: a page on each of two nodes; merged only across nodes. */
static void tests_numa_merge(void **state)
{
	unsigned mode = *(unsigned *)*state;

	for (int across = 0; across < 2; across++) {
		sp_pool *pool = tests_pool(mode, 2, 2);
		char *p[2];

		set(pool, "merge_across_nodes", across);
		for (int n = 0; n < 2; n++) {
			p[n] = alloc_filled(pool, PG, '*');
			assert_int_equal(sp_mbind(pool, p[n], PG, SP_MPOL_BIND, 1ul << n,
						  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
					 0);
			assert_int_equal(sp_page_node(pool, p[n]), n);
		}
		ksm_merge(pool);
		assert_ksm_pages_count(pool, across ? 2 : 0);
		for (int n = 0; n < 2; n++)
			assert_filled(p[n], PG, '*');
		sp_pool_destroy(pool);
	}
}

/* -D, ksm_unmerge_time, what it checks besides the time: 32 MiB merged, then unmerged. */
static void tests_unmerge_large(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_nodes(mode, 16, 1, false);
	char *map = alloc_filled(pool, 32 * MiB, '*');

	set(pool, "run", 2);
	set(pool, "max_page_sharing", 32 * MiB / PG);
	ksm_merge(pool);
	assert_ksm_pages_count(pool, 32 * MiB / PG);
	assert_int_equal(sp_madvise(pool, map, 32 * MiB, SP_MADV_UNMERGEABLE), 0);
	assert_ksm_pages_count(pool, 0);
	assert_unmerged(pool, map, 32 * MiB / PG);
	assert_filled(map, 32 * MiB, '*');
	sp_pool_destroy(pool);
}

/*
 * -C, ksm_cow_time, what it checks besides the time: 2,000 pairs of
 * duplicates merged, then the first page of each pair written. The kernel
 * keeps each KSM page, mapped once, in its stable tree (pages_shared 2000
 * until the page is unmapped); samepage gives it back to its last sharer
 * (samepage(3), differences), so both counters read 0.
 */
static void tests_cow(void **state)
{
	unsigned mode = *(unsigned *)*state;
	const size_t page_count = 4000;
	sp_pool *pool = tests_pool(mode, 1, (long)page_count);
	char *map = alloc_filled(pool, page_count * PG, '*');

	for (size_t i = 0; i < page_count - 1; i += 2)
		memset(map + PG * i, '-', 1);
	for (size_t i = 0; i < page_count - 1; i += 2) {
		memset(map + PG * i, '+', i / 2 + 1);
		memset(map + PG * (i + 1), '+', i / 2 + 1);
	}
	ksm_merge(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), 2000);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 2000);
	for (size_t i = 0; i < page_count - 1; i += 2)
		memset(map + PG * i, '-', 1);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	for (size_t i = 0; i < page_count - 1; i += 2) {
		assert_int_equal(map[PG * i], '-');
		assert_filled(map + PG * i + 1, i / 2, '+');
		assert_filled(map + PG * (i + 1), i / 2 + 1, '+');
	}
	sp_pool_destroy(pool);
}

/* ---- LTP ksm01, ksm02, ksm06 ------------------------------------------ */

#define LTP_SIZE 2 /* MiB per process (LTP: 128) */
#define LTP_UNIT 1 /* MiB per region (LTP: -u) */
#define LTP_NUM 3 /* processes (LTP: -n, at least 3) */
#define LTP_PAGES (LTP_SIZE * MiB / PG)
#define LTP_TOTAL (LTP_NUM * LTP_PAGES)

/* One LTP "child": its memory, LTP_SIZE MiB in regions of LTP_UNIT MiB. */
struct ltp_child {
	char *mem[LTP_SIZE / LTP_UNIT];
};

struct ltp_data {
	char data;
	bool all; /* mergeable_size == size: else the last byte is 'e' */
};

struct ltp {
	sp_pool *pool;
	bool ksmd; /* scanned by ksmd, as LTP does; else by sp_ksm_scan */
	int node; /* every frame must be on it; -1: anywhere */
	struct ltp_child child[LTP_NUM];
};

/* ksm_child_memset(), then verify() */
static void ltp_memset(struct ltp_child *c, struct ltp_data d)
{
	for (int j = 0; j < LTP_SIZE / LTP_UNIT; j++)
		memset(c->mem[j], d.data, LTP_UNIT * MiB);
	if (!d.all)
		c->mem[LTP_SIZE / LTP_UNIT - 1][LTP_UNIT * MiB - 1] = 'e';
}

static void ltp_verify(const struct ltp_child *c, struct ltp_data d)
{
	for (int j = 0; j < LTP_SIZE / LTP_UNIT; j++) {
		bool last = j == LTP_SIZE / LTP_UNIT - 1;

		assert_filled(c->mem[j], LTP_UNIT * MiB - 1, d.data);
		assert_int_equal(c->mem[j][LTP_UNIT * MiB - 1], last && !d.all ? 'e' : d.data);
	}
}

/* Every page with a frame of the pool has it on l->node (ksm02's binding). */
static void ltp_nodes(struct ltp *l)
{
	if (l->node < 0)
		return;
	for (int k = 0; k < LTP_NUM; k++)
		for (int j = 0; j < LTP_SIZE / LTP_UNIT; j++)
			for (unsigned long i = 0; i < LTP_UNIT * MiB / PG; i++) {
				int n = sp_page_node(l->pool, l->child[k].mem[j] + i * PG);

				if (n != l->node && !(n == -1 && errno == ENOENT))
					fail_msg("child %d page %lu is on node %d", k, i, n);
			}
}

/* wait_ksmd_full_scan(): ksmd may be mid-pass, so two more increments. */
static void ltp_wait_scans(struct ltp *l)
{
	long f = ksm_of(l->pool, "full_scans");

	if (!l->ksmd) {
		full_scan(l->pool);
		full_scan(l->pool);
		return;
	}
	for (int i = 0; i < 60000 && ksm_of(l->pool, "full_scans") < f + 2; i++)
		usleep(1000);
	assert_true(ksm_of(l->pool, "full_scans") >= f + 2);
}

/* final_group_check(): with ksmd stopped for the reading, as LTP does. */
static void ltp_final_check(struct ltp *l, long run, long shared, long sharing, long vol,
			    long unshared)
{
	long run_orig = ksm_of(l->pool, "run");

	assert_int_equal(run_orig, run);
	set(l->pool, "run", 0);
	assert_int_equal(ksm_of(l->pool, "pages_shared"), shared);
	assert_int_equal(ksm_of(l->pool, "pages_sharing"), sharing);
	assert_int_equal(ksm_of(l->pool, "pages_volatile"), vol);
	assert_int_equal(ksm_of(l->pool, "pages_unshared"), unshared);
	assert_int_equal(ksm_of(l->pool, "sleep_millisecs"), 0);
	assert_int_equal(ksm_of(l->pool, "pages_to_scan"), LTP_TOTAL);
	set(l->pool, "run", run_orig);
	ltp_nodes(l);
}

/* ksm_group_check() */
static void ltp_group_check(struct ltp *l, long shared, long sharing, long vol, long unshared)
{
	ltp_wait_scans(l);
	ltp_final_check(l, 1, shared, sharing, vol, unshared);
}

/* create_same_memory(): four phases of contents, then run=2 and run=0. */
static void ltp_create_same_memory(struct ltp *l)
{
	static const struct ltp_data data[LTP_NUM][4] = {
		{ { 'c', true }, { 'c', true }, { 'd', true }, { 'd', true } },
		{ { 'a', true }, { 'b', true }, { 'd', true }, { 'd', false } },
		{ { 'a', true }, { 'a', true }, { 'd', true }, { 'd', true } },
	};
	static const long expect[4][4] = {
		/* shared, sharing, volatile, unshared */
		{ 2, LTP_TOTAL - 2, 0, 0 },
		{ 3, LTP_TOTAL - 3, 0, 0 },
		{ 1, LTP_TOTAL - 1, 0, 0 },
		{ 1, LTP_TOTAL - 2, 0, 1 },
	};

	set(l->pool, "run", 2);
	set(l->pool, "max_page_sharing", LTP_TOTAL);
	set(l->pool, "run", 1);
	set(l->pool, "pages_to_scan", LTP_TOTAL);
	set(l->pool, "sleep_millisecs", 0);
	for (int phase = 0; phase < 4; phase++) {
		for (int k = 0; k < LTP_NUM; k++)
			ltp_memset(&l->child[k], data[k][phase]);
		ltp_group_check(l, expect[phase][0], expect[phase][1], expect[phase][2],
				expect[phase][3]);
		for (int k = 0; k < LTP_NUM; k++)
			ltp_verify(&l->child[k], data[k][phase]);
	}
	/* KSM unmerging... */
	set(l->pool, "run", 2);
	for (int k = 0; k < LTP_NUM; k++)
		ltp_verify(&l->child[k], data[k][3]);
	ltp_final_check(l, 2, 0, 0, 0, 0);
	/* stop KSM. */
	set(l->pool, "run", 0);
	ltp_final_check(l, 0, 0, 0, 0, 0);
}

static void ltp_alloc(struct ltp *l, unsigned long bind)
{
	for (int k = 0; k < LTP_NUM; k++)
		for (int j = 0; j < LTP_SIZE / LTP_UNIT; j++) {
			char *p = sp_alloc(l->pool, LTP_UNIT * MiB, SP_MERGEABLE);

			assert_non_null(p);
			if (bind)
				assert_int_equal(sp_mbind(l->pool, p, LTP_UNIT * MiB, SP_MPOL_BIND,
							  bind, SP_MPOL_MF_MOVE),
						 0);
			l->child[k].mem[j] = p;
		}
}

/* ksm01, scanned as LTP does it: by ksmd, two full scans from wherever it was. */
static void ltp_ksm01_ksmd(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct ltp l = { .pool = pool_nodes(mode, 4, 1, true), .ksmd = true, .node = -1 };

	ltp_alloc(&l, 0);
	ltp_create_same_memory(&l);
	sp_pool_destroy(l.pool);
}

/* ksm01, scanned by sp_ksm_scan: two full scans from a pass boundary. */
static void ltp_ksm01_scan(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct ltp l = { .pool = pool_nodes(mode, 4, 1, false), .node = -1 };

	ltp_alloc(&l, 0);
	ltp_create_same_memory(&l);
	sp_pool_destroy(l.pool);
}

/*
 * ksm02: ksm01 under set_mempolicy(MPOL_BIND) to one node (here sp_mbind
 * of every region to node 1), then again in a cpuset of that node (here a
 * pool whose node-0 sections are offline). Every frame stays on node 1,
 * unmerged pages included.
 */
static void ltp_ksm02(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct ltp l = { .pool = pool_nodes(mode, 4, 2, false), .node = 1 };

	ltp_alloc(&l, 1ul << 1);
	ltp_create_same_memory(&l);
	sp_pool_destroy(l.pool);

	l.pool = pool_nodes(mode, 4, 2, false);
	for (unsigned s = 0; s < 4; s += 2) /* sections go round-robin: 0 and 2 are node 0's */
		assert_int_equal(sp_section_offline(l.pool, s), 0);
	ltp_alloc(&l, 0);
	ltp_create_same_memory(&l);
	sp_pool_destroy(l.pool);
}

/*
 * ksm06, test_ksm_merge_across_nodes(): nr_pages pages of the same content
 * on each of two nodes. Across nodes they make one KSM frame; with
 * merge_across_nodes=0 one per node, each on its sharers' node.
 */
static void ltp_ksm06(void **state)
{
	unsigned mode = *(unsigned *)*state;
	const long nr_pages = 100, num_nodes = 2;
	struct ltp l = { .pool = pool_nodes(mode, 4, 2, false), .node = -1 };
	char *memory[2];

	for (int i = 0; i < num_nodes; i++) {
		memory[i] = alloc_filled(l.pool, (size_t)nr_pages * PG, 10);
		assert_int_equal(sp_mbind(l.pool, memory[i], (size_t)nr_pages * PG, SP_MPOL_BIND,
					  1ul << i, SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
				 0);
	}
	set(l.pool, "sleep_millisecs", 0);
	set(l.pool, "pages_to_scan", nr_pages * num_nodes);
	set(l.pool, "run", 2);
	set(l.pool, "max_page_sharing", nr_pages * num_nodes);
	/* merge_across_nodes=1 */
	set(l.pool, "merge_across_nodes", 1);
	set(l.pool, "run", 1);
	full_scan(l.pool);
	full_scan(l.pool);
	assert_int_equal(ksm_of(l.pool, "pages_shared"), 1);
	assert_int_equal(ksm_of(l.pool, "pages_sharing"), nr_pages * num_nodes - 1);
	assert_int_equal(ksm_of(l.pool, "pages_volatile"), 0);
	assert_int_equal(ksm_of(l.pool, "pages_unshared"), 0);
	/* merge_across_nodes=0 */
	set(l.pool, "run", 2);
	for (int i = 0; i < num_nodes; i++)
		for (long p = 0; p < nr_pages; p++)
			assert_int_equal(sp_page_node(l.pool, memory[i] + p * PG), i);
	set(l.pool, "merge_across_nodes", 0);
	set(l.pool, "run", 1);
	full_scan(l.pool);
	full_scan(l.pool);
	assert_int_equal(ksm_of(l.pool, "pages_shared"), num_nodes);
	assert_int_equal(ksm_of(l.pool, "pages_sharing"), nr_pages * num_nodes - num_nodes);
	assert_int_equal(ksm_of(l.pool, "pages_volatile"), 0);
	assert_int_equal(ksm_of(l.pool, "pages_unshared"), 0);
	for (int i = 0; i < num_nodes; i++)
		for (long p = 0; p < nr_pages; p++) {
			assert_int_equal(sp_page_is_ksm(l.pool, memory[i] + p * PG), 1);
			assert_int_equal(sp_page_node(l.pool, memory[i] + p * PG), i);
		}
	set(l.pool, "run", 2);
	assert_int_equal(ksm_of(l.pool, "pages_shared"), 0);
	assert_int_equal(ksm_of(l.pool, "pages_sharing"), 0);
	assert_int_equal(ksm_of(l.pool, "pages_volatile"), 0);
	assert_int_equal(ksm_of(l.pool, "pages_unshared"), 0);
	for (int i = 0; i < num_nodes; i++) {
		assert_filled(memory[i], (size_t)nr_pages * PG, 10);
		for (long p = 0; p < nr_pages; p++)
			assert_int_equal(sp_page_node(l.pool, memory[i] + p * PG), i);
	}
	sp_pool_destroy(l.pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(functional_unmerge),
		BOTH(functional_unmerge_zero_pages),
		BOTH(functional_unmerge_discarded),
		BOTH(functional_prot_none),
		BOTH(tests_merge),
		BOTH(tests_unmerge),
		BOTH(tests_zero_page_merge),
		BOTH(tests_numa_merge),
		BOTH(tests_unmerge_large),
		BOTH(tests_cow),
		BOTH(ltp_ksm01_ksmd),
		BOTH(ltp_ksm01_scan),
		BOTH(ltp_ksm02),
		BOTH(ltp_ksm06),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
