/* SPDX-License-Identifier: MIT */
/* KSM knobs and counters: the kernel's names, ranges and errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "pool.h"

static const char *const knob_names[] = { "run",
					  "pages_to_scan",
					  "sleep_millisecs",
					  "max_page_sharing",
					  "merge_across_nodes",
					  "use_zero_pages",
					  "smart_scan" };
static const char *const counter_names[] = {
	"pages_shared",	  "pages_sharing",  "pages_unshared",	  "pages_volatile",
	"pages_scanned",  "full_scans",	    "stable_node_chains", "stable_node_dups",
	"ksm_zero_pages", "general_profit", "pages_skipped",
};

static long get(sp_pool *pool, const char *name)
{
	long v = -12345;

	assert_int_equal(sp_ksm_get(pool, name, &v), 0);
	return v;
}

static void names_and_defaults(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	unsigned i;

	(void)state;
	for (i = 0; i < 7; i++)
		assert_string_equal(sp_ksm_name(i), knob_names[i]);
	for (i = 0; i < 11; i++) {
		assert_string_equal(sp_ksm_name(7 + i), counter_names[i]);
		assert_int_equal(get(pool, counter_names[i]), 0);
	}
	assert_string_equal(sp_ksm_name(18), "advisor_mode"); /* then the advisor: test_advisor */
	/* The kernel's defaults, but run: a pool exists to merge. */
	assert_int_equal(get(pool, "run"), 1);
	assert_int_equal(get(pool, "pages_to_scan"), 100);
	assert_int_equal(get(pool, "sleep_millisecs"), 20);
	assert_int_equal(get(pool, "max_page_sharing"), 256);
	assert_int_equal(get(pool, "merge_across_nodes"), 1);
	assert_int_equal(get(pool, "use_zero_pages"), 0);
	assert_int_equal(get(pool, "smart_scan"), 1);
	sp_pool_destroy(pool);
}

static void set_in_range(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	struct {
		const char *name;
		long v;
	} ok[] = { { "run", 0 },
		   { "run", 2 },
		   { "pages_to_scan", 0 },
		   { "pages_to_scan", 4294967295 },
		   { "sleep_millisecs", 0 },
		   { "max_page_sharing", 2 },
		   { "merge_across_nodes", 0 },
		   { "use_zero_pages", 1 },
		   { "smart_scan", 0 } };

	(void)state;
	for (unsigned i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(sp_ksm_set(pool, ok[i].name, ok[i].v), 0);
		assert_int_equal(get(pool, ok[i].name), ok[i].v);
	}
	sp_pool_destroy(pool);
}

