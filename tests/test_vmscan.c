/* SPDX-License-Identifier: MIT */
/*
 * Reclaim under pressure: a working set bigger than the pool runs correctly
 * (sp_alloc never says ENOMEM while swap has room, every byte comes back);
 * the clock takes cold pages before hot ones; the watermarks wake the
 * reclaim thread; pages with no frame get one at first touch, also from
 * read(2); writers, ksmd and offlines race with reclaim and lose nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "pool.h"

#define SECTION (4ul << 20)
#define SECTION_PAGES (SECTION / SP_PAGE_SIZE)

static char path[64];

/* nr_sections of section bytes, swap_pages of swap. */
static sp_pool *swap_pool_of(size_t section, unsigned nr_sections, size_t swap_pages,
			     unsigned flags)
{
	struct sp_pool_config cfg = { .section_size = section,
				      .nr_sections = nr_sections,
				      .swap_path = path,
				      .swap_size = swap_pages * SP_PAGE_SIZE,
				      .flags = flags };
	sp_pool *pool;

	snprintf(path, sizeof(path), "/tmp/sp-vmscan-%d", getpid());
	unlink(path); /* a failed test's pool was not destroyed */
	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	return pool;
}

/* nr_sections of 4 MiB, swap_pages of swap. */
static sp_pool *reclaim_pool(unsigned nr_sections, size_t swap_pages, unsigned flags)
{
	return swap_pool_of(SECTION, nr_sections, swap_pages, flags);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 1.5 times the pool, allocated, written and read back twice over. */
static void bigger_than_pool(void **state)
{
	sp_pool *pool = reclaim_pool(4, 8 * SECTION_PAGES, SP_POOL_NO_KSMD);
	unsigned long pages = 6 * SECTION_PAGES, per = SECTION_PAGES / 2;
	char *r[12];

	(void)state;
	for (unsigned k = 0; k < pages / per; k++) {
		r[k] = sp_alloc(pool, per * SP_PAGE_SIZE, 0);
		assert_non_null(r[k]);
		for (unsigned long i = 0; i < per; i++)
			fill_page(r[k] + i * SP_PAGE_SIZE, k * per + i);
	}
	for (int round = 0; round < 2; round++)
		for (unsigned k = 0; k < pages / per; k++)
			for (unsigned long i = 0; i < per; i++)
				assert_int_equal(check_page(r[k] + i * SP_PAGE_SIZE, k * per + i),
						 0);
	assert_true(stat_of(pool, "swap_pages_out") > 0);
	assert_true(stat_of(pool, "reclaim_pages") > 0);
	assert_true(stat_of(pool, "faults_swapin") > 0);
	assert_true(stat_of(pool, "faults_alloc") > 0); /* the regions made lazily */
	/* Never more memory than the pool: that is the point. */
	assert_true(stat_of(pool, "bytes_resident") <= (long)(4 * SECTION));
	for (unsigned k = 0; k < pages / per; k++)
		assert_int_equal(sp_free(pool, r[k]), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	assert_int_equal(stat_of(pool, "frames_free"), stat_of(pool, "frames_total"));
	sp_pool_destroy(pool);
}

/* ENOMEM only once frames and swap together cannot hold it. */
static void alloc_until_full(void **state)
{
	sp_pool *pool = reclaim_pool(1, SECTION_PAGES, SP_POOL_NO_KSMD);
	char *a, *b, *c;

	(void)state;
	a = sp_alloc(pool, SECTION, 0); /* takes every frame */
	assert_non_null(a);
	b = sp_alloc(pool, SECTION / 2, 0); /* lazily: half the swap */
	assert_non_null(b);
	assert_int_equal(stat_of(pool, "pages_committed"), 3 * SECTION_PAGES / 2);
	c = sp_alloc(pool, SECTION, 0); /* more than frames and swap have left */
	assert_null(c);
	assert_int_equal(errno, ENOMEM);
	memset(a, 1, SECTION);
	memset(b, 2, SECTION / 2);
	for (size_t i = 0; i < SECTION; i += SP_PAGE_SIZE)
		assert_int_equal(a[i], 1);
	for (size_t i = 0; i < SECTION / 2; i += SP_PAGE_SIZE)
		assert_int_equal(b[i], 2);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(sp_free(pool, b), 0);
	sp_pool_destroy(pool);

	/* Without swap, as before: ENOMEM when the frames are short. */
	pool = sp_pool_create(&(struct sp_pool_config){
		.section_size = SECTION, .nr_sections = 1, .flags = SP_POOL_NO_KSMD });
	assert_non_null(pool);
	a = sp_alloc(pool, SECTION, 0);
	assert_non_null(a);
	assert_null(sp_alloc(pool, SP_PAGE_SIZE, 0));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(sp_reclaim(pool, 1), -1);
	assert_int_equal(errno, ENOSPC);
	sp_pool_destroy(pool);
}

/* A small pool for the commitment: n sections of 1 MiB, swap_pages of swap. */
static sp_pool *commit_pool(unsigned n, size_t swap_pages)
{
	return swap_pool_of(256 * SP_PAGE_SIZE, n, swap_pages, SP_POOL_NO_KSMD);
}

/* Every page of a region written, then read back. */
static void fill_check(char *p, unsigned long n, uint64_t seed)
{
	for (unsigned long i = 0; i < n; i++)
		fill_page(p + i * SP_PAGE_SIZE, seed + i);
	for (unsigned long i = 0; i < n; i++)
		assert_int_equal(check_page(p + i * SP_PAGE_SIZE, seed + i), 0);
}

/*
 * The commitment holds on every sp_alloc: one that finds its frames free at
 * once may not take them from pages committed earlier. It used to: a lazy
 * region of frames + slots - 1 pages, then 512 pages with frames, and
 * filling the first region was 511 SIGBUSes.
 */
static void commit_every_alloc(void **state)
{
	sp_pool *pool = commit_pool(4, 1024);
	long frames = stat_of(pool, "frames_total"), n = frames + 1024 - COMMIT_SLACK - 1;
	char *a = sp_alloc(pool, (size_t)n * SP_PAGE_SIZE, 0), *b;

	(void)state;
	assert_non_null(a);
	errno = 0;
	assert_null(sp_alloc(pool, (size_t)(frames / 2) * SP_PAGE_SIZE, 0));
	assert_int_equal(errno, ENOMEM);
	b = sp_alloc(pool, SP_PAGE_SIZE, 0); /* the last page that fits */
	assert_non_null(b);
	assert_null(sp_alloc(pool, SP_PAGE_SIZE, SP_POPULATE));
	assert_int_equal(stat_of(pool, "pages_committed"), frames + 1024 - COMMIT_SLACK);
	fill_check(a, (unsigned long)n, 1);
	fill_check(b, 1, 0);
	assert_int_equal(sp_free(pool, b), 0);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(stat_of(pool, "pages_committed"), 0);
	sp_pool_destroy(pool);
}

/*
 * An offline that would leave committed pages without room fails with
 * ENOMEM before it moves anything (it used to succeed, and filling the
 * region was 255 SIGBUSes); once the pages fit, it goes.
 */
static void commit_offline(void **state)
{
	sp_pool *pool = commit_pool(4, 1024);
	long frames = stat_of(pool, "frames_total"), n = frames + 1024 - COMMIT_SLACK - 1;
	long m = frames - 256 + 1024 - COMMIT_SLACK; /* what fits without section 3 */
	char *a = sp_alloc(pool, (size_t)n * SP_PAGE_SIZE, 0), *b;

	(void)state;
	assert_non_null(a);
	errno = 0;
	assert_int_equal(sp_section_offline(pool, 3), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(stat_of(pool, "frames_total"), frames);
	fill_check(a, (unsigned long)n, 1);
	assert_int_equal(sp_free(pool, a), 0);
	b = sp_alloc(pool, (size_t)m * SP_PAGE_SIZE, 0);
	assert_non_null(b);
	assert_int_equal(sp_section_offline(pool, 3), 0);
	/* And while a section is going, sp_alloc counts without it. */
	assert_null(sp_alloc(pool, SP_PAGE_SIZE, 0));
	assert_int_equal(errno, ENOMEM);
	fill_check(b, (unsigned long)m, 7);
	sp_pool_destroy(pool);
}

/*
 * The most the pool grants, every page written and read back twice: a
 * swap-in holds its slot until its frame is mapped, so frames and slots
 * exactly full left the last reads neither a frame nor a slot to reclaim
 * into (SIGBUS); the commitment keeps slack for it.
 */
static void commit_full_reads_back(void **state)
{
	sp_pool *pool = commit_pool(2, 512);
	long n = stat_of(pool, "frames_total") + 512 + 1;
	char *a = NULL;

	(void)state;
	while (!a && --n > 0)
		a = sp_alloc(pool, (size_t)n * SP_PAGE_SIZE, 0);
	assert_non_null(a);
	fill_check(a, (unsigned long)n, 3);
	for (long i = 0; i < n; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, 3 + (uint64_t)i), 0);
	sp_pool_destroy(pool);
}

/* The clock: pages touched again since its hand passed stay; the others go. */
static void cold_before_hot(void **state)
{
	sp_pool *pool = reclaim_pool(4, 8 * SECTION_PAGES, SP_POOL_NO_KSMD);
	unsigned long nh = 512, nc = 2048, kept = 0, got;
	char *hot = sp_alloc(pool, nh * SP_PAGE_SIZE, 0);
	char *cold = sp_alloc(pool, nc * SP_PAGE_SIZE, 0);

	(void)state;
	assert_non_null(hot);
	assert_non_null(cold);
	for (unsigned long i = 0; i < nh; i++)
		fill_page(hot + i * SP_PAGE_SIZE, i);
	for (unsigned long i = 0; i < nc; i++)
		fill_page(cold + i * SP_PAGE_SIZE, 10000 + i);
	/* The first turn takes every page's access away; then one page goes. */
	assert_int_equal(sp_reclaim(pool, 1), 1);
	for (unsigned long i = 0; i < nh; i++)
		assert_int_equal(check_page(hot + i * SP_PAGE_SIZE, i), 0);
	got = (unsigned long)sp_reclaim(pool, 1024);
	assert_int_equal(got, 1024);
	for (unsigned long i = 0; i < nh; i++)
		kept += sp_page_section(pool, hot + i * SP_PAGE_SIZE) >= 0;
	assert_int_equal(kept, nh);
	assert_int_equal(stat_of(pool, "swap_pages_out"), 1025);
	for (unsigned long i = 0; i < nc; i++)
		assert_int_equal(check_page(cold + i * SP_PAGE_SIZE, 10000 + i), 0);
	/* Pages never touched go without a slot. */
	{
		char *fresh = sp_alloc(pool, 256 * SP_PAGE_SIZE, 0);
		long slots = stat_of(pool, "swap_slots_used");

		assert_non_null(fresh);
		assert_int_equal(sp_reclaim(pool, 256), 256);
		assert_int_equal(stat_of(pool, "swap_slots_used"), slots);
		assert_int_equal(page_is_zero(fresh + 7 * SP_PAGE_SIZE), 1);
	}
	sp_pool_destroy(pool);
}

/* KSM frames are reclaimed too: cold ones go as one slot, the pages stay merged. */
static void ksm_frames_reclaimed(void **state)
{
	sp_pool *pool = reclaim_pool(4, 8 * SECTION_PAGES, SP_POOL_NO_KSMD);
	unsigned long n = 256;
	char *a = sp_alloc(pool, n * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, n * SP_PAGE_SIZE, SP_MERGEABLE);
	long free0;

	(void)state;
	for (unsigned long i = 0; i < n; i++) {
		fill_page(a + i * SP_PAGE_SIZE, i);
		fill_page(b + i * SP_PAGE_SIZE, i);
	}
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), n);
	free0 = stat_of(pool, "frames_free");
	assert_int_equal(sp_reclaim(pool, n), n);
	assert_int_equal(stat_of(pool, "frames_free"), free0 + (long)n);
	assert_int_equal(stat_of(pool, "swap_slots_used"), n); /* one per frame */
	assert_int_equal(ksm_of(pool, "pages_sharing"), n);
	for (unsigned long i = 0; i < n; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, i), 0);
	}
	assert_int_equal(stat_of(pool, "faults_swapin"), n); /* once per frame */
	assert_int_equal(ksm_of(pool, "pages_shared"), n);
	sp_pool_destroy(pool);
}

