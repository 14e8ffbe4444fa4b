/* SPDX-License-Identifier: MIT */
/* Memory policy: sp_mbind's modes, moves that skip KSM frames, STRICT, errors. */
#include <errno.h>

#include "common.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bind_moves),	       cmocka_unit_test(move_skips_ksm),
		cmocka_unit_test(ksm_follows_sharers), cmocka_unit_test(new_frames_interleave),
		cmocka_unit_test(bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
