/* SPDX-License-Identifier: MIT */
/* Pool figures: names, errors, and agreement with the kernel's own counts. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *const api_names[] = {
	"frames_total",	  "frames_free",     "frames_used",	"frames_ksm",
	"bytes_resident", "sections_online", "swap_slots_used", "fault_mode",
	"faults_cow",	  "faults_swapin",   "pages_migrated",
};

static void names(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	unsigned i, n = 0;
	long v;

	(void)state;
	for (i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++)
		assert_true(stat_of(pool, api_names[i]) >= 0);
	for (i = 0; sp_stat_name(i); i++, n++)
		assert_int_equal(sp_stat(pool, sp_stat_name(i), &v), 0);
	assert_true(n >= 11);
	errno = 0;
	assert_int_equal(sp_stat(pool, "nope", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_stat(pool, NULL, &v), -1);
	assert_int_equal(sp_stat(pool, "frames_total", NULL), -1);
	assert_int_equal(sp_stat(NULL, "frames_total", &v), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

static void accounting(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	long total = stat_of(pool, "frames_total");
	char *p = sp_alloc(pool, 100 * SP_PAGE_SIZE, 0);

	(void)state;
	assert_int_equal(total, 2 * 1024);
	assert_int_equal(stat_of(pool, "frames_used"), 100);
	assert_int_equal(stat_of(pool, "frames_free"), total - 100);
	assert_int_equal(stat_of(pool, "sections_online"), 2);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0); /* nothing touched yet */
	for (int i = 0; i < 30; i++)
		p[i * SP_PAGE_SIZE] = 1;
	assert_int_equal(stat_of(pool, "bytes_resident"), 30 * SP_PAGE_SIZE);
	sp_free(pool, p);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	sp_pool_destroy(pool);
}

/*
 * bytes_resident is the memory the system counts as Shmem for this pool.
 * Shmem is system-wide and other processes move it: one of three tries must
 * agree to within 8 MiB of the 48.
 */
static int resident_vs_meminfo_once(void)
{
	sp_pool *pool = pool_small(0, 16);
	size_t len = 48 << 20;
	long before, during, after, kb = (long)(len >> 10);
	char *p = sp_alloc(pool, len, 0);
	int ok;

	before = meminfo_kb("Shmem");
	for_each_page (q, p, len)
		*q = 1;
	during = meminfo_kb("Shmem");
	assert_int_equal(stat_of(pool, "bytes_resident"), (long)len);
	sp_free(pool, p);
	after = meminfo_kb("Shmem");
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	sp_pool_destroy(pool);
	ok = labs(during - before - kb) < 8192 && labs(during - after - kb) < 8192;
	if (!ok)
		print_message("Shmem before %ld during %ld after %ld kB\n", before, during, after);
	return ok;
}

static void resident_matches_meminfo(void **state)
{
	int ok = 0;

	(void)state;
	for (int i = 0; i < 3 && !ok; i++)
		ok = resident_vs_meminfo_once();
	assert_true(ok);
}

/*
 * sp_knob_name lists what sp_ksm_set and sp_tune take, sp_knob_range says
 * what each accepts: the bounds are set, one step outside is refused.
 */
static void knob_ranges(void **state)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);
	long min, max, def, v;
	unsigned i, n = 0;

	(void)state;
	for (i = 0; sp_knob_name(i); i++, n++) {
		const char *name = sp_knob_name(i);
		int (*set)(sp_pool *, const char *, long) =
			strchr(name, '.') ? sp_tune : sp_ksm_set;
		int (*get)(sp_pool *, const char *, long *) =
			strchr(name, '.') ? sp_tune_get : sp_ksm_get;

		assert_int_equal(sp_knob_range(name, &min, &max, &def), 0);
		assert_true(min <= def && def <= max);
		if (!strcmp(name, "run"))
			continue; /* run=2 unmerges and leaves run at 0, tested in test_ksm */
		assert_int_equal(set(pool, name, max), 0);
		assert_int_equal(set(pool, name, min), 0);
		if (min >= 0) { /* -1 reads back as the watermark in force */
			assert_int_equal(get(pool, name, &v), 0);
			assert_int_equal(v, min);
		}
		errno = 0;
		assert_int_equal(set(pool, name, min - 1), -1);
		assert_int_equal(errno, EINVAL);
		if (max < LONG_MAX) {
			assert_int_equal(set(pool, name, max + 1), -1);
			assert_int_equal(errno, EINVAL);
		}
		assert_int_equal(set(pool, name, def), 0);
	}
	assert_true(n >= 9); /* seven KSM knobs, two watermarks */
	assert_int_equal(sp_knob_range("ksm.pages_to_scan", &min, &max, &def), 0);
	assert_int_equal(def, 100);
	assert_int_equal(sp_knob_range("pages_to_scan", NULL, NULL, NULL), 0);
	errno = 0;
	assert_int_equal(sp_knob_range("pages_sharing", &min, &max, &def), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(sp_knob_range("frames_free", &min, &max, &def), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(sp_knob_range("nonsense", &min, &max, &def), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(sp_knob_range(NULL, &min, &max, &def), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names),
		cmocka_unit_test(accounting),
		cmocka_unit_test(resident_matches_meminfo),
		cmocka_unit_test(knob_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