static void set_errors(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	struct {
		const char *name;
		long v;
	} bad[] = { { "run", 3 },
		    { "run", -1 },
		    { "pages_to_scan", -1 },
		    { "pages_to_scan", 4294967296 },
		    { "sleep_millisecs", -5 },
		    { "max_page_sharing", 1 },
		    { "merge_across_nodes", 2 },
		    { "use_zero_pages", -1 },
		    { "smart_scan", 2 } };
	long v;

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long before = get(pool, bad[i].name);

		errno = 0;
		assert_int_equal(sp_ksm_set(pool, bad[i].name, bad[i].v), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(get(pool, bad[i].name), before);
	}
	for (unsigned i = 0; i < 11; i++) {
		errno = 0;
		assert_int_equal(sp_ksm_set(pool, counter_names[i], 0), -1);
		assert_int_equal(errno, EPERM);
	}
	assert_int_equal(sp_ksm_set(pool, "no_such_knob", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_ksm_get(pool, "no_such_knob", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_ksm_get(pool, "run", NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_ksm_get(pool, NULL, &v), -1);
	assert_int_equal(sp_ksm_set(pool, NULL, 1), -1);
	assert_int_equal(sp_ksm_set(NULL, "run", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_ksm_get(NULL, "run", &v), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

/* As in the kernel: the stable tree's shape cannot change while it holds pages. */
static void busy_while_shared(void **state)
{
	sp_pool *pool = pool_small(0, 1);

	(void)state;
	atomic_store(&pool->ksm.counter[KSM_PAGES_SHARED], 1);
	errno = 0;
	assert_int_equal(sp_ksm_set(pool, "max_page_sharing", 10), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(sp_ksm_set(pool, "merge_across_nodes", 0), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(sp_ksm_set(pool, "max_page_sharing", 256), 0); /* unchanged: fine */
	assert_int_equal(sp_ksm_set(pool, "use_zero_pages", 1), 0);
	atomic_store(&pool->ksm.counter[KSM_PAGES_SHARED], 0);
	assert_int_equal(sp_ksm_set(pool, "max_page_sharing", 10), 0);
	sp_pool_destroy(pool);
}

/* ---- the engine ------------------------------------------------------- */

#define N 64

/* Two regions of N pages, page i of both with seed i, plus `extra` unique pages. */
static void fill_pair(char *a, char *b, int extra)
{
	for (int i = 0; i < N; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, (uint64_t)i);
	}
	for (int i = N; i < N + extra; i++) {
		fill_page(a + i * SP_PAGE_SIZE, 1000 + (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, 2000 + (uint64_t)i);
	}
}

static void check_pair(char *a, char *b, int extra)
{
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	for (int i = N; i < N + extra; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, 1000 + (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, 2000 + (uint64_t)i), 0);
	}
}

static void merges_on_first_visit(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *a = sp_alloc(pool, (N + 8) * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, (N + 8) * SP_PAGE_SIZE, SP_MERGEABLE);
	long res;

	fill_pair(a, b, 8);
	res = stat_of(pool, "bytes_resident");
	assert_int_equal(res, 2 * (N + 8) * SP_PAGE_SIZE);
	/* One visit of every page is enough: no second scan, no change detection. */
	assert_int_equal(sp_ksm_scan(pool, 2 * (N + 8)), 2 * (N + 8));
	assert_int_equal(ksm_of(pool, "full_scans"), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), N);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(ksm_of(pool, "pages_scanned"), 2 * (N + 8));
	assert_int_equal(stat_of(pool, "frames_ksm"), N);
	assert_int_equal(stat_of(pool, "frames_used"), N + 2 * 8);
	assert_int_equal(stat_of(pool, "bytes_resident"), res - N * SP_PAGE_SIZE);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_page_is_ksm(pool, a + i * SP_PAGE_SIZE), 1);
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 1);
	}
	assert_int_equal(sp_page_is_ksm(pool, a + N * SP_PAGE_SIZE), 0);
	check_pair(a, b, 8);
	/* Two more passes: stable, nothing changes; the unique pages stay candidates. */
	assert_int_equal(sp_ksm_scan(pool, 2 * (N + 8)), 2 * (N + 8));
	assert_int_equal(sp_ksm_scan(pool, 2 * (N + 8)), 2 * (N + 8));
	assert_int_equal(ksm_of(pool, "full_scans"), 2);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 16);
	check_pair(a, b, 8);
	sp_free(pool, a);
	sp_free(pool, b);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	sp_pool_destroy(pool);
}

/* Pages that become identical after the scanner passed merge within two scans. */
static void merges_within_two_scans(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	long f;

	(void)state;
	for (int i = 0; i < N; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, 500 + (uint64_t)i);
	}
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	for (int i = 0; i < N; i++)
		fill_page(b + i * SP_PAGE_SIZE, (uint64_t)i);
	f = ksm_of(pool, "full_scans");
	while (ksm_of(pool, "pages_sharing") < N && ksm_of(pool, "full_scans") < f + 2)
		sp_ksm_scan(pool, 16);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	sp_pool_destroy(pool);
}

/* The system's own count agrees: Shmem falls by the frames merging freed. */
static int shmem_falls_once(void)
{
	sp_pool *pool = pool_small(0, 16);
	size_t len = 16 << 20;
	char *a = sp_alloc(pool, len, SP_MERGEABLE), *b = sp_alloc(pool, len, SP_MERGEABLE);
	long before, after, freed_kb = (long)(len >> 10);
	int ok;

	for (size_t i = 0; i < len / SP_PAGE_SIZE; i++) {
		fill_page(a + i * SP_PAGE_SIZE, i);
		fill_page(b + i * SP_PAGE_SIZE, i);
	}
	before = meminfo_kb("Shmem");
	sp_ksm_scan(pool, 2 * len / SP_PAGE_SIZE);
	after = meminfo_kb("Shmem");
	assert_int_equal(ksm_of(pool, "pages_sharing"), (long)(len / SP_PAGE_SIZE));
	sp_pool_destroy(pool);
	ok = labs(before - after - freed_kb) < 4096;
	if (!ok)
		print_message("Shmem %ld -> %ld kB, expected a fall of %ld\n", before, after,
			      freed_kb);
	return ok;
}

static void shmem_falls(void **state)
{
	int ok = 0;

	(void)state;
	for (int i = 0; i < 3 && !ok; i++)
		ok = shmem_falls_once();
	assert_true(ok);
}

/* A write gives the page its own copy; the sharers keep theirs. */
static void copy_on_write(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N), *c = alloc_alike(pool, N);

	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), N);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 2 * N);
	for (int i = 0; i < N; i += 2)
		fill_page(b + i * SP_PAGE_SIZE, 7000 + (uint64_t)i); /* even pages of b */
	for (int i = 0; i < N; i += 4) {
		fill_page(a + i * SP_PAGE_SIZE, 8000 + (uint64_t)i); /* every 4th of a, c */
		fill_page(c + i * SP_PAGE_SIZE, 9000 + (uint64_t)i);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, i % 4 ? (uint64_t)i : 8000u + i),
				 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, i % 2 ? (uint64_t)i : 7000u + i),
				 0);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, i % 4 ? (uint64_t)i : 9000u + i),
				 0);
	}
	full_scan(pool);
	/* Every 4th content lost all sharers: its frame is gone; other even ones keep two. */
	assert_int_equal(stat_of(pool, "faults_cow"), N / 2 + 2 * (N / 4));
	assert_int_equal(ksm_of(pool, "pages_shared"), N - N / 4);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N / 4 * 1 + N / 2 * 2);
	full_scan(pool);
	full_scan(pool);
	full_scan(pool);
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, i % 4 ? (uint64_t)i : 8000u + i),
				 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, i % 2 ? (uint64_t)i : 7000u + i),
				 0);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, i % 4 ? (uint64_t)i : 9000u + i),
				 0);
	}
	/* Copied pages came back into the pool: nothing lives outside it for long. */
	assert_int_equal(stat_of(pool, "frames_used"), ksm_of(pool, "pages_shared") + 3 * N -
							       ksm_of(pool, "pages_shared") -
							       ksm_of(pool, "pages_sharing"));
	sp_pool_destroy(pool);
}