static void knobs(void **state)
{
	sp_pool *pool = reclaim_pool(4, 4 * SECTION_PAGES, SP_POOL_NO_KSMD);
	long v;

	(void)state;
	assert_int_equal(sp_tune_get(pool, "swap.low_watermark", &v), 0);
	assert_int_equal(v, 4 * SECTION_PAGES / 64);
	assert_int_equal(sp_tune_get(pool, "swap.high_watermark", &v), 0);
	assert_int_equal(v, 2 * 4 * SECTION_PAGES / 64);
	assert_int_equal(sp_tune(pool, "swap.low_watermark", 1000), 0);
	assert_int_equal(sp_tune(pool, "swap.high_watermark", 500), 0);
	assert_int_equal(sp_tune_get(pool, "swap.high_watermark", &v), 0);
	assert_int_equal(v, 1000); /* never below low */
	assert_int_equal(sp_tune(pool, "swap.low_watermark", -1), 0);
	assert_int_equal(sp_tune_get(pool, "swap.low_watermark", &v), 0);
	assert_int_equal(v, 64);
	assert_int_equal(sp_tune(pool, "ksm.pages_to_scan", 77), 0);
	assert_int_equal(sp_tune_get(pool, "ksm.pages_to_scan", &v), 0);
	assert_int_equal(v, 77);
	assert_int_equal(sp_tune(pool, "swap.low_watermark", -2), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_tune(pool, "swap.nonsense", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_tune(NULL, "swap.low_watermark", 1), -1);
	assert_int_equal(sp_tune_get(pool, "swap.low_watermark", NULL), -1);
	assert_int_equal(sp_reclaim(NULL, 1), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);

	/* SIGSEGV mode cannot bring pages back: no reclaim, no frameless regions. */
	pool = reclaim_pool(1, SECTION_PAGES, SP_POOL_NO_KSMD | SP_POOL_SIGSEGV);
	assert_int_equal(sp_reclaim(pool, 1), -1);
	assert_int_equal(errno, ENOTSUP);
	assert_non_null(sp_alloc(pool, SECTION, 0));
	assert_null(sp_alloc(pool, SP_PAGE_SIZE, 0));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(stat_of(pool, "reclaim_wakeups"), 0);
	sp_pool_destroy(pool);
}

/* Below the low watermark the thread wakes, and stops at the high one. */
static void thread_keeps_high_watermark(void **state)
{
	sp_pool *pool = reclaim_pool(4, 8 * SECTION_PAGES, SP_POOL_NO_KSMD);
	unsigned long n = 3 * SECTION_PAGES;
	char *a = sp_alloc(pool, n * SP_PAGE_SIZE, 0);
	double t0;

	(void)state;
	assert_non_null(a);
	for (unsigned long i = 0; i < n; i++)
		fill_page(a + i * SP_PAGE_SIZE, i);
	assert_int_equal(stat_of(pool, "reclaim_wakeups"), 0);
	/*
	 * The high mark first: a low mark set first wakes the thread at once,
	 * and on a loaded machine it could aim at the automatic high mark
	 * before the test set its own (a run ended 1,024 frames past it).
	 */
	assert_int_equal(sp_tune(pool, "swap.high_watermark", 2 * SECTION_PAGES), 0);
	assert_int_equal(sp_tune(pool, "swap.low_watermark", (long)(1.5 * SECTION_PAGES)), 0);
	t0 = now();
	while (stat_of(pool, "frames_free") < (long)(2 * SECTION_PAGES) && now() - t0 < 20)
		usleep(10000);
	assert_true(stat_of(pool, "frames_free") >= (long)(2 * SECTION_PAGES));
	assert_true(stat_of(pool, "reclaim_wakeups") > 0);
	/* It stops there, not far past it. */
	usleep(300000);
	assert_true(stat_of(pool, "frames_free") < (long)(2 * SECTION_PAGES + 1024));
	for (unsigned long i = 0; i < n; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, i), 0);
	sp_pool_destroy(pool);
}

