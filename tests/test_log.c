/* SPDX-License-Identifier: MIT */
/* The log hook, and the vm.max_map_count warning that goes through it. */
#include <stdio.h>
#include <string.h>

#include "common.h"

struct captured {
	int n;
	enum sp_log_level level;
	char msg[512];
};

static void capture(enum sp_log_level level, const char *msg, void *priv)
{
	struct captured *c = priv;

	c->n++;
	c->level = level;
	snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static long max_map_count(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &v), 1);
	fclose(f);
	return v;
}

/* 64 GiB of pool (1024 sections, one online) needs 16M mappings at worst. */
static void warns_when_too_low(void **state)
{
	struct sp_pool_config cfg = { .section_size = 64 << 20,
				      .nr_sections = 1,
				      .max_sections = 1024,
				      .flags = SP_POOL_NO_KSMD };
	struct captured c = { 0 };
	char want[64];
	sp_pool *pool;

	(void)state;
	sp_set_log(capture, &c);
	pool = sp_pool_create(&cfg);
	sp_set_log(NULL, NULL);
	assert_non_null(pool);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.level, SP_LOG_WARN);
	snprintf(want, sizeof(want), "vm.max_map_count is %ld", max_map_count());
	assert_non_null(strstr(c.msg, want));
	assert_non_null(strstr(c.msg, "sysctl -w vm.max_map_count="));
	assert_null(strchr(c.msg, '\n'));
	sp_pool_destroy(pool);
}

static void silent_when_enough(void **state)
{
	struct captured c = { 0 };
	sp_pool *pool;

	(void)state;
	sp_set_log(capture, &c);
	pool = pool_small(0, 1); /* 4 MiB: 1024 pages */
	sp_set_log(NULL, NULL);
	assert_non_null(pool);
	assert_int_equal(c.n, 0);
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(warns_when_too_low),
		cmocka_unit_test(silent_when_enough),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
