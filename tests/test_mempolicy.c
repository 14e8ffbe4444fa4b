/* SPDX-License-Identifier: MIT */
/*
 * Memory policy: sp_mbind's modes, moves that skip KSM frames, STRICT,
 * errors; where a page's new frame comes from when its nodes are full (they
 * reclaim, waiting for busy pages there) or gone (any node); policy ranges
 * that merge; sp_mbind racing
 * sp_mbind.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "os.h"
#include "pool.h"

#define N 64

/* Four 256 KiB sections on two logical nodes: 0 and 2 on node 0, 1 and 3 on node 1. */
static sp_pool *two_nodes(void)
{
	struct sp_pool_config cfg = { .section_size = 64 * SP_PAGE_SIZE,
				      .nr_sections = 4,
				      .nr_nodes = 2,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);

	assert_non_null(pool);
	return pool;
}

static void all_on(sp_pool *pool, char *p, int n, int node)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(sp_page_node(pool, p + i * SP_PAGE_SIZE), node);
}

static void bind_moves(void **state)
{
	sp_pool *pool = two_nodes();
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, 0);

	(void)state;
	for (int i = 0; i < N; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	all_on(pool, a, N, 0);
	/* STRICT alone reports pages in the wrong place, and moves nothing. */
	errno = 0;
	assert_int_equal(sp_mbind(pool, a, N * SP_PAGE_SIZE, SP_MPOL_BIND, 2, SP_MPOL_MF_STRICT),
			 -1);
	assert_int_equal(errno, EIO);
	all_on(pool, a, N, 0);
	assert_int_equal(sp_mbind(pool, a, N * SP_PAGE_SIZE, SP_MPOL_BIND, 2, SP_MPOL_MF_MOVE), 0);
	all_on(pool, a, N, 1);
	assert_int_equal(stat_of(pool, "pages_migrated"), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(sp_mbind(pool, a, N * SP_PAGE_SIZE, SP_MPOL_BIND, 2, SP_MPOL_MF_STRICT),
			 0);
	/* PREFERRED node 0, on part of the region. */
	assert_int_equal(sp_mbind(pool, a, 8 * SP_PAGE_SIZE, SP_MPOL_PREFERRED, 1,
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 0);
	all_on(pool, a, 8, 0);
	all_on(pool, a + 8 * SP_PAGE_SIZE, N - 8, 1);
	sp_pool_destroy(pool);
}

/* The seed: a policy move leaves KSM frames where they are; STRICT says so. */
static void move_skips_ksm(void **state)
{
	sp_pool *pool = two_nodes();
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	int ksm_node, other;
	long moved;

	(void)state;
	for (int i = 0; i < N; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, i < N / 2 ? (uint64_t)i : 900u + i);
	}
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N / 2);
	ksm_node = sp_page_node(pool, b); /* a's frames or b's, whichever was seen first */
	other = 1 - ksm_node;
	/* b's private pages start on ksm_node, so that the move below has work. */
	assert_int_equal(sp_mbind(pool, b + N / 2 * SP_PAGE_SIZE, N / 2 * SP_PAGE_SIZE,
				  SP_MPOL_BIND, 1ul << ksm_node, SP_MPOL_MF_MOVE),
			 0);
	moved = stat_of(pool, "pages_migrated");
	errno = 0;
	assert_int_equal(sp_mbind(pool, b, N * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << other,
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 -1);
	assert_int_equal(errno, EIO);
	for (int i = 0; i < N; i++) {
		int ksm = sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE);

		assert_int_equal(ksm, i < N / 2);
		/* KSM frames stayed where they were; the private rest moved. */
		assert_int_equal(sp_page_node(pool, b + i * SP_PAGE_SIZE), ksm ? ksm_node : other);
		assert_int_equal(
			check_page(b + i * SP_PAGE_SIZE, i < N / 2 ? (uint64_t)i : 900u + i), 0);
	}
	assert_int_equal(stat_of(pool, "pages_migrated"), moved + N / 2);
	/* Without STRICT the same kind of call succeeds, and still skips KSM frames. */
	assert_int_equal(
		sp_mbind(pool, b, N * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << ksm_node, SP_MPOL_MF_MOVE),
		0);
	assert_int_equal(sp_page_node(pool, b + (N - 1) * SP_PAGE_SIZE), ksm_node);
	assert_int_equal(
		sp_mbind(pool, b, N * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << other, SP_MPOL_MF_MOVE),
		0);
	assert_int_equal(sp_page_node(pool, b), ksm_node);
	assert_int_equal(sp_page_node(pool, b + (N - 1) * SP_PAGE_SIZE), other);
	sp_pool_destroy(pool);
}