/* read(2) into pages that have no frame: swapped out, and never given one. */
static void read_into_frameless(void **state)
{
	sp_pool *pool = reclaim_pool(1, 2 * SECTION_PAGES, SP_POOL_NO_KSMD);
	char *a, *b, file[64], buf[3 * SP_PAGE_SIZE];
	int fd;

	(void)state;
	/* No reclaim thread: it would give b frames from a's untouched pages. */
	assert_int_equal(sp_tune(pool, "swap.low_watermark", 0), 0);
	a = sp_alloc(pool, SECTION, 0);
	b = sp_alloc(pool, 16 * SP_PAGE_SIZE, 0);
	assert_non_null(a);
	assert_non_null(b); /* lazily: the first region took every frame */
	assert_int_equal(sp_page_section(pool, b), -1);
	for (size_t i = 0; i < SECTION; i += SP_PAGE_SIZE)
		fill_page(a + i, i);
	assert_int_equal(sp_swap_out(pool, a, SECTION), 0);
	snprintf(file, sizeof(file), "/tmp/sp-vmscan-read-%d", getpid());
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	unlink(file);
	memset(buf, 0x6b, sizeof(buf));
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	/* Straddles a swapped page and the next: both come back, then take the bytes. */
	assert_int_equal(pread(fd, a + 5 * SP_PAGE_SIZE + 100, 2 * SP_PAGE_SIZE, 0),
			 2 * SP_PAGE_SIZE);
	assert_int_equal(pread(fd, b + 3 * SP_PAGE_SIZE, SP_PAGE_SIZE, 0), SP_PAGE_SIZE);
	close(fd);
	assert_int_equal(check_page(a + 4 * SP_PAGE_SIZE, 4 * SP_PAGE_SIZE), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(a[5 * SP_PAGE_SIZE + i], ((const char *)a)[5 * SP_PAGE_SIZE + i]);
	assert_int_equal((unsigned char)a[5 * SP_PAGE_SIZE + 100], 0x6b);
	assert_int_equal((unsigned char)a[7 * SP_PAGE_SIZE + 99], 0x6b);
	assert_int_equal((unsigned char)b[3 * SP_PAGE_SIZE + 4095], 0x6b);
	assert_int_equal(page_is_zero(b + 4 * SP_PAGE_SIZE), 1);
	sp_pool_destroy(pool);
}

/* Mappings of /proc/self/maps that lie in [start, end). */
static long maps_within(const char *start, const char *end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;
	char line[512];
	long n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo >= (unsigned long)start &&
		    hi <= (unsigned long)end)
			n++;
	fclose(f);
	return n;
}

