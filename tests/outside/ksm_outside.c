/* SPDX-License-Identifier: MIT */
/*
 * ksm_outside: KSM, memory hot-remove and memory policy, checked as a
 * program outside the project sees them: only <samepage.h> and libc, built
 * as API.md says (from the top of the source tree, after `ninja -C build`):
 *
 *   cc -Wall -Wextra -Werror -Iinclude tests/outside/ksm_outside.c -Lbuild \
 *      -lsamepage -Wl,-rpath,$PWD/build -pthread -o build/ksm_outside
 *
 * Merging is driven with sp_ksm_scan on pools without ksmd (one check runs
 * ksmd itself). A "full scan" is sp_ksm_scan(pool, 1) called until the
 * full_scans counter grows by one.
 *
 * Output: one line per check, "ok N - ..." or "not ok N - ... (details: ...)",
 * "# " lines for notes, and last "P passed, F failed". Exit status 0 only if
 * nothing failed. A failed check is recorded and the run goes on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <samepage.h>

#include "check.h"

#define PG ((size_t)SP_PAGE_SIZE)
#define MIB ((size_t)1 << 20)
#define SECTION (4 * MIB)
#define SECTION_PAGES ((long)(SECTION / PG))
#define WORDS (PG / sizeof(uint64_t))
#define SCAN_SECONDS 2.0 /* the most one full scan may take */

/* ---- helpers ---------------------------------------------------------- */

static sp_pool *make_pool(size_t section_size, unsigned nr_sections, unsigned nr_nodes,
			  unsigned flags)
{
	struct sp_pool_config cfg = {
		.section_size = section_size,
		.nr_sections = nr_sections,
		.nr_nodes = nr_nodes,
		.flags = flags,
	};

	return sp_pool_create(&cfg);
}

/* Word w of a page with content (seed, idx): distinct per page, never zero. */
static uint64_t word_of(unsigned seed, size_t idx, size_t w)
{
	uint64_t x = ((uint64_t)seed << 40) ^ ((uint64_t)idx << 16) ^ w;

	x *= 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29) ^ 1;
}

static void fill_page(unsigned char *page, unsigned seed, size_t idx)
{
	uint64_t *w = (uint64_t *)page;

	for (size_t i = 0; i < WORDS; i++)
		w[i] = word_of(seed, idx, i);
}

static bool page_is(const unsigned char *page, unsigned seed, size_t idx)
{
	const uint64_t *w = (const uint64_t *)page;

	for (size_t i = 0; i < WORDS; i++)
		if (w[i] != word_of(seed, idx, i))
			return false;
	return true;
}

/* Page i of p gets content (seed, first_idx + i). */
static void fill_pages(unsigned char *p, size_t n, unsigned seed, size_t first_idx)
{
	for (size_t i = 0; i < n; i++)
		fill_page(p + i * PG, seed, first_idx + i);
}

