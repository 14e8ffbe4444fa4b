/* SPDX-License-Identifier: MIT */
/* KSM knobs and counters: the kernel's names, ranges and errors. */
#include <errno.h>
#include <string.h>

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
	"ksm_zero_pages", "general_profit",
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
	for (i = 0; i < 10; i++) {
		assert_string_equal(sp_ksm_name(7 + i), counter_names[i]);
		assert_int_equal(get(pool, counter_names[i]), 0);
	}
	assert_null(sp_ksm_name(17));
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
	for (unsigned i = 0; i < 10; i++) {
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_and_defaults),
		cmocka_unit_test(set_in_range),
		cmocka_unit_test(set_errors),
		cmocka_unit_test(busy_while_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