/*
 * First touches in random order of a region given out without frames: a
 * mapping per 16-page block, not per page (vm.max_map_count counts them).
 */
static void first_touch_blocks(void **state)
{
	sp_pool *pool = reclaim_pool(1, 4 * SECTION_PAGES, SP_POOL_NO_KSMD);
	unsigned long n = 2048, touched = 512, order[512];
	char *full, *lazy;
	long maps;

	(void)state;
	assert_int_equal(sp_tune(pool, "swap.low_watermark", 0), 0); /* no reclaim meanwhile */
	full = sp_alloc(pool, SECTION / 4, 0);
	lazy = sp_alloc(pool, n * SP_PAGE_SIZE, 0); /* more than the 3/4 left */
	assert_non_null(full);
	assert_non_null(lazy);
	assert_int_equal(sp_page_section(pool, lazy), -1);
	/* The first 512 pages (what free frames hold), in a fixed shuffled order. */
	for (unsigned long i = 0; i < touched; i++)
		order[i] = i;
	for (unsigned long i = touched - 1; i > 0; i--) {
		unsigned long j = (i * 2654435761ul) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned long i = 0; i < touched; i++)
		lazy[order[i] * SP_PAGE_SIZE] = (char)(order[i] | 1);
	maps = maps_within(lazy, lazy + n * SP_PAGE_SIZE);
	printf("# %ld mappings for %lu pages touched in random order\n", maps, touched);
	assert_true(maps <= 2 * (long)(touched / 16) + 2);
	assert_int_equal(stat_of(pool, "faults_alloc"), (long)touched);
	for (unsigned long i = 0; i < touched; i++)
		assert_int_equal(lazy[order[i] * SP_PAGE_SIZE], (char)(order[i] | 1));
	assert_int_equal(page_is_zero(lazy + 600 * SP_PAGE_SIZE), 1);
	sp_pool_destroy(pool);
}

