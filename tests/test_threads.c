/* SPDX-License-Identifier: MIT */
/*
 * Real threads on one pool: touching disjoint and shared parts of a region,
 * and allocating and freeing regions concurrently, with an oracle at the end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define NTHREADS 8
#define PAGES 512

struct shared {
	sp_pool *pool;
	char *region;
	_Atomic long hits[PAGES];
};

struct arg {
	struct shared *sh;
	int id;
};

/* Each thread fills its own stripe, and bumps counters in the shared first page. */
static void *toucher(void *p)
{
	struct arg *a = p;
	char *base = a->sh->region;
	_Atomic long *shared_page = (_Atomic long *)base;

	for (int pg = 1 + a->id; pg < PAGES; pg += NTHREADS)
		fill_page(base + (size_t)pg * SP_PAGE_SIZE, (uint64_t)pg);
	for (int i = 0; i < 10000; i++)
		atomic_fetch_add(&shared_page[i % 64], 1);
	return NULL;
}

static void disjoint_and_shared(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct shared sh = { .pool = pool_small(mode, 2) };
	struct arg args[NTHREADS];
	pthread_t t[NTHREADS];
	long sum = 0;

	sh.region = sp_alloc(sh.pool, PAGES * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(sh.region);
	for (int i = 0; i < NTHREADS; i++) {
		args[i] = (struct arg){ &sh, i };
		assert_int_equal(pthread_create(&t[i], NULL, toucher, &args[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (int pg = 1; pg < PAGES; pg++)
		assert_int_equal(check_page(sh.region + (size_t)pg * SP_PAGE_SIZE, (uint64_t)pg),
				 0);
	for (int i = 0; i < 64; i++)
		sum += ((long *)sh.region)[i];
	assert_int_equal(sum, NTHREADS * 10000);
	sp_free(sh.pool, sh.region);
	sp_pool_destroy(sh.pool);
}

/* Threads allocate, fill, check and free regions of random sizes at once. */
static void *churner(void *p)
{
	struct arg *a = p;
	unsigned seed = (unsigned)a->id * 7919u + 1;

	for (int round = 0; round < 200; round++) {
		size_t pages = rand_r(&seed) % 16 + 1;
		char *r = sp_alloc(a->sh->pool, pages * SP_PAGE_SIZE, 0);

		if (!r)
			continue; /* the pool may be momentarily full: not an error */
		for (size_t i = 0; i < pages; i++)
			fill_page(r + i * SP_PAGE_SIZE,
				  (uint64_t)(a->id * 100000 + round * 16 + i));
		for (size_t i = 0; i < pages; i++)
			if (check_page(r + i * SP_PAGE_SIZE,
				       (uint64_t)(a->id * 100000 + round * 16 + i)))
				atomic_fetch_add(&a->sh->hits[0], 1);
		if (sp_free(a->sh->pool, r))
			atomic_fetch_add(&a->sh->hits[1], 1);
	}
	return NULL;
}

static void alloc_free_race(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct shared sh = { .pool = pool_small(mode, 1) };
	struct arg args[NTHREADS];
	pthread_t t[NTHREADS];

	for (int i = 0; i < NTHREADS; i++) {
		args[i] = (struct arg){ &sh, i };
		assert_int_equal(pthread_create(&t[i], NULL, churner, &args[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&sh.hits[0]), 0); /* no page saw another's data */
	assert_int_equal(atomic_load(&sh.hits[1]), 0); /* every free succeeded */
	assert_int_equal(stat_of(sh.pool, "frames_used"), 0);
	assert_int_equal(stat_of(sh.pool, "bytes_resident"), 0);
	sp_pool_destroy(sh.pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(disjoint_and_shared),
		BOTH(alloc_free_race),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
