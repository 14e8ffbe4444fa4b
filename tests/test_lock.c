/* SPDX-License-Identifier: MIT */
/*
 * The lock order checker (src/lock.h): the orders lock.h documents pass, and
 * an inversion, a recursive take, two nested leaves, a release by another
 * function or of a lock not held each abort, naming the locks. Whatever
 * should abort runs in a forked child whose stderr is read back.
 *
 * Built with NDEBUG (meson's release build) the checker is compiled away,
 * and the tests that expect an abort are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "pool.h"

static struct sp_mutex export_lock, mpol, ksm, pool_lock, swap_lock, window, log_lock;
static struct sp_rwlock hotplug, regions;
static struct sp_mutex reclaim;

static void locks_init(void)
{
	mutex_init(&export_lock, LOCK_EXPORT);
	mutex_init(&mpol, LOCK_MPOL);
	rwlock_init(&hotplug, LOCK_HOTPLUG, NULL);
	mutex_init(&ksm, LOCK_KSM);
	rwlock_init(&regions, LOCK_REGIONS, NULL);
	mutex_init(&reclaim, LOCK_RECLAIM);
	mutex_init(&pool_lock, LOCK_POOL);
	mutex_init(&swap_lock, LOCK_SWAP);
	mutex_init(&window, LOCK_WINDOW);
	mutex_init(&log_lock, LOCK_LOG);
}

/*
 * Runs fn in a child; true if it died of SIGABRT. Its stderr, up to len - 1
 * bytes, in buf.
 */
static bool child_aborts(void (*fn)(void), char *buf, size_t len)
{
	int fds[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		fn();
		_exit(0);
	}
	close(fds[1]);
	while (got < len - 1 && (n = read(fds[0], buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void expect_abort(void (*fn)(void), const char *a, const char *b)
{
	char msg[1024];

	if (!LOCK_CHECK)
		skip();
	assert_true(child_aborts(fn, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "samepage: "));
	assert_non_null(strstr(msg, a));
	assert_non_null(strstr(msg, b));
}

/*
 * The checker is on in every build meson leaves NDEBUG out of (b_ndebug=false,
 * or if-release in any buildtype but release): CI's builds among them.
 */
static void checking_on(void **state)
{
	const char *nd = getenv("SAMEPAGE_NDEBUG");
	bool off;

	(void)state;
	if (!nd)
		skip();
	off = !strncmp(nd, "true:", 5) || !strcmp(nd, "if-release:release");
	assert_int_equal(LOCK_CHECK, !off);
}

/* ---- what lock.h allows ------------------------------------------------- */

/* Every rank in order, outermost first, then released in another order. */
static void whole_order(void)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);

	assert_non_null(pool);
	mutex_lock(&export_lock);
	mutex_lock(&mpol);
	rwlock_wrlock(&hotplug);
	mutex_lock(&ksm);
	rwlock_rdlock(&regions);
	frame_lock(pool, 1);
	frame_lock(pool, 3); /* frames nest in ascending pfn order */
	assert_true(frame_trylock(pool, 0)); /* or tried, in any order */
	mutex_lock(&reclaim); /* direct reclaim under frame locks */
	assert_true(frame_trylock(pool, 7)); /* which only tries frames */
	mutex_lock(&pool_lock);
	mutex_lock(&swap_lock);
	mutex_lock(&log_lock);
#if LOCK_CHECK
	assert_int_equal(lock_held(), 9);
	assert_int_equal(lock_frames_held(), 4);
#endif
	mutex_unlock(&log_lock);
	mutex_unlock(&swap_lock);
	mutex_unlock(&pool_lock);
	frame_unlock(pool, 7);
	frame_unlock(pool, 0);
	frame_unlock(pool, 3);
	frame_unlock(pool, 1);
	rwlock_unlock(&hotplug); /* not last in, first out: allowed */
	mutex_unlock(&reclaim);
	rwlock_unlock(&regions);
	mutex_unlock(&ksm);
	mutex_unlock(&mpol);
	mutex_unlock(&export_lock);
#if LOCK_CHECK
	assert_int_equal(lock_held(), 0);
	assert_int_equal(lock_frames_held(), 0);
#endif
	sp_pool_destroy(pool);
}

/* A trylock cannot wait, so it may go against the order (reclaim tries the KSM mutex). */
static void trylock_against_order(void **state)
{
	(void)state;
	mutex_lock(&reclaim);
	assert_true(mutex_trylock(&ksm));
	mutex_lock(&pool_lock); /* ranked below reclaim.lock, the outer one held */
	mutex_unlock(&pool_lock);
	mutex_unlock(&ksm);
	mutex_unlock(&reclaim);
}

static void documented_orders(void **state)
{
	(void)state;
	whole_order();
	/* Again in a child: it must exit normally. */
	if (LOCK_CHECK) {
		char msg[1024];

		assert_false(child_aborts(whole_order, msg, sizeof(msg)));
		assert_null(strstr(msg, "src/lock.h"));
	}
}

/* A documented pair: taken in one function, released in the other. */
static void take_ksm(void)
{
	mutex_lock(&ksm);
}

static void drop_ksm(void)
{
	mutex_unlock_pair(&ksm);
}

static void pair_release(void **state)
{
	(void)state;
	take_ksm();
	drop_ksm();
#if LOCK_CHECK
	assert_int_equal(lock_held(), 0);
#endif
}

/* The real pool's locks run the same checks (pool.h's wrappers). */
static void pool_calls(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *p;

	(void)state;
	assert_non_null(pool);
	p = sp_alloc(pool, 64 * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(p);
	memset(p, 1, 64 * SP_PAGE_SIZE);
	assert_int_equal(sp_free(pool, p), 0);
#if LOCK_CHECK
	assert_int_equal(lock_held(), 0);
	assert_int_equal(lock_frames_held(), 0);
#endif
	sp_pool_destroy(pool);
}

/* ---- what it catches ---------------------------------------------------- */

/* What sp_free once did under region_release, backwards: rt.lock, then the KSM mutex. */
static void inversion_child(void)
{
	rwlock_rdlock(&regions);
	mutex_lock(&ksm);
}

static void inversion(void **state)
{
	(void)state;
	expect_abort(inversion_child, "KSM mutex", "region table lock");
	expect_abort(inversion_child, "inversion_child", "lock order violated");
}

/* An offline's frame locks held while it waits for rt.lock (migrate.c once did). */
static void frame_then_regions_child(void)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);

	frame_lock(pool, 0);
	rwlock_rdlock(&regions);
}

static void frame_then_regions(void **state)
{
	(void)state;
	expect_abort(frame_then_regions_child, "frame lock", "region table lock");
}

/*
 * A reclaimer waiting for a frame: whoever holds the frame may be waiting
 * for reclaim.lock (direct reclaim under a frame lock).
 */
static void reclaim_then_frame_child(void)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);

	mutex_lock(&reclaim);
	frame_lock(pool, 0);
}