/* The kernel writing for the program (read(2)) copies too. */
static void read_syscall_into_merged(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	int fds[2];

	(void)state;
	fill_pair(a, b, 0);
	full_scan(pool);
	assert_int_equal(sp_page_is_ksm(pool, b + 3 * SP_PAGE_SIZE), 1);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "samepage", 8), 8);
	assert_int_equal(read(fds[0], b + 3 * SP_PAGE_SIZE + 100, 8), 8);
	assert_memory_equal(b + 3 * SP_PAGE_SIZE + 100, "samepage", 8);
	assert_int_equal(check_page(a + 3 * SP_PAGE_SIZE, 3), 0);
	full_scan(pool);
	assert_int_equal(stat_of(pool, "faults_cow"), 1);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N - 1);
	assert_memory_equal(b + 3 * SP_PAGE_SIZE + 100, "samepage", 8);
	close(fds[0]);
	close(fds[1]);
	sp_pool_destroy(pool);
}

static void unmerge_all(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 1); /* 1024 frames */
	char *a = sp_alloc(pool, 400 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, 400 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *c;

	for (int i = 0; i < 400; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, (uint64_t)i);
	}
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 400);
	c = sp_alloc(pool, 600 * SP_PAGE_SIZE, 0); /* 24 frames left: too few to unmerge */
	assert_non_null(c);
	errno = 0;
	assert_int_equal(sp_ksm_set(pool, "run", 2), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 400); /* all still merged */
	assert_int_equal(ksm_of(pool, "run"), 1);
	assert_int_equal(sp_madvise(pool, b, 400 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 400);
	for (int i = 0; i < 400; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	sp_free(pool, c);
	/* A range first: the rest stays merged. */
	assert_int_equal(sp_madvise(pool, b, 100 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 300);
	assert_int_equal(sp_page_is_ksm(pool, b), 0);
	assert_int_equal(sp_page_is_ksm(pool, b + 200 * SP_PAGE_SIZE), 1);
	full_scan(pool); /* unmergeable now: stays private */
	assert_int_equal(sp_page_is_ksm(pool, b), 0);
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	assert_int_equal(ksm_of(pool, "run"), 2);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	assert_int_equal(stat_of(pool, "frames_used"), 800);
	for (int i = 0; i < 400; i++) {
		assert_int_equal(sp_page_is_ksm(pool, a + i * SP_PAGE_SIZE), 0);
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	sp_pool_destroy(pool);
}

/* Freeing a sharer's region leaves the other sharers whole. */
static void free_merged_region(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);

	fill_pair(a, b, 0);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0); /* b got its frames back */
	assert_int_equal(stat_of(pool, "frames_used"), N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 0);
	}
	fill_page(b, 77); /* written in place, no copy: it is private */
	assert_int_equal(check_page(b, 77), 0);
	sp_free(pool, b);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	sp_pool_destroy(pool);
}

static void zero_pages(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *z = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	memset(z, 0, N * SP_PAGE_SIZE); /* touched: resident zeros */
	assert_int_equal(stat_of(pool, "bytes_resident"), N * SP_PAGE_SIZE);
	full_scan(pool); /* use_zero_pages=0: one KSM frame of zeros */
	assert_int_equal(ksm_of(pool, "pages_shared"), 1);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N - 1);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), 0);
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	assert_int_equal(sp_ksm_set(pool, "use_zero_pages", 1), 0);
	assert_int_equal(sp_ksm_set(pool, "run", 1), 0); /* with run=2 nothing merges */
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), N);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	for_each_page (q, z, N * SP_PAGE_SIZE)
		assert_true(page_is_zero(q));
	fill_page(z, 1);
	assert_int_equal(check_page(z, 1), 0);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), N - 1);
	assert_true(ksm_of(pool, "general_profit") > 0);
	sp_pool_destroy(pool);
}

static void max_page_sharing(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *p = sp_alloc(pool, 20 * SP_PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	assert_int_equal(sp_ksm_set(pool, "max_page_sharing", 4), 0);
	for (int i = 0; i < 20; i++)
		fill_page(p + i * SP_PAGE_SIZE, 42);
	full_scan(pool);
	full_scan(pool);
	/* 20 pages, at most 4 per frame: 5 frames of one content, a chain of 5 dups. */
	assert_int_equal(ksm_of(pool, "pages_shared"), 5);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 15);
	assert_int_equal(ksm_of(pool, "stable_node_chains"), 1);
	assert_int_equal(ksm_of(pool, "stable_node_dups"), 5);
	for (int i = 0; i < 20; i++)
		assert_int_equal(check_page(p + i * SP_PAGE_SIZE, 42), 0);
	sp_pool_destroy(pool);
}

