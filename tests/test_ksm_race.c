/* SPDX-License-Identifier: MIT */
/*
 * KSM against real threads: writers racing merges and copy-on-write, regions
 * freed and unmerged while the scanner thread works, migration racing the
 * scanner, run flipping under all of them. An oracle checks every page at
 * the end.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "migrate.h"
#include "pool.h"

#define PAGES 256
#define WRITERS 4

struct race {
	sp_pool *pool;
	char *mem;
	_Atomic int stop;
	_Atomic long torn;
	uint64_t last[PAGES]; /* each page has one writer: its own slot */
};

struct warg {
	struct race *rc;
	int id;
};

/*
 * Writer k rewrites its pages with contents from a small set, so that they
 * keep becoming identical (and merging) and keep being written (and copied),
 * or with a content of the page's own.
 */
static void *writer(void *p)
{
	struct warg *w = p;
	struct race *rc = w->rc;
	unsigned seed = (unsigned)w->id + 1;

	while (!atomic_load(&rc->stop)) {
		int pg = w->id + WRITERS * (int)(rand_r(&seed) % (PAGES / WRITERS));
		uint64_t v = rand_r(&seed) % 8;
		/* Half the time a content of its own: those pages stay private. */
		if (v >= 4)
			v = 1000 + (uint64_t)pg;
		char *page = rc->mem + (size_t)pg * SP_PAGE_SIZE;

		fill_page(page, v);
		if (check_page(page, v))
			atomic_fetch_add(&rc->torn, 1);
		rc->last[pg] = v;
	}
	return NULL;
}

static void start_writers(struct race *rc, pthread_t *t, struct warg *args)
{
	for (int i = 0; i < PAGES; i++) {
		fill_page(rc->mem + (size_t)i * SP_PAGE_SIZE, (uint64_t)(i % 4));
		rc->last[i] = (uint64_t)(i % 4);
	}
	for (int k = 0; k < WRITERS; k++) {
		args[k] = (struct warg){ rc, k };
		assert_int_equal(pthread_create(&t[k], NULL, writer, &args[k]), 0);
	}
}

static void stop_and_check(struct race *rc, pthread_t *t)
{
	atomic_store(&rc->stop, 1);
	for (int k = 0; k < WRITERS; k++)
		pthread_join(t[k], NULL);
	assert_int_equal(atomic_load(&rc->torn), 0);
	for (int i = 0; i < PAGES; i++)
		assert_int_equal(check_page(rc->mem + (size_t)i * SP_PAGE_SIZE, rc->last[i]), 0);
}

/* Pages holding one of the four shared contents, once there are at least two of it. */
static long shared_pages(struct race *rc)
{
	long count[4] = { 0 }, n = 0;

	for (int i = 0; i < PAGES; i++)
		if (rc->last[i] < 4)
			count[rc->last[i]]++;
	for (int v = 0; v < 4; v++)
		n += count[v] > 1 ? count[v] : 0;
	return n;
}