/* Index of the first page that is not (seed, first_idx + i); -1 if none. */
static long check_pages(const unsigned char *p, size_t n, unsigned seed, size_t first_idx)
{
	for (size_t i = 0; i < n; i++)
		if (!page_is(p + i * PG, seed, first_idx + i))
			return (long)i;
	return -1;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* How many of n pages from p have sp_page_is_ksm == want; -1 on an error. */
static long count_ksm(sp_pool *pool, const unsigned char *p, size_t n, int want)
{
	long c = 0;

	for (size_t i = 0; i < n; i++) {
		int v = sp_page_is_ksm(pool, p + i * PG);

		if (v < 0)
			return -1;
		c += v == want;
	}
	return c;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One full scan: false if full_scans never grows (or sp_ksm_scan fails). */
static bool full_scan(sp_pool *pool)
{
	long start = ksm_of(pool, "full_scans");
	double t0 = now_s();

	for (long i = 0;; i++) {
		if (sp_ksm_scan(pool, 1) < 0)
			return false;
		if (ksm_of(pool, "full_scans") > start)
			return true;
		if (!(i % 1024) && now_s() - t0 > SCAN_SECONDS)
			return false;
	}
}

/*
 * Full scans, at most max of them, until KSM counter name reads want.
 * Returns how many full scans it took, or -1 if it never did.
 */
static int scan_until(sp_pool *pool, const char *name, long want, int max)
{
	for (int n = 0; n <= max; n++) {
		if (ksm_of(pool, name) == want)
			return n;
		if (n < max && !full_scan(pool))
			return -1;
	}
	return -1;
}

static long shmem_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Shmem: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * Two mergeable regions a and b of n + uniq pages: pages [0, n) identical
 * (content (seed, i), distinct per page), pages [n, n + uniq) unique to each.
 */
struct pair {
	unsigned char *a, *b;
	size_t n, uniq;
	unsigned seed;
};

#define SEED_UNIQ_A 901u
#define SEED_UNIQ_B 902u

static bool pair_alloc(sp_pool *pool, struct pair *pr, size_t n, size_t uniq, unsigned seed,
		       const char *tag)
{
	size_t len = (n + uniq) * PG;

	pr->n = n;
	pr->uniq = uniq;
	pr->seed = seed;
	errno = 0;
	pr->a = sp_alloc(pool, len, SP_MERGEABLE);
	pr->b = pr->a ? sp_alloc(pool, len, SP_MERGEABLE) : NULL;
	if (!report(pr->a && pr->b, 0, errno, "[%s] sp_alloc two mergeable regions of %zu pages",
		    tag, n + uniq))
		return false;
	fill_pages(pr->a, n, seed, 0);
	fill_pages(pr->b, n, seed, 0);
	fill_pages(pr->a + n * PG, uniq, SEED_UNIQ_A + seed, 0);
	fill_pages(pr->b + n * PG, uniq, SEED_UNIQ_B + seed, 0);
	return true;
}

/* Every page of the pair as written; skip one page index (or -1) of a and of b. */
static bool pair_intact(const struct pair *pr, long skip_a1, long skip_a2)
{
	for (size_t i = 0; i < pr->n; i++) {
		if ((long)i != skip_a1 && (long)i != skip_a2 &&
		    !page_is(pr->a + i * PG, pr->seed, i))
			return false;
		if (!page_is(pr->b + i * PG, pr->seed, i))
			return false;
	}
	return check_pages(pr->a + pr->n * PG, pr->uniq, SEED_UNIQ_A + pr->seed, 0) < 0 &&
	       check_pages(pr->b + pr->n * PG, pr->uniq, SEED_UNIQ_B + pr->seed, 0) < 0;
}

static void pair_free(sp_pool *pool, struct pair *pr)
{
	if (pr->a)
		sp_free(pool, pr->a);
	if (pr->b)
		sp_free(pool, pr->b);
	pr->a = pr->b = NULL;
}

/* Merges the pair with at most two full scans; reports it. */
static bool pair_merge(sp_pool *pool, const struct pair *pr, const char *tag)
{
	long before = ksm_of(pool, "pages_sharing");
	int scans = scan_until(pool, "pages_sharing", before + (long)pr->n, 2);

	return report(scans >= 0, ksm_of(pool, "pages_sharing"), 0,
		      "[%s] %zu identical page pairs merged within two full scans (took %d)", tag,
		      pr->n, scans);
}

/* ---- 1-3: merging, copy-on-write, unmerging --------------------------- */

#define N_MERGE 256
#define N_UNIQ 32
#define SHMEM_TRIES 3

static bool shmem_ok(long fall_kb)
{
	const long want = (long)(N_MERGE * PG / 1024);

	return fall_kb != LONG_MIN && labs(fall_kb - want) < (long)(MIB / 1024);
}

/* One more try of the Shmem measure alone, in a pool of its own. */
static long shmem_attempt(unsigned flags)
{
	sp_pool *pool = make_pool(SECTION, 4, 1, SP_POOL_NO_KSMD | flags);
	struct pair pr = { 0 };
	long s0, s1 = -1;

	if (!pool)
		return LONG_MIN;
	pr.a = sp_alloc(pool, (N_MERGE + N_UNIQ) * PG, SP_MERGEABLE);
	pr.b = sp_alloc(pool, (N_MERGE + N_UNIQ) * PG, SP_MERGEABLE);
	if (pr.a && pr.b) {
		fill_pages(pr.a, N_MERGE, 7, 0);
		fill_pages(pr.b, N_MERGE, 7, 0);
		s0 = shmem_kb();
		scan_until(pool, "pages_sharing", N_MERGE, 2);
		s1 = shmem_kb();
		s1 = s0 - s1;
	}
	pair_free(pool, &pr);
	sp_pool_destroy(pool);
	return s1;
}

static void test_merge_basic(sp_pool *pool, struct pair *pr, unsigned flags, const char *tag)
{
	long res0, res1, sh0, sh1, fall, full0 = ksm_of(pool, "full_scans"), v;
	int scans;

	res0 = stat_of(pool, "bytes_resident");
	sh0 = shmem_kb();
	scans = scan_until(pool, "pages_sharing", N_MERGE, 2);
	sh1 = shmem_kb();
	res1 = stat_of(pool, "bytes_resident");
	v = ksm_of(pool, "full_scans") - full0;
	report(scans >= 0 && v <= 2, scans >= 0 ? v : ksm_of(pool, "pages_sharing"), 0,
	       "[%s] 1. pages_sharing reaches %d after at most two full scans (full_scans +%ld)",
	       tag, N_MERGE, v);
	v = ksm_of(pool, "pages_sharing");
	report(v == N_MERGE, v, 0, "[%s] 1. pages_sharing == %d", tag, N_MERGE);
	v = ksm_of(pool, "pages_shared");
	report(v == N_MERGE, v, 0, "[%s] 1. pages_shared == %d", tag, N_MERGE);
	report(res0 - res1 == (long)(N_MERGE * PG), res0 - res1, 0,
	       "[%s] 1. bytes_resident fell by %d * 4096 (from %ld)", tag, N_MERGE, res0);

	fall = sh0 >= 0 && sh1 >= 0 ? sh0 - sh1 : LONG_MIN;
	for (int t = 1; !shmem_ok(fall) && t < SHMEM_TRIES; t++) {
		printf("# [%s] Shmem fell by %ld kB; system-wide noise? trying again (%d)\n", tag,
		       fall, t + 1);
		fall = shmem_attempt(flags);
	}
	report(shmem_ok(fall), fall, 0,
	       "[%s] 1. /proc/meminfo Shmem fell by about 1 MiB (%ld kB, +-1 MiB, %d tries)", tag,
	       fall, SHMEM_TRIES);

	v = count_ksm(pool, pr->a, N_MERGE, 1) + count_ksm(pool, pr->b, N_MERGE, 1);
	report(v == 2 * N_MERGE, v, 0, "[%s] 1. sp_page_is_ksm == 1 on all %d merged pages", tag,
	       2 * N_MERGE);
	v = count_ksm(pool, pr->a + N_MERGE * PG, N_UNIQ, 0) +
	    count_ksm(pool, pr->b + N_MERGE * PG, N_UNIQ, 0);
	report(v == 2 * N_UNIQ, v, 0, "[%s] 1. sp_page_is_ksm == 0 on all %d unique pages", tag,
	       2 * N_UNIQ);
	report(pair_intact(pr, -1, -1), 0, 0, "[%s] 1. every byte of both regions reads back", tag);
}

#define COW_USER 10 /* page of a written from user code */
#define COW_PIPE 20 /* page of a read(2) into from a pipe */
#define SEED_COW 777u

static int test_cow(sp_pool *pool, struct pair *pr, const char *tag)
{
	long sharing0 = ksm_of(pool, "pages_sharing"), cow0 = stat_of(pool, "faults_cow"), v, w;
	bool uffd = stat_of(pool, "fault_mode") == SP_FAULT_UFFD;
	unsigned char *buf = malloc(PG);
	int writes = 0, fds[2];

	fill_page(pr->a + COW_USER * PG, SEED_COW, COW_USER);
	writes++;
	report(page_is(pr->a + COW_USER * PG, SEED_COW, COW_USER), 0, 0,
	       "[%s] 2. a user write to a merged page reads back in that page", tag);
	report(page_is(pr->b + COW_USER * PG, pr->seed, COW_USER), 0, 0,
	       "[%s] 2. ... and the other sharer keeps the merged content", tag);
	if (uffd && buf) {
		ssize_t n = -1;

		fill_page(buf, SEED_COW, COW_PIPE);
		if (pipe(fds) == 0) {
			if (write(fds[1], buf, PG) == (ssize_t)PG)
				n = read_full(fds[0], pr->a + COW_PIPE * PG, PG);
			close(fds[0]);
			close(fds[1]);
		}
		writes++;
		report(n == (ssize_t)PG && page_is(pr->a + COW_PIPE * PG, SEED_COW, COW_PIPE),
		       (long)n, errno, "[%s] 2. read(2) from a pipe into a merged page lands", tag);
		report(page_is(pr->b + COW_PIPE * PG, pr->seed, COW_PIPE), 0, 0,
		       "[%s] 2. ... and the other sharer keeps the merged content", tag);
	} else {
		printf("# [%s] read(2) into a merged page: userfaultfd mode only\n", tag);
	}
	free(buf);
	report(full_scan(pool), 0, 0, "[%s] 2. a full scan after the writes", tag);
	v = stat_of(pool, "faults_cow") - cow0;
	report(v == writes, v, 0, "[%s] 2. faults_cow grew by the %d writes", tag, writes);
	v = ksm_of(pool, "pages_sharing");
	report(v == sharing0 - writes, v, 0, "[%s] 2. pages_sharing fell by %d (from %ld)", tag,
	       writes, sharing0);
	v = sp_page_is_ksm(pool, pr->a + COW_USER * PG);
	report(v == 0, v, errno, "[%s] 2. the written page is no longer a KSM page", tag);
	v = count_ksm(pool, pr->a, pr->n, 1) + count_ksm(pool, pr->b, pr->n, 1);
	w = ksm_of(pool, "pages_shared") + ksm_of(pool, "pages_sharing");
	report(v == w, v, 0,
	       "[%s] 2. pages with sp_page_is_ksm == pages_shared + pages_sharing (%ld)", tag, w);
	v = stat_of(pool, "frames_ksm");
	report(v == ksm_of(pool, "pages_shared"), v, 0, "[%s] 2. frames_ksm == pages_shared (%ld)",
	       tag, ksm_of(pool, "pages_shared"));
	report(pair_intact(pr, COW_USER, uffd ? COW_PIPE : -1), 0, 0,
	       "[%s] 2. every other page of both regions is unchanged", tag);
	return writes;
}

/* The pair's content, with the pages test_cow rewrote. */
static bool pair_intact_cow(const struct pair *pr, int writes)
{
	return pair_intact(pr, COW_USER, writes > 1 ? COW_PIPE : -1) &&
	       page_is(pr->a + COW_USER * PG, SEED_COW, COW_USER) &&
	       (writes < 2 || page_is(pr->a + COW_PIPE * PG, SEED_COW, COW_PIPE));
}

static void test_unmerge(sp_pool *pool, struct pair *pr, int writes, const char *tag)
{
	const size_t lo = 64, hi = 128;
	long v, sharing;

	EXPECT_OK(sp_ksm_set(pool, "run", 2), "[%s] 3. run = 2 (unmerge everything)", tag);
	v = ksm_of(pool, "run");
	report(v == 2, v, 0, "[%s] 3. run reads 2", tag);
	v = ksm_of(pool, "pages_shared");
	report(v == 0, v, 0, "[%s] 3. pages_shared == 0 after run = 2", tag);
	v = ksm_of(pool, "pages_sharing");
	report(v == 0, v, 0, "[%s] 3. pages_sharing == 0 after run = 2", tag);
	v = count_ksm(pool, pr->a, pr->n + pr->uniq, 0) +
	    count_ksm(pool, pr->b, pr->n + pr->uniq, 0);
	report(v == (long)(2 * (pr->n + pr->uniq)), v, 0,
	       "[%s] 3. sp_page_is_ksm == 0 on every page after run = 2", tag);
	report(pair_intact_cow(pr, writes), 0, 0, "[%s] 3. content intact after run = 2", tag);

	EXPECT_OK(sp_ksm_set(pool, "run", 1), "[%s] 3. run = 1 again", tag);
	sharing = (long)pr->n - writes;
	v = scan_until(pool, "pages_sharing", sharing, 2);
	report(v >= 0, ksm_of(pool, "pages_sharing"), 0,
	       "[%s] 3. merged again: pages_sharing == %ld within two full scans", tag, sharing);
	EXPECT_OK(sp_madvise(pool, pr->a + lo * PG, (hi - lo) * PG, SP_MADV_UNMERGEABLE),
		  "[%s] 3. SP_MADV_UNMERGEABLE on pages [%zu, %zu) of a", tag, lo, hi);
	v = count_ksm(pool, pr->a + lo * PG, hi - lo, 0);
	report(v == (long)(hi - lo), v, 0, "[%s] 3. that range is unmerged (sp_page_is_ksm 0)",
	       tag);
	v = count_ksm(pool, pr->a + 30 * PG, lo - 30, 1) +
	    count_ksm(pool, pr->a + hi * PG, pr->n - hi, 1) +
	    count_ksm(pool, pr->b + hi * PG, pr->n - hi, 1);
	report(v == (long)(lo - 30 + 2 * (pr->n - hi)), v, 0,
	       "[%s] 3. pages outside it stay merged", tag);
	v = ksm_of(pool, "pages_sharing");
	report(v == sharing - (long)(hi - lo), v, 0, "[%s] 3. pages_sharing fell by %zu", tag,
	       hi - lo);
	report(full_scan(pool), 0, 0, "[%s] 3. a full scan after SP_MADV_UNMERGEABLE", tag);
	v = count_ksm(pool, pr->a + lo * PG, hi - lo, 0);
	report(v == (long)(hi - lo), v, 0, "[%s] 3. the unmergeable range is not merged again",
	       tag);
	report(pair_intact_cow(pr, writes), 0, 0, "[%s] 3. content intact after unmerging a range",
	       tag);
}

static void test_merge(unsigned flags, const char *tag)
{
	sp_pool *pool = make_pool(SECTION, 4, 1, SP_POOL_NO_KSMD | flags);
	struct pair pr = { 0 };
	long mode;
	int writes;

	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create(4 x 4 MiB, no ksmd)", tag))
		return;
	mode = stat_of(pool, "fault_mode");
	report(mode == (flags & SP_POOL_SIGSEGV ? SP_FAULT_SIGSEGV : SP_FAULT_UFFD), mode, 0,
	       "[%s] fault_mode as asked", tag);
	if (pair_alloc(pool, &pr, N_MERGE, N_UNIQ, 7, tag)) {
		test_merge_basic(pool, &pr, flags, tag);
		writes = test_cow(pool, &pr, tag);
		test_unmerge(pool, &pr, writes, tag);
	}
	pair_free(pool, &pr);
	sp_pool_destroy(pool);
}

/* 3, no room: unmerging needs frames the pool does not have. */
static void test_unmerge_nomem(unsigned flags, const char *tag)
{
	sp_pool *pool = make_pool(SECTION, 1, 1, SP_POOL_NO_KSMD | flags);
	struct pair pr = { 0 };
	unsigned char *c = NULL;
	long v, sharing;

	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create(1 x 4 MiB, no ksmd)", tag))
		return;
	if (!pair_alloc(pool, &pr, 400, 0, 11, tag) || !pair_merge(pool, &pr, tag))
		goto out;
	errno = 0;
	c = sp_alloc(pool, 600 * PG, 0);
	if (!report(c != NULL, 0, errno,
		    "[%s] 3. sp_alloc(600 pages) into the frames merging freed", tag))
		goto out;
	fill_pages(c, 600, 12, 0);
	v = stat_of(pool, "frames_free");
	printf("# [%s] frames_free %ld\n", tag, v);
	sharing = ksm_of(pool, "pages_sharing");
	EXPECT_ERR(sp_ksm_set(pool, "run", 2), ENOMEM, "[%s] 3. run = 2 without room: -1 ENOMEM",
		   tag);
	v = ksm_of(pool, "run");
	report(v == 1, v, 0, "[%s] 3. run still reads 1", tag);
	v = ksm_of(pool, "pages_sharing");
	report(v == sharing, v, 0, "[%s] 3. pages_sharing unchanged (%ld)", tag, sharing);
	v = count_ksm(pool, pr.a, pr.n, 1) + count_ksm(pool, pr.b, pr.n, 1);
	report(v == 800, v, 0, "[%s] 3. all 800 pages still merged", tag);
	report(pair_intact(&pr, -1, -1) && check_pages(c, 600, 12, 0) < 0, 0, 0,
	       "[%s] 3. every page still reads back", tag);
	EXPECT_ERR(sp_madvise(pool, pr.a, pr.n * PG, SP_MADV_UNMERGEABLE), ENOMEM,
		   "[%s] 3. SP_MADV_UNMERGEABLE without room: -1 ENOMEM", tag);
	v = ksm_of(pool, "pages_sharing");
	report(v == sharing, v, 0, "[%s] 3. pages_sharing unchanged (%ld)", tag, sharing);
	v = count_ksm(pool, pr.a, pr.n, 1) + count_ksm(pool, pr.b, pr.n, 1);
	report(v == 800, v, 0, "[%s] 3. all 800 pages still merged", tag);
	report(pair_intact(&pr, -1, -1) && check_pages(c, 600, 12, 0) < 0, 0, 0,
	       "[%s] 3. every page still reads back", tag);
out:
	if (c)
		sp_free(pool, c);
	pair_free(pool, &pr);
	sp_pool_destroy(pool);
}

/* ---- 4: zero pages and merge domains ---------------------------------- */

static void test_zero_pages(unsigned flags, const char *tag)
{
	sp_pool *pool = make_pool(SECTION, 2, 1, SP_POOL_NO_KSMD | flags);
	const size_t nz = 64, nd = 16;
	unsigned char *z;
	long v;
	int scans;

	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create for use_zero_pages", tag))
		return;
	EXPECT_OK(sp_ksm_set(pool, "use_zero_pages", 1), "[%s] 4. use_zero_pages = 1", tag);
	z = sp_alloc(pool, (nz + nd) * PG, SP_MERGEABLE);
	if (!report(z != NULL, 0, errno, "[%s] 4. sp_alloc(%zu pages, SP_MERGEABLE)", tag, nz + nd))
		goto out;
	for (size_t i = 0; i < nz; i++) {
		z[i * PG] = 1;
		z[i * PG] = 0;
	}
	fill_pages(z + nz * PG, nd, 21, 0);
	scans = scan_until(pool, "ksm_zero_pages", (long)nz, 2);
	report(scans >= 0, ksm_of(pool, "ksm_zero_pages"), 0,
	       "[%s] 4. ksm_zero_pages == %zu (the touched zero pages) within two full scans", tag,
	       nz);
	v = ksm_of(pool, "pages_sharing");
	report(v == 0, v, 0, "[%s] 4. zero pages are not counted in pages_sharing", tag);
	report(all_zero(z, nz * PG), 0, 0, "[%s] 4. the zero pages read as zeros", tag);
	report(check_pages(z + nz * PG, nd, 21, 0) < 0, 0, 0,
	       "[%s] 4. the non-zero pages read back", tag);
	z[5 * PG + 7] = 9;
	report(z[5 * PG + 7] == 9 && all_zero(z + 5 * PG, 7) && all_zero(z + 5 * PG + 8, PG - 8), 0,
	       0, "[%s] 4. a write to a merged zero page reads back", tag);
	report(all_zero(z, 5 * PG) && all_zero(z + 6 * PG, (nz - 6) * PG), 0, 0,
	       "[%s] 4. ... and the other zero pages stay zero", tag);
	report(full_scan(pool), 0, 0, "[%s] 4. a full scan after the write", tag);
	v = ksm_of(pool, "ksm_zero_pages");
	report(v == (long)nz - 1, v, 0, "[%s] 4. ksm_zero_pages == %zu after it", tag, nz - 1);
	sp_free(pool, z);
out:
	sp_pool_destroy(pool);
}

/* 4 and 5: merge domains, then the knobs' errors with pages merged. */
static void test_domains(unsigned flags, const char *tag, bool knobs)
{
	sp_pool *pool = make_pool(SECTION, 2, 1, SP_POOL_NO_KSMD | flags);
	const size_t n = 64;
	unsigned char *a = NULL, *b = NULL, *c = NULL;
	long v;

	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create for merge domains", tag))
		return;
	a = sp_alloc(pool, n * PG, SP_MERGEABLE);
	b = sp_alloc(pool, n * PG, SP_MERGEABLE);
	c = sp_alloc(pool, n * PG, SP_MERGEABLE);
	if (!report(a && b && c, 0, errno, "[%s] 4. sp_alloc three mergeable regions", tag))
		goto out;
	EXPECT_OK(sp_set_merge_domain(pool, a, n * PG, 1), "[%s] 4. region a in domain 1", tag);
	EXPECT_OK(sp_set_merge_domain(pool, b, n * PG, 2), "[%s] 4. region b in domain 2", tag);
	fill_pages(a, n, 31, 0);
	fill_pages(b, n, 31, 0);
	report(full_scan(pool) && full_scan(pool), 0, 0, "[%s] 4. two full scans", tag);
	v = ksm_of(pool, "pages_sharing");
	report(v == 0, v, 0, "[%s] 4. identical pages in domains 1 and 2 never share", tag);
	v = count_ksm(pool, a, n, 1) + count_ksm(pool, b, n, 1);
	report(v == 0, v, 0, "[%s] 4. no page of a or b is a KSM page", tag);
	EXPECT_OK(sp_set_merge_domain(pool, c, n * PG, 1), "[%s] 4. region c in domain 1", tag);
	fill_pages(c, n, 31, 0);
	v = scan_until(pool, "pages_sharing", (long)n, 2);
	report(v >= 0, ksm_of(pool, "pages_sharing"), 0,
	       "[%s] 4. c shares with a: pages_sharing == %zu within two full scans", tag, n);
	v = count_ksm(pool, a, n, 1) + count_ksm(pool, c, n, 1);
	report(v == (long)(2 * n), v, 0, "[%s] 4. every page of a and c is a KSM page", tag);
	v = count_ksm(pool, b, n, 1);
	report(v == 0, v, 0, "[%s] 4. no page of b is", tag);
	report(check_pages(a, n, 31, 0) < 0 && check_pages(b, n, 31, 0) < 0 &&
		       check_pages(c, n, 31, 0) < 0,
	       0, 0, "[%s] 4. all three regions read back", tag);

	if (knobs) {
		long mps = ksm_of(pool, "max_page_sharing"),
		     man = ksm_of(pool, "merge_across_nodes");

		EXPECT_ERR(sp_ksm_set(pool, "run", 3), EINVAL, "5. run = 3: -1 EINVAL");
		EXPECT_ERR(sp_ksm_set(pool, "max_page_sharing", 1), EINVAL,
			   "5. max_page_sharing = 1: -1 EINVAL");
		EXPECT_ERR(sp_ksm_set(pool, "pages_sharing", 0), EPERM,
			   "5. setting counter pages_sharing: -1 EPERM");
		EXPECT_ERR(sp_ksm_set(pool, "full_scans", 5), EPERM,
			   "5. setting counter full_scans: -1 EPERM");
		EXPECT_ERR(sp_ksm_set(pool, "max_page_sharing", mps * 2), EBUSY,
			   "5. max_page_sharing change while pages are shared: -1 EBUSY");
		v = ksm_of(pool, "max_page_sharing");
		report(v == mps, v, 0, "5. max_page_sharing unchanged (%ld)", mps);
		EXPECT_ERR(sp_ksm_set(pool, "merge_across_nodes", !man), EBUSY,
			   "5. merge_across_nodes change while pages are shared: -1 EBUSY");
		v = ksm_of(pool, "pages_sharing");
		report(v == (long)n, v, 0, "5. pages stay merged after the refused sets");
	}
out:
	if (a)
		sp_free(pool, a);
	if (b)
		sp_free(pool, b);
	if (c)
		sp_free(pool, c);
	sp_pool_destroy(pool);
}

/* ---- 6: ksmd ---------------------------------------------------------- */

static void test_ksmd(unsigned flags, const char *tag)
{
	sp_pool *pool = make_pool(SECTION, 4, 1, flags);
	struct pair pr = { 0 };
	double t0, t = 0;
	long v = -1;

	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create with ksmd", tag))
		return;
	EXPECT_OK(sp_ksm_set(pool, "sleep_millisecs", 0), "[%s] 6. sleep_millisecs = 0", tag);
	if (pair_alloc(pool, &pr, N_MERGE, 0, 41, tag)) {
		t0 = now_s();
		while ((v = ksm_of(pool, "pages_sharing")) != N_MERGE && (t = now_s() - t0) < 5)
			sleep_ms(5);
		t = now_s() - t0;
		report(v == N_MERGE, v, 0,
		       "[%s] 6. ksmd merges %d page pairs within 5 s, no sp_ksm_scan (%.2f s)", tag,
		       N_MERGE, t);
		report(pair_intact(&pr, -1, -1), 0, 0, "[%s] 6. both regions read back", tag);
	}
	pair_free(pool, &pr);
	sp_pool_destroy(pool);
}

/* ---- 7: hot-remove under load ----------------------------------------- */

#define W_PAGES 64

struct writer {
	pthread_t th;
	sp_pool *pool;
	unsigned char *p;
	unsigned id;
	uint64_t last[W_PAGES];
	atomic_long passes;
	atomic_bool *stop;
};

static uint64_t w_word(uint64_t v, size_t i)
{
	return v ^ (i << 48);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t pass = 1; !atomic_load(w->stop); pass++) {
		for (size_t pg = 0; pg < W_PAGES; pg++) {
			uint64_t v = ((uint64_t)(w->id + 1) << 40) | (pass << 8) | pg;
			uint64_t *q = (uint64_t *)(w->p + pg * PG);

			for (size_t i = 0; i < WORDS; i++)
				q[i] = w_word(v, i);
			w->last[pg] = v;
		}
		atomic_fetch_add(&w->passes, 1);
	}
	return NULL;
}

static long writer_check(const struct writer *w)
{
	for (size_t pg = 0; pg < W_PAGES; pg++) {
		const uint64_t *q = (const uint64_t *)(w->p + pg * PG);

		for (size_t i = 0; i < WORDS; i++)
			if (q[i] != w_word(w->last[pg], i))
				return (long)pg;
	}
	return -1;
}

struct reader {
	pthread_t th;
	const struct pair *pr;
	atomic_long passes, bad;
	atomic_bool *stop;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	while (!atomic_load(r->stop)) {
		if (!pair_intact(r->pr, -1, -1))
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->passes, 1);
	}
	return NULL;
}