static void merge_domains(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N), *c = alloc_alike(pool, N);

	(void)state;
	assert_int_equal(sp_set_merge_domain(pool, a, N * SP_PAGE_SIZE, 1), 0);
	assert_int_equal(sp_set_merge_domain(pool, b, N * SP_PAGE_SIZE, 2), 0);
	assert_int_equal(sp_set_merge_domain(pool, c, N * SP_PAGE_SIZE, 1), 0);
	full_scan(pool);
	/* a and c share (domain 1); b (domain 2) shares with no one. */
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_page_is_ksm(pool, a + i * SP_PAGE_SIZE), 1);
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 0);
	}
	/* Moving c to domain 2 takes it out of domain 1's frames first. */
	assert_int_equal(sp_set_merge_domain(pool, c, N * SP_PAGE_SIZE, 2), 0);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	full_scan(pool);
	full_scan(pool); /* the first may have begun before the change */
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_page_is_ksm(pool, a + i * SP_PAGE_SIZE), 0);
		assert_int_equal(sp_page_is_ksm(pool, c + i * SP_PAGE_SIZE), 1);
	}
	check_pair(a, b, 0);
	errno = 0;
	assert_int_equal(sp_set_merge_domain(pool, a + 1, SP_PAGE_SIZE, 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_set_merge_domain(pool, a, 0, 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_set_merge_domain(pool, a, (N + 1) * SP_PAGE_SIZE, 1), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(sp_set_merge_domain(NULL, a, SP_PAGE_SIZE, 1), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

static void nodes_apart(void **state)
{
	struct sp_pool_config cfg = { .section_size = N * SP_PAGE_SIZE,
				      .nr_sections = 2,
				      .nr_nodes = 2,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	assert_int_equal(sp_page_node(pool, a), 0);
	assert_int_equal(sp_page_node(pool, b), 1);
	fill_pair(a, b, 0);
	assert_int_equal(sp_ksm_set(pool, "merge_across_nodes", 0), 0);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	assert_int_equal(sp_ksm_set(pool, "merge_across_nodes", 1), 0);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	errno = 0;
	assert_int_equal(sp_ksm_set(pool, "merge_across_nodes", 0), -1);
	assert_int_equal(errno, EBUSY);
	check_pair(a, b, 0);
	sp_pool_destroy(pool);
}

/* At most 32 bytes of samepage memory per scanned page, page table included. */
static void metadata_per_page(void **state)
{
	sp_pool *pool = pool_small(0, 16);
	long pages = 8192, sharing, profit, meta;
	char *p = sp_alloc(pool, (size_t)pages * SP_PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	for (long i = 0; i < pages; i++)
		fill_page(p + i * SP_PAGE_SIZE, (uint64_t)(i % 2 ? i : i % 512));
	full_scan(pool);
	sharing = ksm_of(pool, "pages_sharing");
	profit = ksm_of(pool, "general_profit");
	assert_int_equal(sharing, pages / 2 - 256);
	meta = sharing * SP_PAGE_SIZE - profit;
	print_message("KSM metadata %ld bytes for %ld pages: %.1f bytes/page + 8 (pte)\n", meta,
		      pages, (double)meta / pages);
	assert_true(meta > 0);
	assert_true(meta + 8 * pages <= 32 * pages);
	sp_pool_destroy(pool);
}

/*
 * The program unmaps part of a region behind samepage's back: detected,
 * counted, left alone; the rest merges, moves and unmerges as before.
 */
static void unmapped_behind_back(void **state)
{
	sp_pool *pool = pool_small(0, 4);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N), *c = alloc_alike(pool, N);

	(void)state;
	assert_int_equal(munmap(a + 16 * SP_PAGE_SIZE, 16 * SP_PAGE_SIZE), 0);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(stat_of(pool, "pages_unmapped"), 16);
	assert_int_equal(ksm_of(pool, "pages_shared"), N);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N + N - 16);
	/* Merged pages of c lose a sharer when b is unmapped too, after merging. */
	assert_int_equal(munmap(b, 8 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_section_offline(pool, 0), 0); /* frames move, lost ones too */
	assert_int_equal(stat_of(pool, "pages_unmapped"), 16 + 8);
	for (int i = 0; i < N; i++) {
		if (i < 16 || i >= 32)
			assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		if (i >= 8)
			assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(sp_free(pool, b), 0);
	assert_int_equal(sp_free(pool, c), 0);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	sp_pool_destroy(pool);
}

/* The scanner thread merges on its own, with the kernel's knobs. */
static void ksmd_merges(void **state)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20, .nr_sections = 2 };
	sp_pool *pool = sp_pool_create(&cfg);
	char *a, *b;

	(void)state;
	assert_non_null(pool);
	assert_int_equal(sp_ksm_set(pool, "sleep_millisecs", 1), 0);
	a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	fill_pair(a, b, 0);
	for (int i = 0; i < 5000 && ksm_of(pool, "pages_sharing") < N; i++)
		usleep(1000);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(sp_ksm_set(pool, "run", 0), 0);
	check_pair(a, b, 0);
	sp_pool_destroy(pool);
}

/* ---- issue 10: kernel-true run, counters, rewrites and policy ---------- */

static long count_ksm(sp_pool *pool, const char *p, long n)
{
	long k = 0;

	for (long i = 0; i < n; i++)
		k += sp_page_is_ksm(pool, p + i * SP_PAGE_SIZE) == 1;
	return k;
}

/* Full scans until pages_sharing reads want: how many it took (max + 1: never). */
static int scans_until(sp_pool *pool, long want, int max)
{
	int n = 0;

	while (ksm_of(pool, "pages_sharing") != want && n <= max) {
		full_scan(pool);
		n++;
	}
	return n;
}

/* A ksmd that scans flat out in big batches: at any moment a batch is in flight. */
static sp_pool *pool_ksmd(unsigned mode, unsigned nr_sections)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = nr_sections,
				      .flags = mode };
	sp_pool *pool = sp_pool_create(&cfg);

	assert_non_null(pool);
	assert_int_equal(sp_ksm_set(pool, "sleep_millisecs", 0), 0);
	assert_int_equal(sp_ksm_set(pool, "pages_to_scan", 1000000), 0);
	return pool;
}

#define FLIP_PAGES 2048

/* As in the issue: 2,048 mergeable pages of 16 contents. */
static char *alloc_sixteen(sp_pool *pool)
{
	char *p = sp_alloc(pool, FLIP_PAGES * SP_PAGE_SIZE, SP_MERGEABLE);

	assert_non_null(p);
	for (int i = 0; i < FLIP_PAGES; i++)
		fill_page(p + (size_t)i * SP_PAGE_SIZE, (uint64_t)(i % 16));
	return p;
}

static void wait_merging(sp_pool *pool)
{
	for (int i = 0; i < 25000 && ksm_of(pool, "pages_sharing") == 0; i++)
		usleep(200);
	assert_true(ksm_of(pool, "pages_sharing") > 0);
}

/* run=2 has returned: nothing is merged, and nothing merges while it holds. */
static void assert_stays_unmerged(sp_pool *pool, const char *p)
{
	for (int t = 0; t < 5; t++) {
		assert_int_equal(ksm_of(pool, "pages_shared"), 0);
		assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
		assert_int_equal(ksm_of(pool, "pages_unshared"), 0);
		assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
		assert_int_equal(count_ksm(pool, p, FLIP_PAGES), 0);
		usleep(20000);
	}
	for (int i = 0; i < FLIP_PAGES; i++)
		assert_int_equal(check_page(p + (size_t)i * SP_PAGE_SIZE, (uint64_t)(i % 16)), 0);
}

/* run=2 while ksmd has a batch in flight: it stays unmerged; run=0 keeps what is merged. */
static void run2_stops_ksmd(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_ksmd(mode, 4);
	char *p = alloc_sixteen(pool);
	long scanned;

	for (int round = 0; round < 5; round++) {
		assert_int_equal(sp_ksm_set(pool, "run", 1), 0);
		wait_merging(pool);
		assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
		assert_stays_unmerged(pool, p);
	}
	assert_int_equal(sp_ksm_set(pool, "run", 1), 0);
	for (int i = 0; i < 25000 && ksm_of(pool, "pages_sharing") < FLIP_PAGES - 16; i++)
		usleep(200);
	assert_int_equal(ksm_of(pool, "pages_sharing"), FLIP_PAGES - 16);
	/* run=0: ksmd stops at the next chunk boundary, before sp_ksm_set returns. */
	assert_int_equal(sp_ksm_set(pool, "run", 0), 0);
	scanned = ksm_of(pool, "pages_scanned");
	usleep(100000);
	assert_int_equal(ksm_of(pool, "pages_scanned"), scanned);
	assert_int_equal(ksm_of(pool, "pages_shared"), 16);
	assert_int_equal(ksm_of(pool, "pages_sharing"), FLIP_PAGES - 16);
	assert_int_equal(count_ksm(pool, p, FLIP_PAGES), FLIP_PAGES);
	sp_pool_destroy(pool);
}

/* With run=2 nothing merges, not even through sp_ksm_scan; with run=0 sp_ksm_scan still does. */
static void scan_obeys_run(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N);

	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	assert_int_equal(sp_ksm_scan(pool, 4 * N), 0);
	assert_int_equal(ksm_of(pool, "pages_scanned"), 0);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	assert_int_equal(count_ksm(pool, a, N) + count_ksm(pool, b, N), 0);
	assert_int_equal(sp_ksm_set(pool, "run", 0), 0);
	assert_int_equal(sp_ksm_scan(pool, 2 * N), 2 * N);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	check_pair(a, b, 0);
	sp_pool_destroy(pool);
}

/* The same through the control socket: `samepage set run 2`. */
static void run2_via_socket(void **state)
{
	sp_pool *pool = pool_ksmd(0, 4);
	char *p = alloc_sixteen(pool);
	char path[64], cmd[512];

	(void)state;
	assert_non_null(getenv("SAMEPAGE_BIN"));
	snprintf(path, sizeof(path), "/tmp/sp-ksm-%d.sock", (int)getpid());
	assert_int_equal(sp_pool_export(pool, path), 0);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(sp_ksm_set(pool, "run", 1), 0);
		wait_merging(pool);
		snprintf(cmd, sizeof(cmd), "%s set --socket %s run 2", getenv("SAMEPAGE_BIN"),
			 path);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(ksm_of(pool, "run"), 2);
		assert_stays_unmerged(pool, p);
	}
	/* pages_skipped is served with the rest: the CLI shows it. */
	snprintf(cmd, sizeof(cmd), "%s stats --socket %s | grep -q '^pages_skipped [0-9]*$'",
		 getenv("SAMEPAGE_BIN"), path);
	assert_int_equal(system(cmd), 0);
	sp_pool_destroy(pool);
}