/* ---- the race ---------------------------------------------------------- */

#define RACE_PAGES (6 * SECTION_PAGES)
#define WRITERS 2

struct race {
	sp_pool *pool;
	char *mem;
	_Atomic uint64_t version[RACE_PAGES]; /* what each page last had written */
	_Atomic bool stop;
	_Atomic long bad;
	_Atomic long offlines, offline_fails, offline_busy;
};

static uint64_t seed_of(unsigned long page, uint64_t version)
{
	/* Half the pages are alike (page % 64): ksmd merges them. */
	return version ? (page << 20) + version : page % 64;
}

struct writer_arg {
	struct race *rc;
	unsigned id;
};

static void *writer_run(void *arg)
{
	struct writer_arg *wa = arg;
	struct race *rc = wa->rc;
	uint64_t state = 0x9e3779b97f4a7c15ull * (wa->id + 1);

	while (!atomic_load(&rc->stop)) {
		unsigned long p;
		uint64_t v;

		state = state * 6364136223846793005ull + 1442695040888963407ull;
		p = (unsigned long)((state >> 24) % (RACE_PAGES / WRITERS)) * WRITERS + wa->id;
		/* Read back what it had, then write something new or something alike. */
		v = atomic_load(&rc->version[p]);
		if (check_page(rc->mem + p * SP_PAGE_SIZE, seed_of(p, v)))
			atomic_fetch_add(&rc->bad, 1);
		v = (state >> 60) < 4 ? 0 : v + 1;
		fill_page(rc->mem + p * SP_PAGE_SIZE, seed_of(p, v));
		atomic_store(&rc->version[p], v);
	}
	return NULL;
}

