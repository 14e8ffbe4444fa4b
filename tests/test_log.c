/* SPDX-License-Identifier: MIT */
/*
 * The log hook, and the vm.max_map_count warning that goes through it. The
 * hook runs with no samepage lock held: it may call back into samepage,
 * even when the line was logged under the KSM mutex
 * (../shared/repro/log_hook_reenter.c); lines are queued, and a full queue
 * drops and counts; sp_set_log(NULL) gives stderr back.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ---- a hook that calls back into samepage ------------------------------ */

/*
 * The children below are forks of the test runner: no cmocka assert there
 * (a failed one would go on running the tests in the child); exit codes.
 */
static sp_pool *child_pool(unsigned flags, unsigned nr_sections)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = nr_sections,
				      .flags = flags | SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);

	if (!pool)
		_exit(90);
	return pool;
}

/*
 * Regions of 8 mergeable pages alike, page 4 of each unmapped by the
 * program: a scan logs one warning per region, under the KSM mutex.
 */
static void alloc_with_holes(sp_pool *pool, int nr)
{
	for (int i = 0; i < nr; i++) {
		char *m = sp_alloc(pool, 8 * SP_PAGE_SIZE, SP_MERGEABLE);

		if (!m)
			_exit(91);
		memset(m, 7, 8 * SP_PAGE_SIZE);
		if (munmap(m + 4 * SP_PAGE_SIZE, SP_PAGE_SIZE))
			_exit(92);
	}
}

/* Runs fn(flags) in a child with a time limit: a deadlock fails, not hangs. */
static void in_child(void (*fn)(unsigned), unsigned flags)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(30);
		fn(flags);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		print_error("child died of signal %d%s\n", WTERMSIG(status),
			    WTERMSIG(status) == SIGALRM ? " (deadlocked?)" : "");
	else if (WEXITSTATUS(status))
		print_error("child exited with %d\n", WEXITSTATUS(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static sp_pool *hook_pool;
static _Atomic int hook_step; /* how far the first hook call got; 100: all done */

static void reentering_hook(enum sp_log_level level, const char *msg, void *priv)
{
	long v = -1;
	char *p;

	(void)level, (void)msg, (void)priv;
	if (atomic_load(&hook_step))
		return; /* the first call does it all */
	atomic_store(&hook_step, 1);
	if (sp_stat(hook_pool, "frames_used", &v) || v <= 0)
		return;
	atomic_store(&hook_step, 2);
	if (sp_ksm_get(hook_pool, "pages_shared", &v) || v < 0)
		return;
	atomic_store(&hook_step, 3);
	if (sp_ksm_set(hook_pool, "pages_to_scan", 200))
		return;
	atomic_store(&hook_step, 4);
	if (sp_tune(hook_pool, "ksm.sleep_millisecs", 7) ||
	    sp_tune_get(hook_pool, "ksm.sleep_millisecs", &v) || v != 7)
		return;
	atomic_store(&hook_step, 5);
	p = sp_alloc(hook_pool, 4 * SP_PAGE_SIZE, SP_MERGEABLE);
	if (!p)
		return;
	memset(p, 9, 4 * SP_PAGE_SIZE);
	if (sp_ksm_scan(hook_pool, 64) < 0 || sp_free(hook_pool, p))
		return;
	atomic_store(&hook_step, 100);
}

static void hook_reenters_child(unsigned flags)
{
	long v = -1;

	hook_pool = child_pool(flags, 2);
	sp_set_log(reentering_hook, NULL);
	alloc_with_holes(hook_pool, 1);
	if (sp_ksm_scan(hook_pool, 1000) <= 0)
		_exit(2);
	for (int i = 0; i < 2000 && atomic_load(&hook_step) != 100; i++)
		usleep(10000);
	if (atomic_load(&hook_step) != 100)
		_exit(10 + atomic_load(&hook_step));
	if (sp_ksm_get(hook_pool, "pages_to_scan", &v) || v != 200)
		_exit(3);
	sp_pool_destroy(hook_pool);
	sp_set_log(NULL, NULL);
}

/* A hook that calls back into samepage, fired by a line logged under the KSM mutex. */
static void hook_reenters(void **state)
{
	in_child(hook_reenters_child, *(unsigned *)*state);
}

/* ---- a slow hook: the queue fills, drops and counts --------------------- */

static _Atomic int slow_release, slow_lines;
static _Atomic long slow_dropped;

static void slow_hook(enum sp_log_level level, const char *msg, void *priv)
{
	const char *d = strstr(msg, " log messages dropped");

	(void)level, (void)priv;
	while (!atomic_load(&slow_release))
		usleep(1000);
	if (d) {
		while (d > msg && d[-1] >= '0' && d[-1] <= '9')
			d--;
		atomic_fetch_add(&slow_dropped, strtol(d, NULL, 10));
	} else {
		atomic_fetch_add(&slow_lines, 1);
	}
}

/* 600 lines while the hook is stuck in the first: some dropped, and every one counted. */
static void drops_counted_child(unsigned flags)
{
	sp_pool *pool = child_pool(flags, 8);
	long scans = -1;

	sp_set_log(slow_hook, NULL);
	alloc_with_holes(pool, 600);
	while (sp_ksm_scan(pool, 100000) > 0 && !sp_ksm_get(pool, "full_scans", &scans) &&
	       scans < 1)
		;
	atomic_store(&slow_release, 1);
	sp_pool_destroy(pool); /* delivers what is queued */
	sp_set_log(NULL, NULL);
	if (atomic_load(&slow_dropped) <= 0)
		_exit(2);
	if (atomic_load(&slow_lines) + atomic_load(&slow_dropped) != 600)
		_exit(3);
}

static void drops_counted(void **state)
{
	(void)state;
	in_child(drops_counted_child, 0);
}

/* sp_set_log(NULL, NULL): the lines go to stderr again, and the old hook gets none. */
static _Atomic int old_hook_calls;

static void old_hook(enum sp_log_level level, const char *msg, void *priv)
{
	(void)level, (void)msg, (void)priv;
	atomic_fetch_add(&old_hook_calls, 1);
}

static void null_restores_child(unsigned flags)
{
	int fd = memfd_create("stderr", 0);
	char buf[4096] = { 0 };
	sp_pool *pool;

	if (fd < 0 || dup2(fd, 2) != 2)
		_exit(2);
	pool = child_pool(flags, 2);
	sp_set_log(old_hook, NULL);
	sp_set_log(NULL, NULL);
	alloc_with_holes(pool, 1);
	sp_ksm_scan(pool, 1000);
	sp_pool_destroy(pool); /* delivers what is queued */
	if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0 || !strstr(buf, "samepage: warning: ") ||
	    !strstr(buf, "unmapped behind samepage's back"))
		_exit(3);
	if (atomic_load(&old_hook_calls))
		_exit(4);
}

static void null_restores_stderr(void **state)
{
	in_child(null_restores_child, *(unsigned *)*state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(warns_when_too_low),
		cmocka_unit_test(silent_when_enough),
		BOTH(hook_reenters),
		cmocka_unit_test(drops_counted),
		BOTH(null_restores_stderr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