/* Page i of a and b rewritten with seed + i. */
static void rewrite_pair(char *a, char *b, uint64_t seed)
{
	for (int i = 0; i < N; i++) {
		fill_page(a + i * SP_PAGE_SIZE, seed + (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, seed + (uint64_t)i);
	}
}

static void check_pair_seed(const char *a, const char *b, uint64_t seed)
{
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, seed + (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, seed + (uint64_t)i), 0);
	}
}

/*
 * Merged pages rewritten (the kernel copies them) merge again within two
 * full scans (API.md), whatever they went through: rewritten right after
 * merging (churn), long after, with the same content again. The scans are
 * counted as full_scans grows, so a write may land after some pages' visit
 * in the first of them.
 */
static void rewritten_merge_within_two_scans(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N);

	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	rewrite_pair(a, b, 5000); /* within a scan of the merge */
	assert_true(scans_until(pool, N, 2) <= 2);
	check_pair_seed(a, b, 5000);
	full_scan(pool);
	full_scan(pool);
	rewrite_pair(a, b, 6000);
	assert_true(scans_until(pool, N, 2) <= 2);
	check_pair_seed(a, b, 6000);
	full_scan(pool);
	full_scan(pool);
	rewrite_pair(a, b, 6000); /* the same content: its checksum is unchanged */
	assert_true(scans_until(pool, N, 2) <= 2);
	check_pair_seed(a, b, 6000);
	assert_int_equal(count_ksm(pool, a, N) + count_ksm(pool, b, N), 2 * N);
	sp_pool_destroy(pool);
}