static void writers_vs_merges(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct race rc = { .pool = pool_small(mode, 2) };
	struct warg args[WRITERS];
	pthread_t t[WRITERS];
	long merged_max = 0;

	rc.mem = sp_alloc(rc.pool, PAGES * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(rc.mem);
	start_writers(&rc, t, args);
	for (int i = 0; i < 300; i++) {
		sp_ksm_scan(rc.pool, PAGES / 2);
		if (ksm_of(rc.pool, "pages_sharing") > merged_max)
			merged_max = ksm_of(rc.pool, "pages_sharing");
	}
	stop_and_check(&rc, t);
	/* It did merge while racing, and settles once the writers stop. */
	assert_true(merged_max > 0);
	/* Copied pages come back into frames and merge again. */
	for (int i = 0; i < 8; i++)
		full_scan(rc.pool);
	assert_int_equal(ksm_of(rc.pool, "pages_shared") + ksm_of(rc.pool, "pages_sharing"),
			 shared_pages(&rc));
	for (int i = 0; i < PAGES; i++)
		assert_int_equal(check_page(rc.mem + (size_t)i * SP_PAGE_SIZE, rc.last[i]), 0);
	sp_pool_destroy(rc.pool);
}

/* ksmd merges while writers write and a thread flips ranges unmergeable. */
static void unmerge_vs_ksmd(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct sp_pool_config cfg = { .section_size = 4 << 20, .nr_sections = 2, .flags = mode };
	struct race rc = { .pool = sp_pool_create(&cfg) };
	struct warg args[WRITERS];
	pthread_t t[WRITERS];

	assert_non_null(rc.pool);
	assert_int_equal(sp_ksm_set(rc.pool, "sleep_millisecs", 0), 0);
	assert_int_equal(sp_ksm_set(rc.pool, "pages_to_scan", 64), 0);
	rc.mem = sp_alloc(rc.pool, PAGES * SP_PAGE_SIZE, SP_MERGEABLE);
	start_writers(&rc, t, args);
	for (int i = 0; i < 200; i++) {
		char *range = rc.mem + (size_t)(i % 8) * 32 * SP_PAGE_SIZE;
		int adv = i % 2 ? SP_MADV_MERGEABLE : SP_MADV_UNMERGEABLE;

		assert_int_equal(sp_madvise(rc.pool, range, 32 * SP_PAGE_SIZE, adv), 0);
		usleep(200);
	}
	stop_and_check(&rc, t);
	sp_pool_destroy(rc.pool);
}

struct churn {
	sp_pool *pool;
	int id;
	_Atomic long *bad;
};

static bool scanned(sp_pool *pool)
{
	return ksm_of(pool, "pages_scanned") > 0;
}

/* Regions with the same content come and go while ksmd merges them. */
static void *churner(void *p)
{
	struct churn *c = p;

	/*
	 * At least 40 rounds, and on until ksmd has scanned some of them: on a
	 * loaded machine (sanitizers, other jobs) 40 rounds can end before the
	 * scanner first runs, and then nothing raced.
	 */
	for (int round = 0; round < 40 || (round < 40000 && !scanned(c->pool)); round++) {
		char *r = sp_alloc(c->pool, 32 * SP_PAGE_SIZE, SP_MERGEABLE);

		if (!r)
			continue;
		for (int i = 0; i < 32; i++)
			fill_page(r + i * SP_PAGE_SIZE, (uint64_t)i);
		usleep(500);
		for (int i = 0; i < 32; i++)
			if (check_page(r + i * SP_PAGE_SIZE, (uint64_t)i))
				atomic_fetch_add(c->bad, 1);
		if (round % 3 == 0)
			fill_page(r, 99); /* a copy-on-write now and then */
		if (sp_free(c->pool, r))
			atomic_fetch_add(c->bad, 1);
	}
	return NULL;
}

static void free_vs_ksmd(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct sp_pool_config cfg = { .section_size = 4 << 20, .nr_sections = 2, .flags = mode };
	sp_pool *pool = sp_pool_create(&cfg);
	struct churn c[4];
	pthread_t t[4];
	_Atomic long bad = 0;

	assert_non_null(pool);
	assert_int_equal(sp_ksm_set(pool, "sleep_millisecs", 0), 0);
	for (int i = 0; i < 4; i++) {
		c[i] = (struct churn){ pool, i, &bad };
		assert_int_equal(pthread_create(&t[i], NULL, churner, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&bad), 0);
	assert_true(ksm_of(pool, "pages_scanned") > 0);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	sp_pool_destroy(pool);
}

struct mover {
	sp_pool *pool;
	char *mem;
	_Atomic int *stop;
	_Atomic long moved;
};

static void *mover_main(void *p)
{
	struct mover *m = p;
	unsigned seed = 7;

	while (!atomic_load(m->stop)) {
		char *addr = m->mem + (size_t)(rand_r(&seed) % PAGES) * SP_PAGE_SIZE;
		struct sp_region *r;

		rwlock_rdlock(&m->pool->rt.lock);
		r = region_find(m->pool, addr);
		m->moved += !migrate_private_page(m->pool, r, region_index(r, addr), -1);
		rwlock_unlock(&m->pool->rt.lock);
	}
	return NULL;
}

/* Migration and merging take the same frames: neither loses a write. */
static void migrate_vs_merges(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct race rc = { .pool = pool_small(mode, 2) };
	struct mover m = { .pool = rc.pool, .stop = &rc.stop };
	struct warg args[WRITERS];
	pthread_t t[WRITERS], mt;

	time_t start = time(NULL);

	rc.mem = m.mem = sp_alloc(rc.pool, PAGES * SP_PAGE_SIZE, SP_MERGEABLE);
	start_writers(&rc, t, args);
	assert_int_equal(pthread_create(&mt, NULL, mover_main, &m), 0);
	/*
	 * Until migrations have happened in the thick of it (they need private
	 * pages, which the writers make now and then): 20 of them, or 20 s.
	 */
	for (int i = 0; i < 200 || (i < 200000 && atomic_load(&m.moved) < 20); i++) {
		sp_ksm_scan(rc.pool, PAGES / 2);
		if (i % 100 == 0 && time(NULL) - start > 20)
			break;
	}
	stop_and_check(&rc, t);
	pthread_join(mt, NULL);
	assert_true(m.moved > 0);
	sp_pool_destroy(rc.pool);
}

struct scanner {
	sp_pool *pool;
	_Atomic int *stop;
	_Atomic long calls;
};

static void *scanner_main(void *p)
{
	struct scanner *s = p;

	while (!atomic_load(s->stop)) {
		assert_true(sp_ksm_scan(s->pool, 64) >= 0);
		atomic_fetch_add(&s->calls, 1);
	}
	return NULL;
}

/* run=2 has returned: nothing merged, and nothing merges for a while (it holds). */
static void assert_unmerged(struct race *rc, int times)
{
	for (int t = 0; t < times; t++) {
		assert_int_equal(ksm_of(rc->pool, "pages_shared"), 0);
		assert_int_equal(ksm_of(rc->pool, "pages_sharing"), 0);
		assert_int_equal(ksm_of(rc->pool, "pages_unshared"), 0);
		assert_int_equal(ksm_of(rc->pool, "pages_volatile"), 0);
		for (int i = 0; i < PAGES; i++)
			assert_int_equal(
				sp_page_is_ksm(rc->pool, rc->mem + (size_t)i * SP_PAGE_SIZE), 0);
		usleep(1000);
	}
}

/*
 * run=2, 1 and 0 in random turns while ksmd scans flat out, writers write
 * and another thread calls sp_ksm_scan: after every run=2 nothing is merged
 * until run=1, every byte is its writer's last, and a final run=2 leaves
 * no page merged and no page tracked.
 */
static void run_flips(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct sp_pool_config cfg = { .section_size = 4 << 20, .nr_sections = 2, .flags = mode };
	struct race rc = { .pool = sp_pool_create(&cfg) };
	struct scanner sc = { .pool = rc.pool, .stop = &rc.stop };
	struct warg args[WRITERS];
	pthread_t t[WRITERS], st;
	time_t start = time(NULL);
	unsigned seed = 42;
	long merged = 0, flips = 0;

	assert_non_null(rc.pool);
	assert_int_equal(sp_ksm_set(rc.pool, "sleep_millisecs", 0), 0);
	assert_int_equal(sp_ksm_set(rc.pool, "pages_to_scan", 64), 0);
	rc.mem = sp_alloc(rc.pool, PAGES * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(rc.mem);
	start_writers(&rc, t, args);
	assert_int_equal(pthread_create(&st, NULL, scanner_main, &sc), 0);
	while (time(NULL) - start < 3 || flips < 50) {
		int run = (int)(rand_r(&seed) % 3);

		assert_int_equal(sp_ksm_set(rc.pool, "run", run), 0);
		flips++;
		if (run == 2)
			assert_unmerged(&rc, 3);
		else
			usleep(rand_r(&seed) % 4000);
		if (ksm_of(rc.pool, "pages_sharing") > merged)
			merged = ksm_of(rc.pool, "pages_sharing");
		if (time(NULL) - start > 20)
			break;
	}
	assert_int_equal(sp_ksm_set(rc.pool, "run", 2), 0);
	assert_unmerged(&rc, 50);
	atomic_store(&rc.stop, 1);
	pthread_join(st, NULL);
	stop_and_check(&rc, t);
	assert_unmerged(&rc, 1);
	/* It did merge in between, and the other thread did scan. */
	assert_true(merged > 0);
	assert_true(atomic_load(&sc.calls) > 0);
	sp_pool_destroy(rc.pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(run_flips),    BOTH(writers_vs_merges), BOTH(unmerge_vs_ksmd),
		BOTH(free_vs_ksmd), BOTH(migrate_vs_merges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