static void *offliner(void *arg)
{
	struct race *rc = arg;

	while (!atomic_load(&rc->stop)) {
		unsigned s = 1 + (unsigned)(atomic_load(&rc->offlines) % 3);

		if (sp_section_offline(rc->pool, s)) {
			/* The pool is full: no room to move it is an honest answer. */
			if (errno != ENOMEM && errno != EBUSY)
				atomic_fetch_add(&rc->bad, 1);
			atomic_fetch_add(&rc->offline_busy, errno == EBUSY);
			atomic_fetch_add(&rc->offline_fails, 1);
		} else if (sp_section_online(rc->pool, s)) {
			atomic_fetch_add(&rc->bad, 1);
		}
		atomic_fetch_add(&rc->offlines, 1);
		usleep(20000);
	}
	return NULL;
}

static void race_with_reclaim(void **state)
{
	struct race *rc = calloc(1, sizeof(*rc));
	pthread_t w[WRITERS], off;
	struct writer_arg wa[WRITERS];

	(void)state;
	assert_non_null(rc);
	rc->pool = reclaim_pool(4, 8 * SECTION_PAGES, 0);
	rc->mem = sp_alloc(rc->pool, RACE_PAGES * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(rc->mem);
	assert_int_equal(sp_ksm_set(rc->pool, "sleep_millisecs", 1), 0);
	assert_int_equal(sp_ksm_set(rc->pool, "pages_to_scan", 1000), 0);
	/*
	 * Filled with ksmd stopped: 1.5 times the pool must go through
	 * reclaim, however fast ksmd would merge it (a slow, sanitized fill
	 * lets it merge everything as it goes).
	 */
	assert_int_equal(sp_ksm_set(rc->pool, "run", 0), 0);
	for (unsigned long p = 0; p < RACE_PAGES; p++)
		fill_page(rc->mem + p * SP_PAGE_SIZE, seed_of(p, 0));
	assert_int_equal(sp_ksm_set(rc->pool, "run", 1), 0);
	for (unsigned i = 0; i < WRITERS; i++) {
		wa[i] = (struct writer_arg){ rc, i };
		assert_int_equal(pthread_create(&w[i], NULL, writer_run, &wa[i]), 0);
	}
	assert_int_equal(pthread_create(&off, NULL, offliner, rc), 0);
	usleep(3000000);
	atomic_store(&rc->stop, true);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(off, NULL);
	for (unsigned long p = 0; p < RACE_PAGES; p++)
		if (check_page(rc->mem + p * SP_PAGE_SIZE,
			       seed_of(p, atomic_load(&rc->version[p]))))
			atomic_fetch_add(&rc->bad, 1);
	printf("# race: %ld offlines (%ld refused, %ld of them busy), %ld pages reclaimed, "
	       "%ld swapped in, %ld merged\n",
	       atomic_load(&rc->offlines), atomic_load(&rc->offline_fails),
	       atomic_load(&rc->offline_busy), stat_of(rc->pool, "reclaim_pages"),
	       stat_of(rc->pool, "faults_swapin"), ksm_of(rc->pool, "pages_sharing"));
	assert_int_equal(atomic_load(&rc->bad), 0);
	assert_true(stat_of(rc->pool, "reclaim_pages") > 0);
	assert_true(stat_of(rc->pool, "bytes_resident") <= (long)(4 * SECTION));
	sp_pool_destroy(rc->pool);
	free(rc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bigger_than_pool),
		cmocka_unit_test(alloc_until_full),
		cmocka_unit_test(commit_every_alloc),
		cmocka_unit_test(commit_offline),
		cmocka_unit_test(commit_full_reads_back),
		cmocka_unit_test(cold_before_hot),
		cmocka_unit_test(ksm_frames_reclaimed),
		cmocka_unit_test(knobs),
		cmocka_unit_test(thread_keeps_high_watermark),
		cmocka_unit_test(read_into_frameless),
		cmocka_unit_test(first_touch_blocks),
		cmocka_unit_test(race_with_reclaim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
