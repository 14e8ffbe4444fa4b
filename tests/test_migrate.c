/* SPDX-License-Identifier: MIT */
/*
 * Moving a private frame: content kept, holes kept holes, failures leave the
 * page as it was, and many pages moved under many writers keep every write.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common.h"
#include "migrate.h"
#include "pool.h"

static int move(sp_pool *pool, void *addr)
{
	struct sp_region *r;
	int ret;

	rwlock_rdlock(&pool->rt.lock);
	r = region_find(pool, addr);
	ret = migrate_private_page(pool, r, region_index(r, addr), -1);
	rwlock_unlock(&pool->rt.lock);
	return ret;
}

static void keeps_content_and_holes(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *p = sp_alloc(pool, 8 * SP_PAGE_SIZE, 0);
	long resident;

	assert_non_null(p);
	for (int i = 0; i < 4; i++)
		fill_page(p + i * SP_PAGE_SIZE, (uint64_t)i + 100);
	resident = stat_of(pool, "bytes_resident");
	assert_int_equal(resident, 4 * SP_PAGE_SIZE);
	for (int i = 0; i < 8; i++)
		assert_int_equal(move(pool, p + i * SP_PAGE_SIZE), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(check_page(p + i * SP_PAGE_SIZE, (uint64_t)i + 100), 0);
	/* Untouched pages moved as holes: nothing new became resident. */
	assert_int_equal(stat_of(pool, "bytes_resident"), resident);
	/* A read of a hole through a shared mapping allocates it (shmem does). */
	for (int i = 4; i < 8; i++)
		assert_true(page_is_zero(p + i * SP_PAGE_SIZE));
	assert_int_equal(stat_of(pool, "bytes_resident"), 2 * resident);
	assert_int_equal(stat_of(pool, "frames_used"), 8);
	assert_int_equal(sp_free(pool, p), 0);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	sp_pool_destroy(pool);
}

/* No free frame: ENOMEM, and the page is exactly as it was. */
static void no_room_changes_nothing(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 1);
	long total = stat_of(pool, "frames_total");
	char *p = sp_alloc(pool, (size_t)total * SP_PAGE_SIZE, 0);
	int sec;

	assert_non_null(p);
	fill_page(p, 7);
	sec = sp_page_section(pool, p);
	assert_int_equal(move(pool, p), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(check_page(p, 7), 0);
	assert_int_equal(sp_page_section(pool, p), sec);
	fill_page(p, 8); /* and still writable */
	assert_int_equal(check_page(p, 8), 0);
	assert_int_equal(stat_of(pool, "pages_migrated"), 0);
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

#define NPAGES 64
#define NWRITERS 4

struct ctx {
	sp_pool *pool;
	char *base;
	_Atomic int stop;
	_Atomic uint64_t last[NWRITERS];
};

/* Writer k owns pages k, k+NWRITERS, ...: each gets the whole-page value v. */
static void *writer(void *arg)
{
	struct ctx *c = ((struct ctx **)arg)[0];
	int k = (int)(intptr_t)((void **)arg)[1];

	for (uint64_t v = 1; !atomic_load(&c->stop); v++) {
		for (int pg = k; pg < NPAGES; pg += NWRITERS) {
			uint64_t *w = (uint64_t *)(c->base + pg * SP_PAGE_SIZE);

			for (int i = 0; i < 512; i++)
				w[i] = v;
		}
		atomic_store(&c->last[k], v);
	}
	return NULL;
}

static void many_pages_many_writers(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct ctx c = { .pool = pool_small(mode, 2) };
	void *args[NWRITERS][2];
	pthread_t t[NWRITERS];

	c.base = sp_alloc(c.pool, NPAGES * SP_PAGE_SIZE, 0);
	assert_non_null(c.base);
	for (int k = 0; k < NWRITERS; k++) {
		args[k][0] = &c;
		args[k][1] = (void *)(intptr_t)k;
		assert_int_equal(pthread_create(&t[k], NULL, writer, args[k]), 0);
	}
	for (int round = 0; round < 20; round++)
		for (int pg = 0; pg < NPAGES; pg++)
			assert_int_equal(move(c.pool, c.base + pg * SP_PAGE_SIZE), 0);
	atomic_store(&c.stop, 1);
	for (int k = 0; k < NWRITERS; k++)
		pthread_join(t[k], NULL);
	for (int pg = 0; pg < NPAGES; pg++) {
		uint64_t *w = (uint64_t *)(c.base + pg * SP_PAGE_SIZE);
		uint64_t want = atomic_load(&c.last[pg % NWRITERS]);

		for (int i = 0; i < 512; i++)
			assert_int_equal(w[i], want);
	}
	assert_int_equal(stat_of(c.pool, "pages_migrated"), 20 * NPAGES);
	assert_int_equal(stat_of(c.pool, "frames_used"), NPAGES);
	sp_free(c.pool, c.base);
	sp_pool_destroy(c.pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(keeps_content_and_holes),
		BOTH(no_room_changes_nothing),
		BOTH(many_pages_many_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
