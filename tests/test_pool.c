/* SPDX-License-Identifier: MIT */
/* The pool: configuration, frames and runs, punching, the frame lock, leaks. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "pool.h"

static void config_defaults(void **state)
{
	sp_pool *pool = sp_pool_create(NULL);

	(void)state;
	assert_non_null(pool);
	assert_int_equal(stat_of(pool, "frames_total"), 16 * 16384);
	assert_int_equal(stat_of(pool, "frames_free"), 16 * 16384);
	assert_int_equal(stat_of(pool, "sections_online"), 16);
	assert_int_equal(pool->max_sections, 16);
	assert_true(pool->nr_nodes >= 1);
	sp_pool_destroy(pool);
	sp_pool_destroy(NULL);
}

static void expect_einval(struct sp_pool_config cfg)
{
	errno = 0;
	assert_null(sp_pool_create(&cfg));
	assert_int_equal(errno, EINVAL);
}

static void config_errors(void **state)
{
	(void)state;
	expect_einval((struct sp_pool_config){ .section_size = 4097 });
	expect_einval((struct sp_pool_config){ .section_size = 100 });
	expect_einval((struct sp_pool_config){ .nr_sections = 4, .max_sections = 2 });
	expect_einval((struct sp_pool_config){ .flags = 0x80 });
	expect_einval((struct sp_pool_config){ .nr_nodes = 65 });
	expect_einval((struct sp_pool_config){ .swap_path = "/tmp/x", .swap_size = 100 });
	expect_einval((struct sp_pool_config){ .swap_size = 1 << 20 });
	expect_einval((struct sp_pool_config){ .swap_path = "" });
	expect_einval((struct sp_pool_config){ .section_size = 1ul << 30, .nr_sections = 2048 });
}

static void sections_and_nodes(void **state)
{
	struct sp_pool_config cfg = {
		.section_size = 1 << 20, .nr_sections = 6, .max_sections = 8, .nr_nodes = 3
	};
	sp_pool *pool = sp_pool_create(&cfg);

	(void)state;
	assert_non_null(pool);
	assert_int_equal(stat_of(pool, "sections_online"), 6);
	assert_int_equal(stat_of(pool, "frames_total"), 6 * 256);
	for (unsigned s = 0; s < 8; s++)
		assert_int_equal(pool->sections[s].node, (int)(s % 3));
	assert_non_null(pfn_to_page(pool, 5 * 256 + 3));
	assert_null(pfn_to_page(pool, 6 * 256)); /* not online */
	sp_pool_destroy(pool);
}

/* All-or-nothing allocation, runs that follow the free map, per-node order. */
static void frames_and_runs(void **state)
{
	struct sp_pool_config cfg = { .section_size = 64 * SP_PAGE_SIZE,
				      .nr_sections = 4,
				      .nr_nodes = 2,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);
	struct sp_run *runs;
	unsigned nr;

	(void)state;
	assert_non_null(pool);
	/* Node 1 owns sections 1 and 3: its frames come first. */
	assert_int_equal(frames_alloc(pool, 1, 100, &runs, &nr), 0);
	assert_int_equal(nr, 2);
	assert_int_equal(runs[0].pfn, 64);
	assert_int_equal(runs[0].nr, 64);
	assert_int_equal(runs[1].pfn, 192);
	assert_int_equal(runs[1].nr, 36);
	assert_int_equal(stat_of(pool, "frames_free"), 156);
	/* Too many: ENOMEM, nothing taken. */
	{
		struct sp_run *none;

		assert_int_equal(frames_alloc(pool, 0, 157, &none, &nr), -1);
		assert_null(none);
	}
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(stat_of(pool, "frames_free"), 156);
	frames_free_run(pool, 64, 64);
	frames_free_run(pool, 192, 36);
	free(runs);
	assert_int_equal(stat_of(pool, "frames_free"), 256);
	assert_int_equal(frames_alloc(pool, -1, 256, &runs, &nr), 0);
	assert_int_equal(nr, 1); /* consecutive sections coalesce into one run */
	assert_int_equal(frame_alloc(pool, 0), -1);
	assert_int_equal(errno, ENOMEM);
	frames_free_run(pool, 0, 256);
	free(runs);
	sp_pool_destroy(pool);
}