static void wait_passes(atomic_long *passes, long want)
{
	double t0 = now_s();

	while (atomic_load(passes) < want && now_s() - t0 < 5)
		sleep_ms(1);
}

/* Pages of n from p for which where() says want (a section, a node); -1 on an error. */
static long count_where(sp_pool *pool, const unsigned char *p, size_t n,
			int (*where)(sp_pool *, const void *), int want)
{
	long c = 0;

	for (size_t i = 0; i < n; i++) {
		int v = where(pool, p + i * PG);

		if (v < 0)
			return -1;
		c += v == want;
	}
	return c;
}

static long count_in_section(sp_pool *pool, const unsigned char *p, size_t n, int s)
{
	return count_where(pool, p, n, sp_page_section, s);
}

static void test_hotremove(unsigned flags, const char *tag)
{
	sp_pool *pool = make_pool(SECTION, 4, 1, SP_POOL_NO_KSMD | flags);
	struct pair pr = { 0 };
	struct writer w[2];
	struct reader rd = { 0 };
	atomic_bool stop = false;
	unsigned char *nw = NULL;
	long v, sharing, total, migrated, in;
	int s, rc, e, started = 0;
	bool reader_on = false;

	memset(w, 0, sizeof(w));
	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create(4 x 4 MiB, 1 node, no ksmd)", tag))
		return;
	if (!pair_alloc(pool, &pr, 600, 0, 51, tag) || !pair_merge(pool, &pr, tag))
		goto out;
	s = sp_page_section(pool, pr.a);
	if (!report(s >= 0 && s < 4 && sp_page_is_ksm(pool, pr.a) == 1, s, errno,
		    "[%s] 7. the section of a KSM page (sp_page_section)", tag))
		goto out;
	for (int i = 0; i < 2; i++) {
		w[i].pool = pool;
		w[i].id = (unsigned)i;
		w[i].stop = &stop;
		w[i].p = sp_alloc(pool, W_PAGES * PG, 0);
		if (!w[i].p || pthread_create(&w[i].th, NULL, writer_main, &w[i]))
			break;
		started++;
	}
	rd.pr = &pr;
	rd.stop = &stop;
	reader_on = !pthread_create(&rd.th, NULL, reader_main, &rd);
	if (!report(started == 2 && reader_on, started, errno,
		    "[%s] 7. two writer threads and a reader thread running", tag))
		goto join;
	wait_passes(&w[0].passes, 2);
	wait_passes(&w[1].passes, 2);
	wait_passes(&rd.passes, 1);
	v = count_in_section(pool, w[0].p, W_PAGES, s) + count_in_section(pool, w[1].p, W_PAGES, s);
	printf("# [%s] offlining section %d: %ld writer pages and the KSM frames in it\n", tag, s,
	       v);
	sharing = ksm_of(pool, "pages_sharing");
	total = stat_of(pool, "frames_total");
	migrated = stat_of(pool, "pages_migrated");
	errno = 0;
	rc = sp_section_offline(pool, (unsigned)s);
	e = errno;
	report(rc == 0, rc, e, "[%s] 7. sp_section_offline(%d) == 0 while threads write and read",
	       tag, s);
	wait_passes(&w[0].passes, atomic_load(&w[0].passes) + 2);
	wait_passes(&w[1].passes, atomic_load(&w[1].passes) + 2);
	wait_passes(&rd.passes, atomic_load(&rd.passes) + 1);
join:
	atomic_store(&stop, true);
	for (int i = 0; i < started; i++)
		pthread_join(w[i].th, NULL);
	if (reader_on)
		pthread_join(rd.th, NULL);
	if (started < 2 || !reader_on)
		goto out;
	report(atomic_load(&rd.bad) == 0, atomic_load(&rd.bad), 0,
	       "[%s] 7. the reader saw the merged content throughout (%ld passes)", tag,
	       atomic_load(&rd.passes));
	for (int i = 0; i < 2; i++)
		report(writer_check(&w[i]) < 0, writer_check(&w[i]), 0,
		       "[%s] 7. writer %d's region reads back what it last wrote (%ld passes)", tag,
		       i, atomic_load(&w[i].passes));
	report(pair_intact(&pr, -1, -1), 0, 0, "[%s] 7. the merged regions read back", tag);
	in = count_in_section(pool, pr.a, pr.n, s) + count_in_section(pool, pr.b, pr.n, s) +
	     count_in_section(pool, w[0].p, W_PAGES, s) +
	     count_in_section(pool, w[1].p, W_PAGES, s);
	report(in == 0, in, 0, "[%s] 7. no page of any region is in section %d any more", tag, s);
	v = stat_of(pool, "sections_online");
	report(v == 3, v, 0, "[%s] 7. sections_online == 3", tag);
	v = total - stat_of(pool, "frames_total");
	report(v == SECTION_PAGES, v, 0, "[%s] 7. frames_total fell by %ld", tag, SECTION_PAGES);
	v = ksm_of(pool, "pages_sharing");
	report(v == sharing, v, 0, "[%s] 7. the pages stay merged (pages_sharing %ld)", tag,
	       sharing);
	v = count_ksm(pool, pr.a, pr.n, 1) + count_ksm(pool, pr.b, pr.n, 1);
	report(v == (long)(2 * pr.n), v, 0, "[%s] 7. sp_page_is_ksm == 1 on all merged pages", tag);
	v = stat_of(pool, "pages_migrated") - migrated;
	report(v > 0, v, 0, "[%s] 7. pages_migrated grew (by %ld)", tag, v);

	nw = sp_alloc(pool, 32 * PG, SP_MERGEABLE);
	if (report(nw != NULL, 0, errno, "[%s] 7. sp_alloc(32 pages, SP_MERGEABLE) after it",
		   tag)) {
		fill_pages(nw, 32, pr.seed, 0);
		v = scan_until(pool, "pages_sharing", sharing + 32, 2);
		report(v >= 0, ksm_of(pool, "pages_sharing"), 0,
		       "[%s] 7. KSM still merges: pages_sharing + 32 within two full scans", tag);
		v = count_ksm(pool, nw, 32, 1);
		report(v == 32, v, 0, "[%s] 7. ... the new pages are KSM pages", tag);
		report(check_pages(nw, 32, pr.seed, 0) < 0 && pair_intact(&pr, -1, -1), 0, 0,
		       "[%s] 7. ... and everything reads back", tag);
	}
	EXPECT_OK(sp_section_online(pool, (unsigned)s), "[%s] 7. sp_section_online(%d)", tag, s);
	v = stat_of(pool, "sections_online");
	report(v == 4, v, 0, "[%s] 7. sections_online == 4 again", tag);
	v = stat_of(pool, "frames_total");
	report(v == total, v, 0, "[%s] 7. frames_total back to %ld", tag, total);
out:
	if (nw)
		sp_free(pool, nw);
	for (int i = 0; i < 2; i++)
		if (w[i].p)
			sp_free(pool, w[i].p);
	pair_free(pool, &pr);
	sp_pool_destroy(pool);
}