/*
 * pages_unshared: pages in the unstable tree, each until its next visit,
 * its merge or its untracking, so the figure holds across a pass boundary.
 * pages_volatile: tracked pages in neither tree. run=2 drops all tracking;
 * a region freed or made unmergeable drops its own.
 */
static void unshared_and_volatile(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *u = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N);

	for (int i = 0; i < 16; i++)
		fill_page(u + i * SP_PAGE_SIZE, 3000 + (uint64_t)i);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), N);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 16);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	/* A few pages into the next pass: nothing has left the tree unvisited. */
	assert_int_equal(sp_ksm_scan(pool, 4), 4);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 16);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	full_scan(pool);
	/* A candidate that merges leaves the count. */
	fill_page(u + SP_PAGE_SIZE, 3000);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), N + 1);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N + 1);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 14);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	/* run=2 drops every page's tracking. */
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 0);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	assert_int_equal(ksm_of(pool, "full_scans"), 0); /* as the kernel's run=2 */
	assert_int_equal(sp_ksm_set(pool, "run", 1), 0);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N + 1);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 14);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	check_pair(a, b, 0);
	sp_pool_destroy(pool);
}

/*
 * Tracked pages in neither tree (pages_volatile) go with their region's
 * tracking when it is freed or made unmergeable (../shared/repro/volatile_leak.c).
 */
static void volatile_goes_with_region(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *u = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N), *c, *d;

	for (int i = 0; i < 16; i++)
		fill_page(u + i * SP_PAGE_SIZE, 3000 + (uint64_t)i);
	fill_page(u + SP_PAGE_SIZE, 3000);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), N + 1);
	/*
	 * c[0] and d[0] get their KSM frames back (the last sharer) when c[1]
	 * and d[1] are found copied, after their own visit: tracked, in
	 * neither tree, until their next visit.
	 */
	c = sp_alloc(pool, 2 * SP_PAGE_SIZE, SP_MERGEABLE);
	d = sp_alloc(pool, 2 * SP_PAGE_SIZE, SP_MERGEABLE);
	for (int i = 0; i < 2; i++) {
		fill_page(c + i * SP_PAGE_SIZE, 4000);
		fill_page(d + i * SP_PAGE_SIZE, 4001);
	}
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), N + 3);
	fill_page(c + SP_PAGE_SIZE, 4002);
	fill_page(d + SP_PAGE_SIZE, 4003);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), N + 1);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 2);
	assert_int_equal(sp_free(pool, c), 0);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 1);
	assert_int_equal(sp_madvise(pool, d, 2 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	/* c[1] and d[1] were candidates: they left the unstable tree's count too. */
	assert_int_equal(ksm_of(pool, "pages_unshared"), 14);
	for (int i = 0; i < 4; i++)
		full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 14);
	assert_int_equal(sp_free(pool, u), 0);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(sp_free(pool, b), 0);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 0);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	sp_pool_destroy(pool);
}

/*
 * The last sharer of a KSM frame does not keep it on a node its policy
 * forbids (run=2 here; any unmerge takes the same path); with
 * merge_across_nodes=0 every KSM frame is then on its sharers' node.
 */
static void unmerge_honours_policy(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 4,
				      .nr_nodes = 4,
				      .flags = mode | SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);
	char *a, *b, *c;

	assert_non_null(pool);
	a = alloc_alike(pool, N);
	b = alloc_alike(pool, N);
	assert_int_equal(sp_mbind(pool, a, N * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << 0,
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 0);
	assert_int_equal(sp_mbind(pool, b, N * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << 3,
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 0);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_page_node(pool, a + i * SP_PAGE_SIZE), 0);
		assert_int_equal(sp_page_node(pool, b + i * SP_PAGE_SIZE), 3);
	}
	check_pair(a, b, 0);
	assert_int_equal(sp_ksm_set(pool, "merge_across_nodes", 0), 0);
	assert_int_equal(sp_ksm_set(pool, "run", 1), 0);
	c = alloc_alike(pool, N); /* node 0, the pool's first */
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(count_ksm(pool, b, N), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_page_is_ksm(pool, a + i * SP_PAGE_SIZE), 1);
		assert_int_equal(sp_page_node(pool, a + i * SP_PAGE_SIZE), 0);
		assert_int_equal(sp_page_node(pool, c + i * SP_PAGE_SIZE), 0);
	}
	check_pair(a, c, 0);
	sp_pool_destroy(pool);
}

