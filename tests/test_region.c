/* SPDX-License-Identifier: MIT */
/*
 * Regions as ordinary memory, in both fault modes: zero-filled, any length,
 * read and written by user code and by system calls; every bad argument
 * refused with the pool unchanged; lookups among many regions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "pool.h"

#define MODE (*(unsigned *)*state)

static void zero_filled_any_length(void **state)
{
	sp_pool *pool = pool_small(MODE, 2);
	size_t lens[] = { 1, SP_PAGE_SIZE - 1, SP_PAGE_SIZE, 3 * SP_PAGE_SIZE + 5, 1 << 20 };

	for (unsigned k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		long used = stat_of(pool, "frames_used");
		char *p = sp_alloc(pool, lens[k], 0);
		size_t pages = (lens[k] + SP_PAGE_SIZE - 1) / SP_PAGE_SIZE;

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % SP_PAGE_SIZE, 0);
		assert_int_equal(stat_of(pool, "frames_used"), used + (long)pages);
		for_each_page (q, p, pages * SP_PAGE_SIZE)
			assert_true(page_is_zero(q));
		assert_int_equal(sp_free(pool, p), 0);
		assert_int_equal(stat_of(pool, "frames_used"), used);
	}
	sp_pool_destroy(pool);
}

/* Freed frames are punched: the next region reads zeros, not old data. */
static void reuse_reads_zeros(void **state)
{
	sp_pool *pool = pool_small(MODE, 1);
	size_t len = 64 * SP_PAGE_SIZE;
	char *p = sp_alloc(pool, len, 0);

	memset(p, 0x5a, len);
	assert_int_equal(stat_of(pool, "bytes_resident"), (long)len);
	sp_free(pool, p);
	assert_int_equal(stat_of(pool, "bytes_resident"), 0);
	p = sp_alloc(pool, len, 0);
	for_each_page (q, p, len)
		assert_true(page_is_zero(q));
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

static void patterns_round_trip(void **state)
{
	sp_pool *pool = pool_small(MODE, 4);
	size_t len = 8 << 20;
	char *a = sp_alloc(pool, len, 0), *b = sp_alloc(pool, len, SP_MERGEABLE);
	uint64_t i = 0;

	assert_non_null(a);
	assert_non_null(b);
	for_each_page (q, a, len)
		fill_page(q, i++);
	for_each_page (q, b, len)
		fill_page(q, i++);
	i = 0;
	for_each_page (q, a, len)
		assert_int_equal(check_page(q, i++), 0);
	for_each_page (q, b, len)
		assert_int_equal(check_page(q, i++), 0);
	assert_true(stat_of(pool, "bytes_resident") >= (long)(2 * len));
	sp_free(pool, b);
	sp_free(pool, a);
	sp_pool_destroy(pool);
}

/* The kernel writes into and reads from region memory for the program. */
static void syscalls_read_write(void **state)
{
	sp_pool *pool = pool_small(MODE, 1);
	size_t len = 5 * SP_PAGE_SIZE + 100;
	char *src = sp_alloc(pool, len, SP_MERGEABLE), *dst = sp_alloc(pool, len, 0);
	char path[] = "/tmp/samepage-test-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	for (size_t i = 0; i < len; i++)
		src[i] = (char)(i * 7 + 3);
	assert_int_equal(write(fd, src, len), (ssize_t)len); /* kernel reads region */
	assert_int_equal(pread(fd, dst, len, 0), (ssize_t)len); /* kernel writes region */
	assert_memory_equal(src, dst, len);
	assert_int_equal(pread(fd, dst + 10, 50, 1000), 50); /* unaligned, inside a page */
	assert_memory_equal(dst + 10, src + 1000, 50);
	close(fd);
	sp_free(pool, src);
	sp_free(pool, dst);
	sp_pool_destroy(pool);
}

static void populate_flag(void **state)
{
	sp_pool *pool = pool_small(MODE, 1);
	char *p = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_POPULATE);

	assert_non_null(p);
	assert_int_equal(stat_of(pool, "bytes_resident"), 16 * SP_PAGE_SIZE);
	for_each_page (q, p, 16 * SP_PAGE_SIZE)
		assert_true(page_is_zero(q));
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

static void alloc_errors(void **state)
{
	sp_pool *pool = pool_small(MODE, 1);
	long total = stat_of(pool, "frames_total");
	char *all;

	errno = 0;
	assert_null(sp_alloc(NULL, 10, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(sp_alloc(pool, 0, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(sp_alloc(pool, 10, 0x100));
	assert_int_equal(errno, EINVAL);
	assert_null(sp_alloc(pool, (size_t)(total + 1) * SP_PAGE_SIZE, 0));
	assert_int_equal(errno, ENOMEM);
	assert_null(sp_alloc(pool, SIZE_MAX, 0));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(stat_of(pool, "frames_free"), total);
	all = sp_alloc(pool, (size_t)total * SP_PAGE_SIZE, 0); /* exactly all of it */
	assert_non_null(all);
	assert_int_equal(stat_of(pool, "frames_free"), 0);
	assert_null(sp_alloc(pool, 1, 0));
	assert_int_equal(errno, ENOMEM);
	sp_free(pool, all);
	assert_int_equal(stat_of(pool, "frames_free"), total);
	sp_pool_destroy(pool);
}

static void free_errors(void **state)
{
	sp_pool *pool = pool_small(MODE, 1);
	char *p = sp_alloc(pool, 4 * SP_PAGE_SIZE, 0);
	int local;

	errno = 0;
	assert_int_equal(sp_free(pool, NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_free(NULL, p), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_free(pool, p + SP_PAGE_SIZE), -1); /* inside, not the start */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_free(pool, &local), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(stat_of(pool, "frames_used"), 4);
	p[0] = 1; /* still there */
	assert_int_equal(sp_free(pool, p), 0);
	assert_int_equal(sp_free(pool, p), -1); /* twice */
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

static void madvise_checks(void **state)
{
	sp_pool *pool = pool_small(MODE, 1);
	char *p = sp_alloc(pool, 8 * SP_PAGE_SIZE, 0);
	struct sp_region *r;
	static char stack_like[3 * SP_PAGE_SIZE];
	char *outside = (char *)(((uintptr_t)stack_like + SP_PAGE_SIZE - 1) & ~(uintptr_t)4095);

	assert_int_equal(sp_madvise(pool, p, 8 * SP_PAGE_SIZE, SP_MADV_MERGEABLE), 0);
	assert_int_equal(sp_madvise(pool, p + SP_PAGE_SIZE, 100, SP_MADV_UNMERGEABLE), 0);
	r = region_find(pool, p);
	assert_true(r->pte[0] & PTE_MERGEABLE);
	assert_false(r->pte[1] & PTE_MERGEABLE); /* len rounds up to the page */
	assert_true(r->pte[2] & PTE_MERGEABLE);
	errno = 0;
	assert_int_equal(sp_madvise(pool, p, SP_PAGE_SIZE, 7), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_madvise(pool, p + 1, SP_PAGE_SIZE, SP_MADV_MERGEABLE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_madvise(pool, p, 0, SP_MADV_MERGEABLE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_madvise(pool, outside, SP_PAGE_SIZE, SP_MADV_MERGEABLE), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(sp_madvise(pool, p, 9 * SP_PAGE_SIZE, SP_MADV_MERGEABLE), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(sp_madvise(NULL, p, SP_PAGE_SIZE, SP_MADV_MERGEABLE), -1);
	assert_int_equal(errno, EINVAL);
	assert_false(r->pte[1] & PTE_MERGEABLE); /* failed calls changed nothing */
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

static void page_queries(void **state)
{
	sp_pool *pool = pool_small(MODE, 3);
	char *p = sp_alloc(pool, 2 * SP_PAGE_SIZE, 0);
	int x;

	assert_int_equal(sp_page_node(pool, p), 0);
	assert_int_equal(sp_page_section(pool, p), 0);
	assert_int_equal(sp_page_is_ksm(pool, p + 5000), 0);
	errno = 0;
	assert_int_equal(sp_page_node(pool, &x), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_page_section(pool, &x), -1);
	assert_int_equal(sp_page_is_ksm(pool, &x), -1);
	assert_int_equal(sp_page_is_ksm(NULL, p), -1);
	assert_int_equal(errno, EINVAL);
	sp_free(pool, p);
	assert_int_equal(sp_page_section(pool, p), -1); /* freed */
	sp_pool_destroy(pool);
}

/* Many regions: each address finds its own, in and around every region. */
static void many_regions_lookup(void **state)
{
	sp_pool *pool = pool_small(MODE, 4);
	enum { N = 1500 };
	char **r = calloc(N, sizeof(*r));

	for (int i = 0; i < N; i++) {
		r[i] = sp_alloc(pool, (size_t)(i % 3 + 1) * SP_PAGE_SIZE, 0);
		assert_non_null(r[i]);
		r[i][0] = (char)i;
	}
	for (int i = 0; i < N; i += 2) /* free every other one */
		assert_int_equal(sp_free(pool, r[i]), 0);
	for (int i = 0; i < N; i++) {
		struct sp_region *reg = region_find(pool, r[i] + (i % 3) * SP_PAGE_SIZE);

		if (i % 2) {
			assert_non_null(reg);
			assert_ptr_equal(reg->start, r[i]);
			assert_ptr_equal(region_by_id(pool, reg->id), reg);
			assert_int_equal(r[i][0], (char)i);
		} else {
			assert_null(reg);
		}
	}
	for (int i = 1; i < N; i += 2)
		assert_int_equal(sp_free(pool, r[i]), 0);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	free(r);
	sp_pool_destroy(pool);
}

/*
 * Out of mappings (vm.max_map_count) halfway through mapping a region's runs:
 * ENOMEM, and every frame is free again, none twice. In a child: it uses up
 * the process's mappings.
 */
static __attribute__((unused)) void out_of_mappings(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	if (!pid) {
		sp_pool *pool = pool_small(SP_POOL_NO_KSMD, 1);
		long total = stat_of(pool, "frames_total"), free0;
		char *one[64], *r;
		void *last = NULL;
		long nr = 0;

		/* Free frames in 32 runs of one: a region of 32 pages maps 32 runs. */
		for (int i = 0; i < 64; i++)
			one[i] = sp_alloc(pool, SP_PAGE_SIZE, 0);
		for (int i = 0; i < 64; i += 2)
			sp_free(pool, one[i]);
		free0 = stat_of(pool, "frames_free");
		/* Use up the mappings, then give a few back: the first runs map, then no more. */
		for (;;) {
			void *p = mmap(NULL, SP_PAGE_SIZE, nr % 2 ? PROT_READ : PROT_NONE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED)
				break;
			last = p;
			nr++;
		}
		if (errno != ENOMEM || !last)
			_exit(10);
		munmap(last, SP_PAGE_SIZE);
		for (int k = 0; k < 3; k++) /* and some neighbours: their holes split nothing */
			munmap((char *)last + (k + 1) * 2 * SP_PAGE_SIZE, SP_PAGE_SIZE);
		r = sp_alloc(pool, free0 * SP_PAGE_SIZE, 0);
		if (r || errno != ENOMEM)
			_exit(11);
		if (stat_of(pool, "frames_free") != free0 || stat_of(pool, "frames_total") != total)
			_exit(12);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(zero_filled_any_length),
		BOTH(reuse_reads_zeros),
		BOTH(patterns_round_trip),
		BOTH(syscalls_read_write),
		BOTH(populate_flag),
		BOTH(alloc_errors),
		BOTH(free_errors),
		BOTH(madvise_checks),
		BOTH(page_queries),
		BOTH(many_regions_lookup),
#ifndef __SANITIZE_ADDRESS__ /* its own allocator needs mappings: it cannot run out of them */
		cmocka_unit_test(out_of_mappings),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