/* ---- 8-10: the notifier chain, no room, errors ------------------------ */

#define MAX_SEEN 16

struct recorder {
	int veto;
	int n;
	enum sp_mem_action seen[MAX_SEEN];
	struct sp_memory_notify arg[MAX_SEEN];
};

static int record(sp_pool *pool, enum sp_mem_action action, const struct sp_memory_notify *arg,
		  void *priv)
{
	struct recorder *r = priv;

	(void)pool;
	if (r->n < MAX_SEEN) {
		r->seen[r->n] = action;
		r->arg[r->n] = *arg;
		r->n++;
	}
	return r->veto && action == SP_MEM_GOING_OFFLINE;
}

/* Did r see exactly a then b? */
static bool saw(const struct recorder *r, enum sp_mem_action a, enum sp_mem_action b)
{
	return r->n == 2 && r->seen[0] == a && r->seen[1] == b;
}

static bool saw_action(const struct recorder *r, enum sp_mem_action a)
{
	for (int i = 0; i < r->n; i++)
		if (r->seen[i] == a)
			return true;
	return false;
}

static long seen_code(const struct recorder *r)
{
	long c = r->n;

	for (int i = 0; i < r->n && i < 4; i++)
		c = c * 10 + r->seen[i];
	return c;
}

static bool arg_ok(const struct recorder *r, unsigned s)
{
	for (int i = 0; i < r->n; i++)
		if (r->arg[i].section != s ||
		    r->arg[i].start_pfn != (unsigned long)s * (unsigned long)SECTION_PAGES ||
		    r->arg[i].nr_pages != (unsigned long)SECTION_PAGES || r->arg[i].node != 0)
			return false;
	return r->n > 0;
}