/* Freed frames go back to the OS, one punch per run, and read as zeros. */
static void punch_on_free(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	unsigned long pfns[] = { 9, 3, 4, 5, 10 };
	long pfn;

	(void)state;
	for (int i = 0; i < 16; i++)
		assert_int_equal(frame_alloc(pool, -1), i);
	for (unsigned long i = 0; i < 16; i++) {
		memset(pfn_to_virt(pool, i), 0xab, PAGE_SIZE);
		assert_false(frame_is_hole(pool, i));
	}
	assert_int_equal(stat_of(pool, "bytes_resident"), 16 * SP_PAGE_SIZE);
	frames_free_pfns(pool, pfns, 5);
	assert_int_equal(stat_of(pool, "bytes_resident"), 11 * SP_PAGE_SIZE);
	for (int i = 0; i < 5; i++)
		assert_true(frame_is_hole(pool, pfns[i]));
	assert_false(frame_is_hole(pool, 6));
	pfn = frame_alloc(pool, -1);
	assert_true(pfn == 3 || pfn == 16);
	frames_free_run(pool, 0, 3);
	frames_free_run(pool, 6, 3);
	frames_free_run(pool, 11, 5);
	frames_free_run(pool, (unsigned long)pfn, 1);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	sp_pool_destroy(pool);
}

struct lockctx {
	sp_pool *pool;
	long counter;
};

static void *locker(void *arg)
{
	struct lockctx *c = arg;

	for (int i = 0; i < 20000; i++) {
		frame_lock(c->pool, 0);
		c->counter++;
		frame_unlock(c->pool, 0);
	}
	return NULL;
}

static void frame_lock_excludes(void **state)
{
	struct lockctx c = { .pool = pool_small(0, 1) };
	pthread_t t[4];

	(void)state;
	assert_int_equal(frame_alloc(c.pool, -1), 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, locker, &c);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(c.counter, 80000);
	assert_true(frame_trylock(c.pool, 0));
	assert_false(frame_trylock(c.pool, 0));
	frame_unlock(c.pool, 0);
	assert_int_equal(atomic_load(&pfn_to_page(c.pool, 0)->flags) & (PG_locked | PG_waiters), 0);
	frames_free_run(c.pool, 0, 1);
	sp_pool_destroy(c.pool);
}

/* 1,000 pools, each used, leave no descriptor, mapping or heap byte behind. */
#ifndef NR_POOLS
#define NR_POOLS 1000
#endif

static void one_pool(int i)
{
	sp_pool *pool = pool_small(i % 2 ? SP_POOL_SIGSEGV : 0, 2);
	char *p = sp_alloc(pool, 3 * SP_PAGE_SIZE, 0);

	assert_non_null(p);
	p[0] = p[8000] = 1;
	if (i % 3) { /* and sometimes the pool frees it */
		assert_int_equal(stat_of(pool, "bytes_resident"), 2 * SP_PAGE_SIZE);
		sp_free(pool, p);
		assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	}
	sp_pool_destroy(pool);
}

static void create_destroy_no_leak(void **state)
{
	long fds, maps;
	size_t heap;

	(void)state;
	for (int i = 0; i < 6; i++) /* first-use allocations of libc and cmocka */
		one_pool(i);
	fds = proc_count("/proc/self/fd");
	maps = proc_maps_lines(NULL);
	for (int i = 0; i < NR_POOLS; i++) {
		/* A leak grows with the pools; a one-time allocation does not. */
		if (i == NR_POOLS / 10)
			heap = mallinfo2().uordblks;
		one_pool(i);
	}
	assert_int_equal(mallinfo2().uordblks, heap);
	assert_int_equal(proc_count("/proc/self/fd"), fds);
	assert_int_equal(proc_maps_lines("memfd:samepage"), 0);
	/* Sanitizer runtimes map memory of their own as they go: a few, not 1,000. */
	assert_true(proc_maps_lines(NULL) < maps + 16);
	/* No memfd outlives its pool (fds), so no frame's memory can either. */
}