/*
 * smart_scan: pages_skipped counts the visits it skipped, which
 * pages_scanned does not; a skipped page stays a candidate (pages_unshared)
 * and new twins of the pages merge within two scans, whether they come
 * before or after them in the scan, whichever pass skips them.
 */
static void smart_scan_skips(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	/* Regions are scanned in address order: one of t1, t2 comes before u. */
	char *t1 = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *u = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *t2 = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	long skipped;

	(void)state;
	for (int i = 0; i < 16; i++)
		fill_page(u + i * SP_PAGE_SIZE, 100 + (uint64_t)i);
	for (int i = 0; i < 10; i++)
		full_scan(pool);
	skipped = ksm_of(pool, "pages_skipped");
	assert_true(skipped >= 16);
	/* Ten passes of 48 visits (full_scan may start the eleventh). */
	assert_true(ksm_of(pool, "pages_scanned") + skipped >= 48 * 10);
	assert_true(ksm_of(pool, "pages_scanned") + skipped < 48 * 11);
	assert_int_equal(ksm_of(pool, "pages_unshared"), 16);
	assert_int_equal(ksm_of(pool, "pages_volatile"), 0);
	/*
	 * full_scan has visited the first page of the next pass: a twin
	 * written there is first seen in the pass after, where u[0] and u[2]
	 * (read in this one) are skipped. Their twins must find them anyway.
	 */
	fill_page(t1, 100);
	fill_page(t2, 102);
	fill_page(t1 + 5 * SP_PAGE_SIZE, 105);
	fill_page(t2 + 7 * SP_PAGE_SIZE, 107);
	assert_true(scans_until(pool, 4, 2) <= 2);
	assert_int_equal(sp_ksm_set(pool, "smart_scan", 0), 0);
	skipped = ksm_of(pool, "pages_skipped");
	for (int i = 0; i < 4; i++)
		full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_skipped"), skipped);
	sp_pool_destroy(pool);
}

/*
 * use_zero_pages=1, a zero-merged page that the program has written since
 * the scanner last looked: unmerging (three ways) keeps what it wrote.
 */
static void written_zero_page_survives_unmerge(void **state)
{
	unsigned mode = *(unsigned *)*state;

	for (int way = 0; way < 3; way++) {
		sp_pool *pool = pool_small(mode, 2);
		unsigned char *z = sp_alloc(pool, 8 * SP_PAGE_SIZE, SP_MERGEABLE);

		assert_int_equal(sp_ksm_set(pool, "use_zero_pages", 1), 0);
		memset(z, 0, 8 * SP_PAGE_SIZE);
		full_scan(pool);
		assert_int_equal(ksm_of(pool, "ksm_zero_pages"), 8);
		memset(z, 0xab, SP_PAGE_SIZE);
		if (way == 0)
			assert_int_equal(sp_madvise(pool, z, 8 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE),
					 0);
		else if (way == 1)
			assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
		else
			assert_int_equal(sp_set_merge_domain(pool, z, 8 * SP_PAGE_SIZE, 1), 0);
		for (int i = 0; i < SP_PAGE_SIZE; i++)
			assert_int_equal(z[i], 0xab);
		assert_true(page_is_zero(z + SP_PAGE_SIZE));
		assert_int_equal(ksm_of(pool, "ksm_zero_pages"), 0);
		sp_pool_destroy(pool);
	}
}

/* The four figures of one domain, and that sp_domain_stat agrees with itself. */
static void dom(sp_pool *pool, unsigned d, long *rmap, long *zero, long *merging, long *profit)
{
	assert_int_equal(sp_domain_stat(pool, d, "ksm_rmap_items", rmap), 0);
	assert_int_equal(sp_domain_stat(pool, d, "ksm_zero_pages", zero), 0);
	assert_int_equal(sp_domain_stat(pool, d, "ksm_merging_pages", merging), 0);
	assert_int_equal(sp_domain_stat(pool, d, "ksm_process_profit", profit), 0);
	/* The kernel's formula with samepage's 8-byte ksm_item and 8-byte rmap entry. */
	assert_int_equal(*profit, (*merging + *zero) * SP_PAGE_SIZE - *rmap * 8 - *merging * 8);
}

/* Summed over the domains, the figures are the pool's counters. */
static void domains_sum(sp_pool *pool)
{
	unsigned ids[16];
	long n = sp_domain_list(pool, ids, 16), rmap = 0, zero = 0, merging = 0;

	assert_true(n >= 0 && n <= 16);
	for (long i = 0; i < n; i++) {
		long r, z, m, p;

		if (i)
			assert_true(ids[i] > ids[i - 1]);
		dom(pool, ids[i], &r, &z, &m, &p);
		assert_true(r || z || m);
		rmap += r;
		zero += z;
		merging += m;
	}
	assert_int_equal(merging, get(pool, "pages_shared") + get(pool, "pages_sharing"));
	assert_int_equal(zero, get(pool, "ksm_zero_pages"));
	assert_int_equal(rmap, merging + get(pool, "pages_unshared") + get(pool, "pages_volatile"));
}