static void reclaim_then_frame(void **state)
{
	(void)state;
	expect_abort(reclaim_then_frame_child, "frame lock", "reclaim.lock");
}

/*
 * Two threads waiting for frames each holds: one holds 5 and waits for 3,
 * the other holds 3 (tried, say) and waits for 5. Waiting for a frame below
 * one held is what makes the cycle possible.
 */
static void frames_descending_child(void)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);

	frame_lock(pool, 5);
	frame_lock(pool, 3);
}

static void frames_after_trylock_child(void)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);

	assert_true(frame_trylock(pool, 5));
	frame_lock(pool, 2);
}

static void frames_out_of_order(void **state)
{
	(void)state;
	expect_abort(frames_descending_child, "waits for frame 3", "holding frame 5");
	expect_abort(frames_after_trylock_child, "waits for frame 2", "holding frame 5");
}

/* rt.lock is writer-preferring: a second read lock can wait behind a writer for ever. */
static void recursive_read_child(void)
{
	rwlock_rdlock(&regions);
	rwlock_rdlock(&regions);
}

static void recursive_read(void **state)
{
	(void)state;
	expect_abort(recursive_read_child, "region table lock", "rank 4");
}

/* Leaves share a rank: one under another is a new order nobody wrote down. */
static void leaves_nest_child(void)
{
	mutex_lock(&window);
	mutex_lock(&swap_lock);
}

static void leaves_nest(void **state)
{
	(void)state;
	expect_abort(leaves_nest_child, "swap.lock", "window lock");
}

static void leaf_under_log_child(void)
{
	mutex_lock(&log_lock);
	mutex_lock(&pool_lock);
}

static void leaf_under_log(void **state)
{
	(void)state;
	expect_abort(leaf_under_log_child, "pool lock", "log lock");
}

/* Released by a function that did not take it, not marked as a pair. */
static void drop_ksm_unpaired(void)
{
	mutex_unlock(&ksm);
}

static void foreign_release_child(void)
{
	take_ksm();
	drop_ksm_unpaired();
}

static void foreign_release(void **state)
{
	(void)state;
	expect_abort(foreign_release_child, "drop_ksm_unpaired", "take_ksm");
}

static void release_not_held_child(void)
{
	mutex_unlock(&pool_lock);
}

static void release_not_held(void **state)
{
	(void)state;
	expect_abort(release_not_held_child, "pool lock", "does not hold");
}

static void frame_not_held_child(void)
{
	sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);

	frame_unlock(pool, 0);
}

static void frame_not_held(void **state)
{
	(void)state;
	expect_abort(frame_not_held_child, "frame lock", "does not hold");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(checking_on),	       cmocka_unit_test(trylock_against_order),
		cmocka_unit_test(documented_orders),   cmocka_unit_test(pair_release),
		cmocka_unit_test(pool_calls),	       cmocka_unit_test(inversion),
		cmocka_unit_test(frame_then_regions),  cmocka_unit_test(reclaim_then_frame),
		cmocka_unit_test(frames_out_of_order), cmocka_unit_test(recursive_read),
		cmocka_unit_test(leaves_nest),	       cmocka_unit_test(leaf_under_log),
		cmocka_unit_test(foreign_release),     cmocka_unit_test(release_not_held),
		cmocka_unit_test(frame_not_held),
	};

	locks_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