static void test_notifier(void)
{
	sp_pool *pool = make_pool(SECTION, 4, 1, SP_POOL_NO_KSMD);
	struct recorder r0 = { 0 }, r10 = { 0 };
	const size_t n = 200;
	unsigned char *p;
	long v;
	int s;

	if (!report(pool != NULL, 0, errno, "sp_pool_create for the notifier chain"))
		return;
	p = sp_alloc(pool, n * PG, 0);
	if (!report(p != NULL, 0, errno, "8. sp_alloc(%zu pages)", n))
		goto out;
	fill_pages(p, n, 61, 0);
	s = sp_page_section(pool, p);
	if (!report(s >= 0 && s < 4, s, errno, "8. sp_page_section of the region's first page"))
		goto out_free;
	EXPECT_OK(sp_register_memory_notifier(pool, record, &r0, 0),
		  "8. register a notifier, priority 0");
	r0.veto = 1;
	EXPECT_ERR(sp_section_offline(pool, (unsigned)s), EBUSY,
		   "8. vetoed sp_section_offline(%d): -1 EBUSY", s);
	report(r0.n >= 1 && r0.seen[0] == SP_MEM_GOING_OFFLINE && !saw_action(&r0, SP_MEM_OFFLINE),
	       seen_code(&r0), 0, "8. the vetoing notifier saw GOING_OFFLINE, no OFFLINE");
	v = stat_of(pool, "sections_online");
	report(v == 4, v, 0, "8. sections_online still 4");
	report(check_pages(p, n, 61, 0) < 0, 0, 0, "8. contents intact");
	v = sp_page_section(pool, p);
	report(v == s, v, errno, "8. the region's first page is still in section %d", s);

	EXPECT_OK(sp_register_memory_notifier(pool, record, &r10, 10),
		  "8. register another notifier, priority 10");
	r0.n = 0;
	EXPECT_ERR(sp_section_offline(pool, (unsigned)s), EBUSY, "8. vetoed again: -1 EBUSY");
	report(saw(&r10, SP_MEM_GOING_OFFLINE, SP_MEM_CANCEL_OFFLINE), seen_code(&r10), 0,
	       "8. the priority-10 notifier saw GOING_OFFLINE then CANCEL_OFFLINE");
	report(r0.n >= 1 && r0.seen[0] == SP_MEM_GOING_OFFLINE && !saw_action(&r0, SP_MEM_OFFLINE),
	       seen_code(&r0), 0, "8. the priority-0 notifier saw GOING_OFFLINE, no OFFLINE");
	v = stat_of(pool, "sections_online");
	report(v == 4 && check_pages(p, n, 61, 0) < 0, v, 0, "8. nothing changed");

	r0.veto = 0;
	r0.n = r10.n = 0;
	EXPECT_OK(sp_section_offline(pool, (unsigned)s), "8. without veto sp_section_offline(%d)",
		  s);
	report(saw(&r0, SP_MEM_GOING_OFFLINE, SP_MEM_OFFLINE), seen_code(&r0), 0,
	       "8. the priority-0 notifier saw GOING_OFFLINE then OFFLINE");
	report(saw(&r10, SP_MEM_GOING_OFFLINE, SP_MEM_OFFLINE), seen_code(&r10), 0,
	       "8. the priority-10 notifier saw GOING_OFFLINE then OFFLINE");
	report(arg_ok(&r0, (unsigned)s) && arg_ok(&r10, (unsigned)s),
	       r0.n ? (long)r0.arg[0].start_pfn : -1, 0,
	       "8. notify arg: section %d, start_pfn %ld, nr_pages %ld, node 0", s,
	       s * SECTION_PAGES, SECTION_PAGES);
	v = stat_of(pool, "sections_online");
	report(v == 3, v, 0, "8. sections_online == 3");
	report(check_pages(p, n, 61, 0) < 0, 0, 0, "8. contents intact after the offline");
	r0.n = r10.n = 0;
	EXPECT_OK(sp_section_online(pool, (unsigned)s), "8. sp_section_online(%d)", s);
	report(saw(&r10, SP_MEM_GOING_ONLINE, SP_MEM_ONLINE) && arg_ok(&r10, (unsigned)s),
	       seen_code(&r10), 0, "8. online: GOING_ONLINE then ONLINE, same arg");
out_free:
	sp_free(pool, p);
out:
	sp_pool_destroy(pool);
}