/*
 * merge_across_nodes=0: a KSM frame whose sharers all move follows them to
 * their node, and is merged there afterwards (its key moved with it).
 */
static void ksm_follows_sharers(void **state)
{
	sp_pool *pool = two_nodes();
	char *c, *d;

	(void)state;
	assert_int_equal(sp_ksm_set(pool, "merge_across_nodes", 0), 0);
	c = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE); /* section 0: node 0 */
	for (int i = 0; i < N; i++)
		fill_page(c + i * SP_PAGE_SIZE, (uint64_t)(i % (N / 2)));
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N / 2);
	all_on(pool, c, N, 0);
	assert_int_equal(sp_mbind(pool, c, N * SP_PAGE_SIZE, SP_MPOL_BIND, 2,
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 0);
	all_on(pool, c, N, 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_page_is_ksm(pool, c + i * SP_PAGE_SIZE), 1);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, (uint64_t)(i % (N / 2))), 0);
	}
	assert_int_equal(ksm_of(pool, "pages_sharing"), N / 2);
	/* A page of node 1 with the same content now merges with the moved frame. */
	d = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_int_equal(sp_mbind(pool, d, N * SP_PAGE_SIZE, SP_MPOL_BIND, 2, SP_MPOL_MF_MOVE), 0);
	all_on(pool, d, N, 1);
	fill_page(d, 3);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(sp_page_is_ksm(pool, d), 1);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N / 2 + 1);
	sp_pool_destroy(pool);
}