/*
 * /proc/PID/ksm_stat per merge domain: domain 0 has 16 pages of one content
 * and 16 unique; domain 5 has 8 of that same content (apart: another
 * domain), 8 of another, 8 written zero pages (use_zero_pages) and 8 never
 * touched. Then a merged page rewritten, and the region freed.
 */
static void domain_stat(void **state)
{
	sp_pool *pool = pool_small(*(unsigned *)*state, 2);
	char *a = sp_alloc(pool, 32 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, 32 * SP_PAGE_SIZE, SP_MERGEABLE);
	long r, z, m, p, v;
	unsigned ids[2] = { 99, 99 };

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(sp_ksm_set(pool, "use_zero_pages", 1), 0);
	assert_int_equal(sp_set_merge_domain(pool, b, 32 * SP_PAGE_SIZE, 5), 0);
	for (int i = 0; i < 16; i++) {
		fill_page(a + i * SP_PAGE_SIZE, 1);
		fill_page(a + (16 + i) * SP_PAGE_SIZE, 100 + (uint64_t)i);
	}
	for (int i = 0; i < 8; i++) {
		fill_page(b + i * SP_PAGE_SIZE, 1);
		fill_page(b + (8 + i) * SP_PAGE_SIZE, 2);
		b[(16 + i) * SP_PAGE_SIZE] = 1; /* touched, then zero again */
		b[(16 + i) * SP_PAGE_SIZE] = 0;
	}
	for (int i = 0; i < 3; i++)
		full_scan(pool);
	assert_int_equal(get(pool, "pages_shared"), 3); /* content 1 twice: a frame per domain */
	dom(pool, 0, &r, &z, &m, &p);
	assert_int_equal(m, 16);
	assert_int_equal(z, 0);
	assert_int_equal(r, 32);
	assert_int_equal(p, 16 * 4096 - 32 * 8 - 16 * 8);
	dom(pool, 5, &r, &z, &m, &p);
	assert_int_equal(m, 16);
	assert_int_equal(z, 8);
	assert_int_equal(r, 16); /* the zero pages are no rmap_items, as in the kernel */
	assert_int_equal(p, 24 * 4096 - 16 * 8 - 16 * 8);
	dom(pool, 6, &r, &z, &m, &p);
	assert_true(!r && !z && !m && !p);
	domains_sum(pool);
	assert_int_equal(sp_domain_list(pool, ids, 1), 2);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 99); /* only max of them */
	assert_int_equal(sp_domain_list(pool, NULL, 0), 2);

	/* A merged page written: no longer merging, once the scanner has seen it. */
	fill_page(b + 8 * SP_PAGE_SIZE, 777);
	full_scan(pool);
	dom(pool, 5, &r, &z, &m, &p);
	assert_int_equal(m, 15);
	assert_int_equal(r, 16);
	domains_sum(pool);

	assert_int_equal(sp_free(pool, b), 0);
	dom(pool, 5, &r, &z, &m, &p);
	assert_true(!r && !z && !m && !p);
	assert_int_equal(sp_domain_list(pool, ids, 2), 1);
	domains_sum(pool);

	/* Bad arguments. */
	for (unsigned i = 0; i < 4; i++)
		assert_non_null(sp_domain_stat_name(i));
	assert_string_equal(sp_domain_stat_name(3), "ksm_process_profit");
	assert_null(sp_domain_stat_name(4));
	errno = 0;
	assert_int_equal(sp_domain_stat(pool, 0, "pages_sharing", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_domain_stat(pool, 0, NULL, &v), -1);
	assert_int_equal(sp_domain_stat(pool, 0, "ksm_rmap_items", NULL), -1);
	assert_int_equal(sp_domain_stat(NULL, 0, "ksm_rmap_items", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_domain_list(NULL, ids, 2), -1);
	assert_int_equal(sp_domain_list(pool, NULL, 2), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_and_defaults),
		cmocka_unit_test(set_in_range),
		cmocka_unit_test(set_errors),
		cmocka_unit_test(busy_while_shared),
		BOTH(merges_on_first_visit),
		cmocka_unit_test(merges_within_two_scans),
		cmocka_unit_test(shmem_falls),
		BOTH(copy_on_write),
		cmocka_unit_test(read_syscall_into_merged),
		BOTH(unmerge_all),
		BOTH(free_merged_region),
		cmocka_unit_test(zero_pages),
		cmocka_unit_test(max_page_sharing),
		cmocka_unit_test(merge_domains),
		cmocka_unit_test(nodes_apart),
		cmocka_unit_test(metadata_per_page),
		cmocka_unit_test(ksmd_merges),
		cmocka_unit_test(unmapped_behind_back),
		BOTH(run2_stops_ksmd),
		BOTH(scan_obeys_run),
		cmocka_unit_test(run2_via_socket),
		BOTH(rewritten_merge_within_two_scans),
		BOTH(unshared_and_volatile),
		BOTH(volatile_goes_with_region),
		BOTH(unmerge_honours_policy),
		cmocka_unit_test(smart_scan_skips),
		BOTH(written_zero_page_survives_unmerge),
		BOTH(domain_stat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