static void test_no_room(void)
{
	sp_pool *pool = make_pool(SECTION, 2, 1, SP_POOL_NO_KSMD);
	struct recorder r = { 0 };
	const size_t n = 1500;
	unsigned char *p;
	long v;

	if (!report(pool != NULL, 0, errno, "sp_pool_create(2 x 4 MiB) for no room"))
		return;
	EXPECT_OK(sp_register_memory_notifier(pool, record, &r, 0), "9. register a notifier");
	p = sp_alloc(pool, n * PG, 0);
	if (!report(p != NULL, 0, errno, "9. sp_alloc(%zu pages)", n))
		goto out;
	fill_pages(p, n, 71, 0);
	EXPECT_ERR(sp_section_offline(pool, 0), ENOMEM,
		   "9. sp_section_offline(0) without room: -1 ENOMEM");
	v = stat_of(pool, "pages_migrated");
	report(v == 0, v, 0, "9. pages_migrated stays 0");
	v = stat_of(pool, "sections_online");
	report(v == 2, v, 0, "9. sections_online == 2");
	report(saw(&r, SP_MEM_GOING_OFFLINE, SP_MEM_CANCEL_OFFLINE), seen_code(&r), 0,
	       "9. the notifier saw GOING_OFFLINE then CANCEL_OFFLINE");
	report(check_pages(p, n, 71, 0) < 0, 0, 0, "9. contents intact");

	/* 10, on the same pool. */
	sp_free(pool, p);
	EXPECT_ERR(sp_section_offline(pool, 2), EINVAL,
		   "10. sp_section_offline(2 of 2): -1 EINVAL");
	EXPECT_ERR(sp_section_offline(pool, 1000), EINVAL,
		   "10. sp_section_offline(1000): -1 EINVAL");
	EXPECT_ERR(sp_section_online(pool, 2), EINVAL, "10. sp_section_online(2 of 2): -1 EINVAL");
	EXPECT_ERR(sp_section_online(pool, 1), EINVAL,
		   "10. sp_section_online of an online section: -1 EINVAL");
	EXPECT_OK(sp_section_offline(pool, 1), "10. sp_section_offline(1) of an empty pool");
	EXPECT_ERR(sp_section_offline(pool, 1), EINVAL,
		   "10. sp_section_offline of an offline section: -1 EINVAL");
	v = stat_of(pool, "sections_online");
	report(v == 1, v, 0, "10. sections_online == 1");
	EXPECT_OK(sp_section_online(pool, 1), "10. sp_section_online(1)");
	EXPECT_ERR(sp_section_online(pool, 1), EINVAL,
		   "10. sp_section_online of it again: -1 EINVAL");
	v = stat_of(pool, "sections_online");
	report(v == 2, v, 0, "10. sections_online == 2");
out:
	sp_pool_destroy(pool);
}