/* ---- a thread faulting while the pool is destroyed ---- */

#define DESTROY_PAGES 2048

static char *destroy_mem;

/*
 * Reads the pages in a scattered order, over and over (each read of a
 * swapped page is a fault of its own: no read-ahead): a wrong byte is exit
 * status 3; the end of the pool must be a fault (SIGSEGV), never zeros.
 */
static void *destroy_reader(void *arg)
{
	(void)arg;
	for (;;)
		for (unsigned long k = 0; k < DESTROY_PAGES; k++) {
			unsigned long i = (k * 769) % DESTROY_PAGES;

			if (check_page(destroy_mem + i * SP_PAGE_SIZE, i))
				_exit(3);
		}
	return NULL;
}

static void setup_failed(const char *what)
{
	fprintf(stderr, "destroy round: %s: %s\n", what, strerror(errno));
	_exit(4);
}

static void destroy_round(unsigned flags, int round)
{
	char swap[64];
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 4,
				      .swap_path = flags & SP_POOL_SIGSEGV ? NULL : swap,
				      .swap_size = flags & SP_POOL_SIGSEGV ? 0 : 16 << 20,
				      .flags = flags | SP_POOL_NO_KSMD };
	pthread_t t;
	sp_pool *pool;

	/* cmocka's handlers off: this child is to die of the fault. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	alarm(20); /* a reader that neither faults nor ends: SIGALRM, a failure */
	snprintf(swap, sizeof(swap), "/tmp/sp-destroy-%d", getpid());
	pool = sp_pool_create(&cfg);
	if (!pool)
		setup_failed("sp_pool_create");
	destroy_mem = sp_alloc(pool, DESTROY_PAGES * SP_PAGE_SIZE, 0);
	if (!destroy_mem)
		setup_failed("sp_alloc");
	for (unsigned long i = 0; i < DESTROY_PAGES; i++)
		fill_page(destroy_mem + i * SP_PAGE_SIZE, i);
	if (!(flags & SP_POOL_SIGSEGV) &&
	    sp_swap_out(pool, destroy_mem, DESTROY_PAGES * SP_PAGE_SIZE))
		setup_failed("sp_swap_out");
	pthread_create(&t, NULL, destroy_reader, NULL);
	usleep(1000 + 300 * (useconds_t)round);
	sp_pool_destroy(pool);
	pthread_join(t, NULL); /* never: the reader faults */
	_exit(5);
}

/*
 * sp_pool_destroy while a thread reads swapped pages: the thread reads the
 * right bytes or dies of a fault. The regions are made inaccessible before
 * the fault machinery stops; the userfaultfd used to close first, and a
 * swapped page then read as the zero page (1 round in 12 or so).
 */
static void destroy_while_faulting(void **state)
{
	unsigned flags = *(unsigned *)*state;
	int faulted = 0;
	char swap[64];

	for (int round = 0; round < 40; round++) {
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (!pid)
			destroy_round(flags, round);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* Its pool died with it: the swap file is left to us. */
		snprintf(swap, sizeof(swap), "/tmp/sp-destroy-%d", pid);
		unlink(swap);
		if (WIFEXITED(status))
			fail_msg("round %d: exit %d (3: wrong bytes, 4: setup)", round,
				 WEXITSTATUS(status));
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSEGV);
		faulted++;
	}
	assert_int_equal(faulted, 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_defaults),	  cmocka_unit_test(config_errors),
		cmocka_unit_test(sections_and_nodes),	  cmocka_unit_test(frames_and_runs),
		cmocka_unit_test(punch_on_free),	  cmocka_unit_test(frame_lock_excludes),
		cmocka_unit_test(create_destroy_no_leak), BOTH(destroy_while_faulting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