/* New frames honour the policy: here, those an unmerge allocates. */
static void new_frames_interleave(void **state)
{
	sp_pool *pool = two_nodes();
	char *a = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	for (int i = 0; i < 16; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, (uint64_t)i);
	}
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 16);
	assert_int_equal(sp_mbind(pool, b, 16 * SP_PAGE_SIZE, SP_MPOL_INTERLEAVE, 3, 0), 0);
	/* b's pages are the sharers that leave: their new frames interleave. */
	assert_int_equal(sp_madvise(pool, b, 16 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(sp_page_node(pool, b + i * SP_PAGE_SIZE), i % 2);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	sp_pool_destroy(pool);
}

static void bad_arguments(void **state)
{
	sp_pool *pool = two_nodes();
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, 0);
	static char outside[3 * SP_PAGE_SIZE];
	char *out = (char *)(((uintptr_t)outside + SP_PAGE_SIZE - 1) & ~(uintptr_t)4095);
	struct {
		void *addr;
		size_t len;
		int mode;
		unsigned long mask;
		unsigned flags;
		int err;
	} bad[] = {
		{ a, SP_PAGE_SIZE, 7, 1, 0, EINVAL },
		{ a, SP_PAGE_SIZE, -1, 1, 0, EINVAL },
		{ a, SP_PAGE_SIZE, SP_MPOL_DEFAULT, 1, 0, EINVAL },
		{ a, SP_PAGE_SIZE, SP_MPOL_BIND, 0, 0, EINVAL },
		{ a, SP_PAGE_SIZE, SP_MPOL_BIND, 4, 0, EINVAL }, /* node 2 of 2 */
		{ a, SP_PAGE_SIZE, SP_MPOL_BIND, 1, 0x10, EINVAL },
		{ a + 1, SP_PAGE_SIZE, SP_MPOL_BIND, 1, 0, EINVAL },
		{ a, 0, SP_MPOL_BIND, 1, 0, EINVAL },
		{ out, SP_PAGE_SIZE, SP_MPOL_BIND, 1, 0, ENOMEM },
		{ a, (N + 1) * SP_PAGE_SIZE, SP_MPOL_BIND, 1, 0, ENOMEM },
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(sp_mbind(pool, bad[i].addr, bad[i].len, bad[i].mode, bad[i].mask,
					  bad[i].flags),
				 -1);
		assert_int_equal(errno, bad[i].err);
	}
	assert_int_equal(sp_mbind(NULL, a, SP_PAGE_SIZE, SP_MPOL_BIND, 1, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_mbind(pool, a, SP_PAGE_SIZE, SP_MPOL_DEFAULT, 0, 0), 0);
	assert_int_equal(stat_of(pool, "pages_migrated"), 0);
	sp_pool_destroy(pool);
}

/* ---- policy ranges, and sp_mbind racing sp_mbind and sp_free ---- */

static int nr_policies(sp_pool *pool, void *addr)
{
	struct sp_region *r;
	int n;

	rwlock_rdlock(&pool->rt.lock);
	r = region_find(pool, addr);
	n = r ? r->nr_policies : -1;
	rwlock_unlock(&pool->rt.lock);
	return n;
}

/*
 * Policies set page by page merge into one range, a range over others cuts
 * them, DEFAULT removes them: the list stays as short as what it says (it
 * grew by one per call, and was scanned per page).
 */
static void policy_ranges_merge(void **state)
{
	sp_pool *pool = two_nodes();
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, 0);

	(void)state;
	for (int round = 0; round < 4; round++)
		for (int i = 0; i < N; i++)
			assert_int_equal(sp_mbind(pool, a + i * SP_PAGE_SIZE, SP_PAGE_SIZE,
						  SP_MPOL_PREFERRED, 2, 0),
					 0);
	assert_int_equal(nr_policies(pool, a), 1);
	/* BIND node 0 over [8, 24), node 1 over [16, 40): four ranges, in order. */
	assert_int_equal(sp_mbind(pool, a + 8 * SP_PAGE_SIZE, 16 * SP_PAGE_SIZE, SP_MPOL_BIND, 1,
				  SP_MPOL_MF_MOVE),
			 0);
	assert_int_equal(sp_mbind(pool, a + 16 * SP_PAGE_SIZE, 24 * SP_PAGE_SIZE, SP_MPOL_BIND, 2,
				  SP_MPOL_MF_MOVE),
			 0);
	assert_int_equal(nr_policies(pool, a), 4);
	for (int i = 0; i < N; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		if (i >= 8 && i < 40) /* moved there; the rest stays where PREFERRED found it */
			assert_int_equal(sp_page_node(pool, a + i * SP_PAGE_SIZE), i >= 16);
	}
	/* The same policy again over the middle joins its neighbours. */
	assert_int_equal(sp_mbind(pool, a + 8 * SP_PAGE_SIZE, 8 * SP_PAGE_SIZE, SP_MPOL_PREFERRED,
				  2, SP_MPOL_MF_MOVE),
			 0);
	assert_int_equal(nr_policies(pool, a), 3);
	assert_int_equal(sp_mbind(pool, a, N * SP_PAGE_SIZE, SP_MPOL_DEFAULT, 0, 0), 0);
	assert_int_equal(nr_policies(pool, a), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	sp_pool_destroy(pool);
}

struct race {
	sp_pool *pool;
	char *r;
	long n;
	_Atomic bool stop;
};

/* Single-page policies on the last 64 pages, over and over. */
static void *race_setter(void *p)
{
	struct race *x = p;

	for (long i = 0; !atomic_load(&x->stop); i = (i + 1) % 64)
		assert_int_equal(sp_mbind(x->pool, x->r + (x->n - 64 + i) * SP_PAGE_SIZE,
					  SP_PAGE_SIZE, SP_MPOL_PREFERRED, 2, 0),
				 0);
	return NULL;
}

/* Small regions moved between nodes while they are freed. */
static void *race_churn(void *p)
{
	struct race *x = p;

	for (unsigned long v = 0; !atomic_load(&x->stop); v++) {
		char *c = sp_alloc(x->pool, 16 * SP_PAGE_SIZE, 0);

		assert_non_null(c);
		for (int i = 0; i < 16; i++)
			fill_page(c + i * SP_PAGE_SIZE, v + (unsigned)i);
		sp_mbind(x->pool, c, 16 * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << (v & 1),
			 SP_MPOL_MF_MOVE);
		for (int i = 0; i < 16; i++)
			assert_int_equal(check_page(c + i * SP_PAGE_SIZE, v + (unsigned)i), 0);
		assert_int_equal(sp_free(x->pool, c), 0);
	}
	return NULL;
}

/*
 * sp_mbind moving a range while another sp_mbind sets policies on the same
 * region and a third thread moves and frees small regions: every byte stays,
 * and (under AddressSanitizer, as CI runs it) no policy array or region is
 * read after it was freed. It was a heap use-after-free.
 */
static void mbind_races(void **state)
{
	struct sp_pool_config cfg = { .section_size = 4096 * SP_PAGE_SIZE,
				      .nr_sections = 4,
				      .nr_nodes = 2,
				      .flags = SP_POOL_NO_KSMD };
	struct race x = { .n = 4096 };
	pthread_t setter, churn;

	(void)state;
	x.pool = sp_pool_create(&cfg);
	assert_non_null(x.pool);
	x.r = sp_alloc(x.pool, (size_t)x.n * SP_PAGE_SIZE, 0);
	assert_non_null(x.r);
	for (long i = 0; i < x.n; i++)
		fill_page(x.r + i * SP_PAGE_SIZE, (uint64_t)i);
	assert_int_equal(pthread_create(&setter, NULL, race_setter, &x), 0);
	assert_int_equal(pthread_create(&churn, NULL, race_churn, &x), 0);
	for (int round = 0; round < 12; round++)
		assert_int_equal(sp_mbind(x.pool, x.r, (size_t)(x.n - 64) * SP_PAGE_SIZE,
					  SP_MPOL_BIND, 1ul << (round & 1), SP_MPOL_MF_MOVE),
				 0);
	atomic_store(&x.stop, true);
	pthread_join(setter, NULL);
	pthread_join(churn, NULL);
	for (long i = 0; i < x.n; i++)
		assert_int_equal(check_page(x.r + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	for (long i = 0; i < x.n - 64; i++)
		assert_int_equal(sp_page_node(x.pool, x.r + i * SP_PAGE_SIZE), 1);
	assert_true(nr_policies(x.pool, x.r) <= 2);
	sp_pool_destroy(x.pool);
}

/* ---- where a page's frame comes from when its nodes are full or gone ---- */

static char swap_path[64];

/* Two 1 MiB sections, section 0 on node 0 and 1 on node 1, swap_pages of swap. */
static sp_pool *two_nodes_swap(size_t swap_pages, unsigned flags)
{
	struct sp_pool_config cfg = { .section_size = 256 * SP_PAGE_SIZE,
				      .nr_sections = 2,
				      .nr_nodes = 2,
				      .swap_path = swap_pages ? swap_path : NULL,
				      .swap_size = swap_pages * SP_PAGE_SIZE,
				      .flags = flags | SP_POOL_NO_KSMD };
	sp_pool *pool;

	unlink(swap_path); /* a failed test's pool was not destroyed */
	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	/* No reclaim thread at work: what frees frames here is the fault's own reclaim. */
	assert_int_equal(sp_tune(pool, "swap.low_watermark", 0), 0);
	assert_int_equal(sp_tune(pool, "swap.high_watermark", 0), 0);
	return pool;
}

static char *alloc_bound(sp_pool *pool, unsigned long n, int node, bool fill)
{
	char *p = sp_alloc(pool, n * SP_PAGE_SIZE, 0);

	assert_non_null(p);
	assert_int_equal(sp_mbind(pool, p, n * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << node,
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 0);
	for (unsigned long i = 0; fill && i < n; i++)
		fill_page(p + i * SP_PAGE_SIZE, 1000 * (unsigned)node + i);
	return p;
}

/*
 * Pages bound to node 1 wait in swap (written ones) or for their first touch
 * (never written), and node 1's only section goes offline: a BIND mask with
 * no memory left is ignored, as the kernel does, and they come back on
 * node 0 with their bytes. It was a SIGBUS, "pool and swap are full".
 */
static void bind_node_gone(void **state)
{
	sp_pool *pool = two_nodes_swap(1024, 0);
	char *a = alloc_bound(pool, 16, 1, true), *b = alloc_bound(pool, 16, 1, false);

	(void)state;
	assert_int_equal(sp_swap_out(pool, a, 16 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_swap_out(pool, b, 16 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_section_offline(pool, 1), 0);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, 1000 + (unsigned)i), 0);
		assert_int_equal(sp_page_node(pool, a + i * SP_PAGE_SIZE), 0);
		assert_true(page_is_zero(b + i * SP_PAGE_SIZE));
		fill_page(b + i * SP_PAGE_SIZE, 7);
	}
	/* And when node 1 is back, new frames come from it again. */
	assert_int_equal(sp_section_online(pool, 1), 0);
	assert_int_equal(sp_swap_out(pool, a, SP_PAGE_SIZE), 0);
	assert_int_equal(check_page(a, 1000), 0);
	assert_int_equal(sp_page_node(pool, a), 1);
	sp_pool_destroy(pool);
}

/*
 * Node 1 full, node 0 nearly empty, swap with room: a swapped page bound to
 * node 1 is touched. Reclaim frees a frame on node 1 (cold pages there),
 * not wherever the clock hand is; it was a SIGBUS with 112 frames free.
 */
static void bind_node_full(void **state)
{
	sp_pool *pool = two_nodes_swap(1024, 0);
	char *r = alloc_bound(pool, 16, 1, true), *filler, *d;

	(void)state;
	filler = alloc_bound(pool, 240, 1, true); /* node 1 full but for r's 16 */
	assert_int_equal(sp_swap_out(pool, r, 16 * SP_PAGE_SIZE), 0);
	d = alloc_bound(pool, 128, 0, true);
	filler = alloc_bound(pool, 16, 1, true); /* node 1's last 16 frames */
	(void)filler;
	d = alloc_bound(pool, 16, 0, true); /* the lowest address: the clock's first */
	(void)d;
	for (int i = 0; i < 16; i++) {
		assert_int_equal(check_page(r + i * SP_PAGE_SIZE, 1000 + (unsigned)i), 0);
		assert_int_equal(sp_page_node(pool, r + i * SP_PAGE_SIZE), 1);
	}
	assert_true(stat_of(pool, "reclaim_direct") > 0);
	sp_pool_destroy(pool);
}

/*
 * Node 1's frames, held locked for a while (as a move or a swap-out holds
 * them). Their lock bits are set and cleared behind the lock checker's back,
 * as another thread's operation would hold them: this test's thread takes
 * them and a second one lets them go, which the checker refuses (lock.h).
 */
struct busy_frames {
	sp_pool *pool;
	unsigned long first, nr;
	useconds_t hold;
};

static void *release_frames(void *p)
{
	struct busy_frames *b = p;

	usleep(b->hold);
	for (unsigned long f = b->first; f < b->first + b->nr; f++) {
		struct sp_page *page = pfn_to_page(b->pool, f);

		if (atomic_fetch_and(&page->flags, ~(PG_locked | PG_waiters)) & PG_waiters)
			os_futex_wake(&page->flags, INT_MAX);
	}
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Node 1 full of pages that are busy for a moment, swap with room: a swapped
 * page bound to node 1 is touched, and its fault waits for them (with no lock held, so that their
 * holders can finish), then reclaims there. Reclaim found every page locked
 * and the fault failed at once: a SIGBUS after 238 s of the stress test,
 * "nothing there could be reclaimed (every page busy or pinned)".
 */
static void bind_node_busy(void **state)
{
	sp_pool *pool = two_nodes_swap(1024, 0);
	char *r = alloc_bound(pool, 1, 1, true), *filler;
	struct busy_frames b = { pool, 256, 256, 100 * 1000 }; /* section 1: node 1 */
	pthread_t t;
	double t0;

	(void)state;
	assert_int_equal(sp_swap_out(pool, r, SP_PAGE_SIZE), 0);
	filler = alloc_bound(pool, 256, 1, true);
	assert_int_equal(stat_of(pool, "frames_free"), 256); /* node 0's only */
	for (unsigned long f = b.first; f < b.first + b.nr; f++)
		assert_false(atomic_fetch_or(&pfn_to_page(pool, f)->flags, PG_locked) & PG_locked);
	assert_int_equal(pthread_create(&t, NULL, release_frames, &b), 0);
	t0 = now_ms();
	assert_int_equal(check_page(r, 1000), 0); /* swapped in: it waited for them */
	assert_true(now_ms() - t0 >= 90);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sp_page_node(pool, r), 1);
	for (int i = 0; i < 256; i++)
		assert_int_equal(check_page(filler + i * SP_PAGE_SIZE, 1000 + (unsigned)i), 0);
	sp_pool_destroy(pool);
}

static void log_to_pipe(enum sp_log_level level, const char *msg, void *priv)
{
	(void)level;
	if (write(*(int *)priv, msg, strlen(msg)) < 0 || write(*(int *)priv, "\n", 1) < 0)
		abort();
}

/*
 * Where a page may take a frame from has none, and swap is full: that, and
 * only that, is a SIGBUS, and the log says which nodes and which of the two.
 */
static void bind_node_full_swap_full(void **state)
{
	char msg[4096] = "";
	int fds[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		sp_pool *pool = two_nodes_swap(64, 0);
		char *a = alloc_bound(pool, 256, 1, true), *b;

		close(fds[0]);
		sp_set_log(log_to_pipe, &fds[1]);
		assert_int_equal(sp_swap_out(pool, a, 64 * SP_PAGE_SIZE), 0); /* swap full */
		b = alloc_bound(pool, 64, 1, true); /* node 1 full */
		(void)b;
		signal(SIGBUS, SIG_DFL); /* not cmocka's: this child is to die of it */
		(void)*(volatile char *)a; /* SIGBUS: nowhere to go */
		_exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
		got += n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(swap_path);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
	assert_non_null(strstr(msg, "no free frame on nodes {1} and swap is full"));
}

/*
 * Pages bound to node 1 merge, node 1 goes offline, and they are unmerged:
 * their new frames come from node 0 (it was ENOMEM), in both fault modes.
 */
static void unmerge_bind_node_gone(void **state)
{
	sp_pool *pool = two_nodes_swap(0, *(unsigned *)*state);
	char *a = alloc_alike(pool, 8), *b = alloc_alike(pool, 8);

	assert_int_equal(sp_mbind(pool, a, 8 * SP_PAGE_SIZE, SP_MPOL_BIND, 2, SP_MPOL_MF_MOVE), 0);
	assert_int_equal(sp_mbind(pool, b, 8 * SP_PAGE_SIZE, SP_MPOL_BIND, 2, SP_MPOL_MF_MOVE), 0);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 8);
	assert_int_equal(sp_section_offline(pool, 1), 0);
	assert_int_equal(sp_madvise(pool, a, 8 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	assert_int_equal(sp_madvise(pool, b, 8 * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(sp_page_is_ksm(pool, a + i * SP_PAGE_SIZE), 0);
		assert_int_equal(sp_page_node(pool, a + i * SP_PAGE_SIZE), 0);
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	sp_pool_destroy(pool);
}

int main(void)
{
	/* The test process's pid: a forked child's pool uses it too, and the parent removes it. */
	snprintf(swap_path, sizeof(swap_path), "/tmp/sp-mempolicy-%d", getpid());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bind_moves),	       cmocka_unit_test(move_skips_ksm),
		cmocka_unit_test(ksm_follows_sharers), cmocka_unit_test(new_frames_interleave),
		cmocka_unit_test(bad_arguments),       cmocka_unit_test(bind_node_gone),
		cmocka_unit_test(bind_node_full),      cmocka_unit_test(bind_node_full_swap_full),
		BOTH(unmerge_bind_node_gone),	       cmocka_unit_test(policy_ranges_merge),
		cmocka_unit_test(mbind_races),	       cmocka_unit_test(bind_node_busy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