/* ---- 11: memory policy ------------------------------------------------ */

static long count_on_node(sp_pool *pool, const unsigned char *p, size_t n, int node)
{
	return count_where(pool, p, n, sp_page_node, node);
}

static void test_mempolicy(unsigned flags, const char *tag)
{
	sp_pool *pool = make_pool(256 * 1024, 4, 2, SP_POOL_NO_KSMD | flags);
	const size_t n = 16;
	struct pair pr = { 0 };
	unsigned char *p;
	long v, on0, migrated;
	int kn, target;

	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create(4 x 256 KiB, 2 nodes)", tag))
		return;
	p = sp_alloc(pool, n * PG, 0);
	if (!report(p != NULL, 0, errno, "[%s] 11. sp_alloc(%zu pages)", tag, n))
		goto out;
	fill_pages(p, n, 81, 0);
	on0 = count_on_node(pool, p, n, 0);
	report(on0 == (long)n, on0, 0, "[%s] 11. the region's pages are on node 0", tag);
	migrated = stat_of(pool, "pages_migrated");
	EXPECT_OK(sp_mbind(pool, p, n * PG, SP_MPOL_BIND, 0x2, SP_MPOL_MF_MOVE),
		  "[%s] 11. sp_mbind(BIND, mask 0x2, MF_MOVE)", tag);
	v = count_on_node(pool, p, n, 1);
	report(v == (long)n, v, 0, "[%s] 11. all %zu pages now on node 1", tag, n);
	report(check_pages(p, n, 81, 0) < 0, 0, 0, "[%s] 11. content intact after the move", tag);
	v = stat_of(pool, "pages_migrated") - migrated;
	report(v >= on0 && v > 0, v, 0, "[%s] 11. pages_migrated grew by >= %ld", tag, on0);

	EXPECT_ERR(sp_mbind(pool, p, n * PG, 7, 0x1, 0), EINVAL, "[%s] 11. mode 7: -1 EINVAL", tag);
	EXPECT_ERR(sp_mbind(pool, p, n * PG, SP_MPOL_DEFAULT, 0x1, 0), EINVAL,
		   "[%s] 11. DEFAULT with a non-zero mask: -1 EINVAL", tag);
	EXPECT_ERR(sp_mbind(pool, p, n * PG, SP_MPOL_BIND, 0x4, SP_MPOL_MF_MOVE), EINVAL,
		   "[%s] 11. mask bit 2 with 2 nodes: -1 EINVAL", tag);
	v = count_on_node(pool, p, n, 1);
	report(v == (long)n, v, 0, "[%s] 11. the refused calls moved nothing", tag);

	if (!pair_alloc(pool, &pr, 16, 8, 83, tag) || !pair_merge(pool, &pr, tag))
		goto out_free;
	kn = sp_page_node(pool, pr.a);
	target = kn == 0 ? 1 : 0;
	v = count_on_node(pool, pr.a, pr.n, kn);
	report(v == (long)pr.n && count_ksm(pool, pr.a, pr.n, 1) == (long)pr.n, v, 0,
	       "[%s] 11. the KSM frames are on node %d", tag, kn);
	migrated = stat_of(pool, "pages_migrated");
	EXPECT_ERR(sp_mbind(pool, pr.a, (pr.n + pr.uniq) * PG, SP_MPOL_BIND, 1ul << target,
			    SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
		   EIO, "[%s] 11. BIND+MOVE+STRICT to node %d over KSM pages: -1 EIO", tag, target);
	v = count_on_node(pool, pr.a, pr.n, kn);
	report(v == (long)pr.n, v, 0, "[%s] 11. the KSM pages stay on node %d", tag, kn);
	v = count_ksm(pool, pr.a, pr.n, 1);
	report(v == (long)pr.n, v, 0, "[%s] 11. ... and stay merged", tag);
	v = count_on_node(pool, pr.a + pr.n * PG, pr.uniq, target);
	report(v == (long)pr.uniq, v, 0, "[%s] 11. the private pages moved to node %d", tag,
	       target);
	printf("# [%s] pages_migrated grew by %ld\n", tag,
	       stat_of(pool, "pages_migrated") - migrated);
	report(pair_intact(&pr, -1, -1), 0, 0, "[%s] 11. both regions read back", tag);
	pair_free(pool, &pr);
out_free:
	sp_free(pool, p);
out:
	sp_pool_destroy(pool);
}

/* ---- 12. swap ---------------------------------------------------------- */

static sp_pool *swap_pool(const char *path, size_t slots, unsigned flags)
{
	struct sp_pool_config cfg = { .section_size = SECTION,
				      .nr_sections = 4,
				      .swap_path = path,
				      .swap_size = slots * PG,
				      .flags = flags | SP_POOL_NO_KSMD };

	return sp_pool_create(&cfg);
}

/* A merged region out to swap and back: one slot per KSM frame, every byte. */
static void test_swap(void)
{
	char path[64];
	sp_pool *pool;
	unsigned char *a, *b;
	long res, sharing, free0;
	struct stat st;

	snprintf(path, sizeof(path), "/tmp/ksm_outside_swap.%d", getpid());
	pool = swap_pool(path, 1024, 0);
	if (!report(pool != NULL, 0, errno, "swap: sp_pool_create with a swap_path"))
		return;
	report(!stat(path, &st) && (st.st_mode & 0777) == 0600, (long)st.st_mode, errno,
	       "swap: the swap file exists, mode 0600");
	a = sp_alloc(pool, 128 * PG, SP_MERGEABLE);
	b = sp_alloc(pool, 128 * PG, SP_MERGEABLE);
	fill_pages(a, 128, 12, 0);
	fill_pages(b, 128, 12, 0);
	full_scan(pool);
	full_scan(pool);
	sharing = ksm_of(pool, "pages_sharing");
	report(sharing == 128, sharing, 0, "swap: the two regions merged (pages_sharing 128)");
	res = stat_of(pool, "bytes_resident");
	free0 = stat_of(pool, "frames_free");
	EXPECT_OK(sp_swap_out(pool, a, 128 * PG), "swap: sp_swap_out of the merged region");
	report(stat_of(pool, "swap_slots_used") == 128, stat_of(pool, "swap_slots_used"), 0,
	       "swap: swap_slots_used counts each KSM frame once (128, not 256)");
	report(stat_of(pool, "frames_free") == free0 + 128, stat_of(pool, "frames_free"), 0,
	       "swap: the 128 KSM frames are free for others while swapped");
	report(sp_page_is_ksm(pool, b + 7 * PG) == 1, sp_page_is_ksm(pool, b + 7 * PG), 0,
	       "swap: a swapped page is still a merged page");
	report(stat_of(pool, "bytes_resident") <= res - 128 * (long)PG,
	       stat_of(pool, "bytes_resident"), 0, "swap: bytes_resident fell by 128 pages");
	report(check_pages(b, 128, 12, 0) < 0 && check_pages(a, 128, 12, 0) < 0, 0, 0,
	       "swap: every byte reads back, through both sharers");
	report(stat_of(pool, "faults_swapin") == 128, stat_of(pool, "faults_swapin"), 0,
	       "swap: each frame was read back once for its two sharers");
	report(stat_of(pool, "swap_slots_used") == 0, stat_of(pool, "swap_slots_used"), 0,
	       "swap: the slots are free again");
	sp_pool_destroy(pool);
	report(access(path, F_OK) == -1, 0, errno, "swap: the swap file is gone with the pool");
}

/*
 * Reclaim: 1.5 times the pool allocated (sp_alloc never says ENOMEM while
 * swap has room), written and read back with every byte right, the pool
 * never holding more than its size; the watermarks are knobs; sp_reclaim
 * swaps cold pages out on demand.
 */
static void test_swap_reclaim(void)
{
	const size_t pool_pages = 4 * SECTION / PG, per = SECTION / PG;
	unsigned char *r[6];
	char path[64];
	sp_pool *pool;
	long v = -1;
	bool ok = true;

	snprintf(path, sizeof(path), "/tmp/ksm_outside_reclaim.%d", getpid());
	pool = swap_pool(path, 2 * pool_pages, 0);
	if (!report(pool != NULL, 0, errno, "reclaim: a pool with swap"))
		return;
	for (unsigned k = 0; k < 6; k++) {
		r[k] = sp_alloc(pool, per * PG, 0);
		ok &= r[k] != NULL;
	}
	if (!report(ok, 0, errno, "reclaim: sp_alloc of 1.5x the pool succeeds")) {
		sp_pool_destroy(pool);
		return;
	}
	for (unsigned k = 0; k < 6; k++)
		fill_pages(r[k], per, 20 + k, 0);
	for (unsigned k = 0; k < 6; k++)
		ok &= check_pages(r[k], per, 20 + k, 0) < 0;
	report(ok, 0, 0, "reclaim: every byte of 1.5x the pool reads back");
	report(stat_of(pool, "bytes_resident") <= (long)(pool_pages * PG),
	       stat_of(pool, "bytes_resident"), 0,
	       "reclaim: the pool never holds more than its size");
	report(stat_of(pool, "reclaim_pages") > 0 && stat_of(pool, "swap_slots_used") > 0,
	       stat_of(pool, "reclaim_pages"), 0, "reclaim: pages went to swap to make room");
	EXPECT_OK(sp_tune(pool, "swap.low_watermark", 100), "reclaim: sp_tune swap.low_watermark");
	report(!sp_tune_get(pool, "swap.low_watermark", &v) && v == 100, v, errno,
	       "reclaim: sp_tune_get reads it back");
	report(sp_tune(pool, "swap.nonsense", 1) == -1 && errno == EINVAL, 0, errno,
	       "reclaim: an unknown knob is EINVAL");
	v = sp_reclaim(pool, 64);
	report(v == 64, v, errno, "reclaim: sp_reclaim(64) frees 64 frames");
	for (unsigned k = 0; k < 6; k++)
		ok &= check_pages(r[k], per, 20 + k, 0) < 0;
	report(ok, 0, 0, "reclaim: and every byte still reads back");
	sp_pool_destroy(pool);
}

/* A damaged swap file: SIGBUS for the thread that touches the page, never wrong data. */
static void test_swap_damaged(void)
{
	char path[64];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "/tmp/ksm_outside_dmg.%d", getpid());
	fflush(stdout);
	pid = fork();
	if (!pid) {
		sp_pool *pool = swap_pool(path, 64, 0);
		unsigned char *a, junk[256];
		int fd;

		signal(SIGBUS, SIG_DFL);
		if (!pool || !(a = sp_alloc(pool, 16 * PG, 0)))
			_exit(10);
		fill_pages(a, 16, 13, 0);
		if (sp_swap_out(pool, a, 16 * PG))
			_exit(11);
		memset(junk, 0xa5, sizeof(junk));
		fd = open(path, O_WRONLY);
		for (int slot = 0; fd >= 0 && slot < 64; slot++) /* every slot damaged */
			if (pwrite(fd, junk, sizeof(junk), (off_t)slot * (off_t)PG + 512) < 0)
				_exit(12);
		if (fd < 0)
			_exit(12);
		close(fd);
		if (page_is(a, 13, 0)) /* SIGBUS on this read, or wrong data: never */
			_exit(13);
		_exit(14); /* wrong bytes were seen */
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		report(false, pid, errno, "swap: damaged slot (fork)");
		return;
	}
	unlink(path);
	report(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
	       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), 0,
	       "swap: a damaged slot ends in SIGBUS, never in wrong data");
}

int main(void)
{
	static const struct {
		unsigned flags;
		const char *tag;
	} modes[] = { { 0, "uffd" }, { SP_POOL_SIGSEGV, "sigsegv" } };

	for (unsigned i = 0; i < 2; i++) {
		test_merge(modes[i].flags, modes[i].tag);
		test_unmerge_nomem(modes[i].flags, modes[i].tag);
		test_zero_pages(modes[i].flags, modes[i].tag);
		test_domains(modes[i].flags, modes[i].tag, i == 0);
		test_ksmd(modes[i].flags, modes[i].tag);
		test_hotremove(modes[i].flags, modes[i].tag);
		test_mempolicy(modes[i].flags, modes[i].tag);
	}
	test_notifier();
	test_no_room();
	test_swap();
	test_swap_reclaim();
	test_swap_damaged();
	printf("%u passed, %u failed\n", nr_checks - nr_failed, nr_failed);
	return nr_failed ? 1 : 0;
}
