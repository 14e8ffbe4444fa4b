/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (os.h): the knobs themselves, and then the library's error
 * paths, each reached by failing one kernel call deterministically (the nth
 * call of one primitive). Every injected failure must end in a clean error
 * (a documented errno, nothing changed) or a retry: never a lost byte, a
 * crash, a hang, or a page left write-protected.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "os.h"
#include "pool.h"

static int teardown(void **state)
{
	(void)state;
	os_fail_reset();
	return 0;
}

static void fail_set(enum os_fail_point p, unsigned long nth, unsigned long every,
		     unsigned long times, int err)
{
	struct os_fail_attr a = { .nth = nth, .every = every, .times = times, .err = err };

	assert_int_equal(os_fail_set(p, &a), 0);
}

static int new_memfd(void)
{
	int fd = os_memfd_create("test_inject", 64 * PAGE_SIZE);

	assert_true(fd >= 0);
	return fd;
}

/* ---- the knobs --------------------------------------------------------- */

/* nth: exactly the nth call fails, with the point's usual errno; times widens it. */
static void nth_fails_that_call(void **state)
{
	int fd = new_memfd();

	(void)state;
	fail_set(OS_FAIL_MEMFD_PUNCH, 2, 0, 0, 0);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), 0);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), -1);
	assert_int_equal(errno, EINTR);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), 0);
	assert_int_equal(os_fail_injected(OS_FAIL_MEMFD_PUNCH), 1);
	assert_int_equal(os_fail_calls(OS_FAIL_MEMFD_PUNCH), 3);

	fail_set(OS_FAIL_MEMFD_PUNCH, 1, 0, 2, EIO);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), -1);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), 0);
	assert_int_equal(os_fail_injected(OS_FAIL_MEMFD_PUNCH), 2);
	/* Other points are untouched. */
	assert_int_equal(os_memfd_fill(fd, 0, "x", 1), 0);
	assert_int_equal(os_fail_calls(OS_FAIL_MEMFD_FILL), 0);
	close(fd);
}

/* every: about 1 in N, the same calls for the same seed, capped by times. */
static void every_is_seeded(void **state)
{
	char a[1000], b[1000];
	int fd = new_memfd(), n = 0;

	(void)state;
	os_fail_seed(42);
	fail_set(OS_FAIL_MEMFD_RESIDENT, 0, 4, 0, 0);
	for (int i = 0; i < 1000; i++)
		n += (a[i] = (char)(os_memfd_resident(fd) < 0));
	assert_in_range(n, 150, 350);
	assert_int_equal(os_fail_injected(OS_FAIL_MEMFD_RESIDENT), n);
	fail_set(OS_FAIL_MEMFD_RESIDENT, 0, 4, 0, 0);
	for (int i = 0; i < 1000; i++)
		b[i] = (char)(os_memfd_resident(fd) < 0);
	assert_memory_equal(a, b, sizeof(a));
	os_fail_seed(43);
	fail_set(OS_FAIL_MEMFD_RESIDENT, 0, 4, 0, 0);
	for (int i = 0; i < 1000; i++)
		b[i] = (char)(os_memfd_resident(fd) < 0);
	assert_memory_not_equal(a, b, sizeof(a));
	fail_set(OS_FAIL_MEMFD_RESIDENT, 0, 2, 5, 0);
	for (int i = 0; i < 1000; i++)
		os_memfd_resident(fd);
	assert_int_equal(os_fail_injected(OS_FAIL_MEMFD_RESIDENT), 5);
	os_fail_seed(1);
	close(fd);
}

/* Only errnos the kernel call can return; nothing else is accepted. */
static void errno_must_be_real(void **state)
{
	struct os_fail_attr a = { .nth = 1, .err = ENOMEM };

	(void)state;
	assert_int_equal(os_fail_set(OS_FAIL_MEMFD_PUNCH, &a), -1);
	assert_int_equal(errno, EINVAL);
	a.err = ENOSPC;
	assert_int_equal(os_fail_set(OS_FAIL_FILE_WRITE, &a), 0);
	assert_int_equal(os_fail_set(OS_FAIL_NR, &a), -1);
	for (unsigned p = 0; p < OS_FAIL_NR; p++)
		assert_non_null(os_fail_name(p));
	assert_null(os_fail_name(OS_FAIL_NR));
}

/* SAMEPAGE_FAIL's syntax: all or nothing, and where it stopped making sense. */
static void parse_spec(void **state)
{
	const char *bad = NULL;
	int fd = new_memfd();

	(void)state;
	assert_int_equal(
		os_fail_parse("punch:nth=2:errno=EIO,resident:every=1:times=1,seed=9", &bad), 0);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), 0);
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(os_memfd_resident(fd), -1);
	assert_true(os_memfd_resident(fd) >= 0);
	os_fail_reset();

	assert_int_equal(os_fail_parse("punch:nth=1,nosuch:nth=1", &bad), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(bad, "nosuch:nth=1");
	assert_int_equal(os_memfd_punch(fd, 0, PAGE_SIZE), 0); /* nothing applied */
	assert_int_equal(os_fail_parse("punch:nth=x", &bad), -1);
	assert_string_equal(bad, "punch:nth=x");
	assert_int_equal(os_fail_parse("punch:errno=ENOMEM", &bad), -1);
	assert_int_equal(os_fail_parse("punch:when=1", &bad), -1);
	assert_int_equal(os_fail_parse("seed=", &bad), -1);
	assert_int_equal(os_fail_parse("punch:nth=1;", &bad), -1);

	/* all: every point, each with an errno of its own where it cannot take the one named. */
	assert_int_equal(os_fail_parse("all:nth=1:errno=EIO", &bad), 0);
	assert_int_equal(os_memfd_fill(fd, 0, "x", 1), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(os_memfd_resident(fd), -1);
	assert_int_equal(errno, ENOMEM);
	os_fail_reset();
	close(fd);
}

/* Forced fallbacks of primitives that cannot fail: still right. */
static void cannot_fail_falls_back(void **state)
{
	int fd = new_memfd();
	char *map = os_memfd_map(fd, 64 * PAGE_SIZE), buf[PAGE_SIZE];

	(void)state;
	assert_non_null(map);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(os_memfd_fill(fd, 0, buf, PAGE_SIZE), 0);
	fail_set(OS_FAIL_MEMFD_COPY, 0, 1, 0, 0);
	os_memfd_copy(fd, map, 0, 8 * PAGE_SIZE, PAGE_SIZE);
	assert_true(os_fail_injected(OS_FAIL_MEMFD_COPY) > 0);
	assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, 8 * PAGE_SIZE), 0);
	for (size_t i = 0; i < PAGE_SIZE; i++)
		assert_int_equal(buf[i], 0x5a);
	os_unmap(map, 64 * PAGE_SIZE);
	close(fd);
}

/* A failed pagemap read says so, and reads "nothing known" (zeros). */
static void pagemap_read_fails_visibly(void **state)
{
	int pm_fd = os_pagemap_open();
	uint64_t pm = ~0ull;
	char *a = os_reserve(PAGE_SIZE);

	(void)state;
	assert_true(pm_fd >= 0);
	assert_int_equal(os_map_zero(a, PAGE_SIZE), 0);
	a[0] = 1;
	assert_int_equal(os_pagemap_read(pm_fd, a, 1, &pm), 0);
	assert_true(pm_present(pm));
	fail_set(OS_FAIL_PAGEMAP_READ, 1, 0, 0, 0);
	assert_int_equal(os_pagemap_read(pm_fd, a, 1, &pm), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(pm, 0);
	assert_int_equal(os_pagemap_read(-1, a, 1, &pm), -1);
	assert_int_equal(errno, EBADF);
	os_unmap(a, PAGE_SIZE);
	close(pm_fd);
}

/*
 * os_protect steps over pages the program unmapped when the whole range
 * fails with ENOMEM; but ENOMEM is also a split past vm.max_map_count, and
 * a page that is mapped and did not change must fail the call, or a window
 * in SIGSEGV mode would stand open with writers running through it. It
 * returned 0 here.
 */
static void protect_fails_when_mapped_page_cannot_change(void **state)
{
	int fd = new_memfd();
	char *a = os_reserve(4 * PAGE_SIZE);

	(void)state;
	assert_int_equal(os_map_frames(a, 4 * PAGE_SIZE, fd, 0, true), 0);
	fail_set(OS_FAIL_PROTECT, 1, 0, 2, ENOMEM); /* the range, then its first page */
	assert_int_equal(os_protect(a, 4 * PAGE_SIZE, false), -1);
	assert_int_equal(errno, ENOMEM);
	/* A hole still is stepped over. */
	os_fail_reset();
	assert_int_equal(os_unmap(a + PAGE_SIZE, PAGE_SIZE), 0);
	assert_int_equal(os_protect(a, 4 * PAGE_SIZE, false), 0);
	assert_int_equal(os_protect(a, 4 * PAGE_SIZE, true), 0);
	os_unmap(a, 4 * PAGE_SIZE);
	close(fd);
}

/* The uffd write-protect retry paths: ENOENT and EAGAIN are retried, up to a point. */
static void uffd_wp_retries(void **state)
{
	uint64_t features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	int uffd = os_uffd_open(), fd = new_memfd();
	char *a = os_reserve(PAGE_SIZE);

	(void)state;
	assert_true(uffd >= 0);
	assert_int_equal(os_uffd_api(uffd, &features), 0);
	assert_int_equal(os_map_frames(a, PAGE_SIZE, fd, 0, true), 0);
	a[0] = 1;
	assert_int_equal(os_uffd_register(uffd, a, PAGE_SIZE, false), 0);
	fail_set(OS_FAIL_UFFD_WP, 1, 0, 3, ENOENT);
	assert_int_equal(os_uffd_wp(uffd, a, PAGE_SIZE, true), 0);
	assert_int_equal(os_fail_calls(OS_FAIL_UFFD_WP), 4);
	fail_set(OS_FAIL_UFFD_WP, 1, 0, 3, EAGAIN);
	assert_int_equal(os_uffd_wp(uffd, a, PAGE_SIZE, false), 0);
	assert_int_equal(os_fail_calls(OS_FAIL_UFFD_WP), 4);
	fail_set(OS_FAIL_UFFD_WP, 1, 0, 1000, ENOENT);
	assert_int_equal(os_uffd_wp(uffd, a, PAGE_SIZE, true), -1);
	assert_int_equal(errno, ENOENT);
	os_fail_reset();
	os_unmap(a, PAGE_SIZE);
	close(fd);
	close(uffd);
}

/* ---- the library's paths ------------------------------------------------ */

/* A pool of one section of 16 frames: what is freed is what the next sp_alloc gets. */
static sp_pool *pool_tiny(unsigned flags)
{
	struct sp_pool_config cfg = {
		.section_size = 16 * PAGE_SIZE,
		.nr_sections = 1,
		.flags = flags | SP_POOL_NO_KSMD,
	};
	sp_pool *pool = sp_pool_create(&cfg);

	assert_non_null(pool);
	return pool;
}

/* The same with 64 slots of swap, and no reclaim thread: the slots in use are the test's. */
static sp_pool *pool_tiny_swap(void)
{
	static char path[64];
	struct sp_pool_config cfg = { .section_size = 16 * PAGE_SIZE,
				      .nr_sections = 1,
				      .swap_path = path,
				      .swap_size = 64 * PAGE_SIZE,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool;

	snprintf(path, sizeof(path), "/tmp/test_inject.%d.swap", getpid());
	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	assert_int_equal(sp_tune(pool, "swap.low_watermark", 0), 0);
	assert_int_equal(sp_tune(pool, "swap.high_watermark", 0), 0);
	return pool;
}

/*
 * A freed frame whose punch fails (EINTR, EIO) still read the old bytes, and
 * the next sp_alloc handed them to a new region as its "zero-filled" pages:
 * one program's data in another's page. Now the punch is tried again, then
 * the frame is cleared by writing zeros.
 */
static void freed_frames_read_zeros_when_punch_fails(void **state)
{
	static const struct {
		unsigned long times;
		int err;
	} cases[] = { { 1, EINTR }, { 1000, EIO } };

	(void)state;
	for (unsigned c = 0; c < 2; c++) {
		sp_pool *pool = pool_tiny(0);
		char *a = sp_alloc(pool, 16 * PAGE_SIZE, 0), *b;

		assert_non_null(a);
		memset(a, 0xa5, 16 * PAGE_SIZE);
		fail_set(OS_FAIL_MEMFD_PUNCH, 1, 0, cases[c].times, cases[c].err);
		assert_int_equal(sp_free(pool, a), 0);
		assert_true(os_fail_injected(OS_FAIL_MEMFD_PUNCH) > 0);
		os_fail_reset();
		b = sp_alloc(pool, 16 * PAGE_SIZE, 0);
		assert_non_null(b);
		for (unsigned long i = 0; i < 16; i++)
			assert_true(page_is_zero(b + i * PAGE_SIZE));
		assert_int_equal(stat_of(pool, "frames_used"), 16);
		sp_pool_destroy(pool);
	}
}

/*
 * A swap-in whose read of the slot, or whose write into the new frame,
 * failed once (EIO, ENOSPC, EINTR) gave the thread SIGBUS, and a failed
 * read even marked the page lost for good: its bytes were gone though the
 * slot was whole. Now EINTR is asked again by the OS layer, a read error is
 * read again, and a fault that found no frame it could fill tries again.
 */
static void swap_in_survives_failed_io(void **state)
{
	static const struct {
		enum os_fail_point p;
		unsigned long times;
		int err;
	} cases[] = {
		{ OS_FAIL_FILE_READ, 1, EIO },	   { OS_FAIL_FILE_READ, 2, EINTR },
		{ OS_FAIL_MEMFD_FILL, 1, ENOSPC }, { OS_FAIL_MEMFD_FILL, 3, EIO },
		{ OS_FAIL_MEMFD_FILL, 1, EINTR },
	};

	(void)state;
	for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		sp_pool *pool = pool_tiny_swap();
		char *a = sp_alloc(pool, 4 * PAGE_SIZE, 0);

		assert_non_null(a);
		for (int i = 0; i < 4; i++)
			fill_page(a + i * PAGE_SIZE, 100 + (uint64_t)i);
		assert_int_equal(sp_swap_out(pool, a, 4 * PAGE_SIZE), 0);
		fail_set(cases[c].p, 1, 0, cases[c].times, cases[c].err);
		for (int i = 0; i < 4; i++)
			assert_int_equal(check_page(a + i * PAGE_SIZE, 100 + (uint64_t)i), 0);
		assert_true(os_fail_injected(cases[c].p) > 0);
		os_fail_reset();
		assert_int_equal(stat_of(pool, "swap_errors"), 0);
		assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
		sp_pool_destroy(pool);
	}
}

/*
 * A page the kernel has copied on write reads "copied" in the pagemap; a
 * failed pagemap read read "not copied", and moving a KSM frame for an
 * offline then remapped the sharer over the program's copy: the write was
 * lost. Now the read is asked again, or the move backs out.
 */
static void offline_keeps_copy_when_pagemap_fails(void **state)
{
	static const unsigned long times[] = { 1, 1000 };

	(void)state;
	for (unsigned c = 0; c < 2; c++) {
		sp_pool *pool = pool_small(0, 2);
		char *a = sp_alloc(pool, 2 * PAGE_SIZE, SP_MERGEABLE);
		int sec, ret;

		assert_non_null(a);
		fill_page(a, 7);
		fill_page(a + PAGE_SIZE, 7);
		full_scan(pool);
		full_scan(pool);
		assert_int_equal(sp_page_is_ksm(pool, a), 1);
		sec = sp_page_section(pool, a);
		assert_true(sec >= 0);
		fill_page(a, 8); /* the kernel copies it; the scanner has not looked */
		fail_set(OS_FAIL_PAGEMAP_READ, 1, 0, times[c], 0);
		ret = sp_section_offline(pool, (unsigned)sec);
		assert_true(os_fail_injected(OS_FAIL_PAGEMAP_READ) > 0);
		os_fail_reset();
		assert_true(ret == 0 || errno == EBUSY || errno == ENOMEM);
		assert_int_equal(check_page(a, 8), 0);
		assert_int_equal(check_page(a + PAGE_SIZE, 7), 0);
		sp_pool_destroy(pool);
	}
}

/*
 * A merge remaps pages, then registers the new mappings with the fault
 * machinery. A registration that failed once (ENOMEM, EAGAIN) left mappings
 * nobody could write-protect: every later window over them failed with
 * ENOENT (an errno samepage(3) does not have), and pages were lost. Now it
 * is asked again; a window over a lost registration says ENOMEM.
 */
static void merge_survives_failed_registration(void **state)
{
	static const struct {
		enum os_fail_point p;
		int err;
	} cases[] = { { OS_FAIL_UFFD_REGISTER, ENOMEM }, { OS_FAIL_DONTFORK, EAGAIN } };

	(void)state;
	for (unsigned c = 0; c < 2; c++) {
		sp_pool *pool = pool_small(0, 1);
		char *a = sp_alloc(pool, 4 * PAGE_SIZE, SP_MERGEABLE);

		assert_non_null(a);
		for (int i = 0; i < 4; i++)
			fill_page(a + i * PAGE_SIZE, 5);
		fail_set(cases[c].p, 1, 0, 2, cases[c].err);
		full_scan(pool);
		full_scan(pool);
		assert_true(os_fail_injected(cases[c].p) > 0);
		os_fail_reset();
		assert_int_equal(sp_page_is_ksm(pool, a + PAGE_SIZE), 1);
		fill_page(a + PAGE_SIZE, 6);
		assert_int_equal(sp_madvise(pool, a, 4 * PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(check_page(a + i * PAGE_SIZE, i == 1 ? 6 : 5), 0);
			assert_int_equal(sp_page_is_ksm(pool, a + i * PAGE_SIZE), 0);
		}
		sp_pool_destroy(pool);
	}
}

/*
 * Unmerging a sharer of a swapped-out KSM frame copies the frame's slot. A
 * copy that failed (EIO) failed sp_madvise with EIO, and a full swap area
 * with ENOSPC, neither of which samepage(3) has for it. Now the copy is
 * tried again, and no slot is no room: ENOMEM.
 */
static void unmerge_of_swapped_sharer_survives_failed_copy(void **state)
{
	sp_pool *pool = pool_tiny_swap();
	char *a;

	(void)state;
	a = sp_alloc(pool, 4 * PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(a);
	for (int i = 0; i < 4; i++)
		fill_page(a + i * PAGE_SIZE, 11);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(sp_page_is_ksm(pool, a), 1);
	assert_int_equal(sp_swap_out(pool, a, 4 * PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 1);
	fail_set(OS_FAIL_FILE_COPY, 1, 0, 1, EIO);
	assert_int_equal(sp_madvise(pool, a, 4 * PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	assert_true(os_fail_injected(OS_FAIL_FILE_COPY) > 0);
	os_fail_reset();
	for (int i = 0; i < 4; i++)
		assert_int_equal(check_page(a + i * PAGE_SIZE, 11), 0);
	sp_pool_destroy(pool);
}

/*
 * SIGSEGV mode: a window that failed to unprotect on close (mprotect's
 * ENOMEM, once) left its page read-only with no window open, and the
 * program's next write to it was a crash: here a KSM sharer the kernel had
 * copied, which a move for an offline leaves mapped as it is. Now the close
 * asks again.
 */
static void window_close_unprotects_after_a_failure(void **state)
{
	(void)state;
	for (unsigned long nth = 1; nth <= 8; nth++) {
		sp_pool *pool = pool_small(SP_POOL_SIGSEGV, 2);
		char *a = sp_alloc(pool, 2 * PAGE_SIZE, SP_MERGEABLE);
		int sec;

		assert_non_null(a);
		fill_page(a, 3);
		fill_page(a + PAGE_SIZE, 3);
		full_scan(pool);
		full_scan(pool);
		assert_int_equal(sp_page_is_ksm(pool, a + PAGE_SIZE), 1);
		sec = sp_page_section(pool, a);
		fill_page(a + PAGE_SIZE, 4); /* the kernel's copy, not seen yet */
		fail_set(OS_FAIL_PROTECT, nth, 0, 2, ENOMEM);
		(void)sp_section_offline(pool, (unsigned)sec);
		os_fail_reset();
		for (int i = 0; i < 2; i++) /* a crash here when a page stayed read-only */
			fill_page(a + i * PAGE_SIZE, 20 + (uint64_t)i);
		for (int i = 0; i < 2; i++)
			assert_int_equal(check_page(a + i * PAGE_SIZE, 20 + (uint64_t)i), 0);
		sp_pool_destroy(pool);
	}
}

/*
 * A swap-out whose window could not write-protect (a registration lost:
 * ENOENT past its retries) asks whether the program unmapped the pages
 * (mincore); that look's EAGAIN, retried and answered, was left in errno:
 * sp_swap_out failed with EAGAIN, which samepage(3) does not have. Now
 * region_mark_lost keeps the caller's errno: ENOMEM, nothing changed.
 */
static void swap_out_keeps_its_errno(void **state)
{
	sp_pool *pool = pool_tiny_swap();
	char *a;

	(void)state;
	a = sp_alloc(pool, PAGE_SIZE, 0);
	assert_non_null(a);
	fill_page(a, 12);
	fail_set(OS_FAIL_UFFD_WP, 1, 0, 1000, ENOENT);
	fail_set(OS_FAIL_MINCORE, 1, 0, 1, EAGAIN);
	assert_int_equal(sp_swap_out(pool, a, PAGE_SIZE), -1);
	assert_int_equal(errno, ENOMEM);
	assert_true(os_fail_injected(OS_FAIL_MINCORE) > 0);
	os_fail_reset();
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	assert_int_equal(check_page(a, 12), 0);
	sp_pool_destroy(pool);
}

/*
 * Moving a KSM frame for an offline remaps its sharers one by one; when one
 * remap fails, those already moved are put back on the old frame. A put-back
 * that failed in turn (ENOMEM, once) only logged it: the sharer stayed
 * mapped to the new frame, which was freed, and read whatever the frame's
 * next owner wrote. Now the put-back asks again.
 */
static void failed_ksm_move_puts_sharers_back(void **state)
{
	(void)state;
	for (unsigned long nth = 1; nth <= 6; nth++) {
		sp_pool *pool = pool_small(0, 2);
		char *a = sp_alloc(pool, 4 * PAGE_SIZE, SP_MERGEABLE), *b;
		size_t n;
		int sec;

		assert_non_null(a);
		for (int i = 0; i < 4; i++)
			fill_page(a + i * PAGE_SIZE, 13);
		full_scan(pool);
		full_scan(pool);
		assert_int_equal(sp_page_is_ksm(pool, a), 1);
		sec = sp_page_section(pool, a);
		fail_set(OS_FAIL_MAP_FRAMES, nth, 0, 2, ENOMEM);
		(void)sp_section_offline(pool, (unsigned)sec);
		os_fail_reset();
		/* Every free frame to someone else, written. */
		n = (size_t)stat_of(pool, "frames_free");
		b = sp_alloc(pool, n * PAGE_SIZE, 0);
		assert_non_null(b);
		memset(b, 0x4b, n * PAGE_SIZE);
		for (int i = 0; i < 4; i++)
			assert_int_equal(check_page(a + i * PAGE_SIZE, 13), 0);
		sp_pool_destroy(pool);
	}
}

/*
 * A KSM frame's swap-out that fails half way maps the sharers it moved back
 * onto the frame. One whose mapping failed (ENOMEM, once) was left in
 * missing mode "for its next touch", and the node no longer looked whole:
 * every later sp_swap_out of those pages returned 0 and left them in
 * memory. Now the sharer is mapped again at once.
 */
static void failed_ksm_swap_out_maps_sharers_back(void **state)
{
	sp_pool *pool = pool_tiny_swap();
	char *a = sp_alloc(pool, 3 * PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	assert_non_null(a);
	for (int i = 0; i < 3; i++)
		fill_page(a + i * PAGE_SIZE, 16);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(sp_page_is_ksm(pool, a), 1);
	/* The second sharer cannot leave; the first, moved, cannot come back at once. */
	fail_set(OS_FAIL_MAP_MISSING, 2, 0, 1, ENOMEM);
	fail_set(OS_FAIL_MAP_FRAMES, 2, 0, 1, ENOMEM);
	assert_int_equal(sp_swap_out(pool, a, 3 * PAGE_SIZE), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(os_fail_injected(OS_FAIL_MAP_FRAMES), 1);
	os_fail_reset();
	assert_int_equal(sp_swap_out(pool, a, 3 * PAGE_SIZE), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_page_section(pool, a + i * PAGE_SIZE), -1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(check_page(a + i * PAGE_SIZE, 16), 0);
	sp_pool_destroy(pool);
}

/*
 * Unprotecting a range whose ioctl says ENOENT goes page by page, and a
 * page's ENOENT meant "not registered, nothing protected": believed at
 * once, an injected one (or a moment's) left a registered page protected
 * with no window, and its writer faulted for ever (fuzz seed 96312142753717
 * hung). Now a page's ENOENT is asked again.
 */
static void uffd_unprotect_asks_a_page_again(void **state)
{
	uint64_t features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	int uffd = os_uffd_open(), fd = new_memfd();
	char *a = os_reserve(2 * PAGE_SIZE);

	(void)state;
	assert_true(uffd >= 0);
	assert_int_equal(os_uffd_api(uffd, &features), 0);
	assert_int_equal(os_map_frames(a, 2 * PAGE_SIZE, fd, 0, true), 0);
	a[0] = 1;
	a[PAGE_SIZE] = 1;
	assert_int_equal(os_uffd_register(uffd, a, 2 * PAGE_SIZE, false), 0);
	assert_int_equal(os_uffd_wp(uffd, a, 2 * PAGE_SIZE, true), 0);
	assert_int_equal(page_uffd_wp(a), 1);
	fail_set(OS_FAIL_UFFD_WP, 1, 0, 2, ENOENT); /* the range, then its first page */
	assert_int_equal(os_uffd_wp(uffd, a, 2 * PAGE_SIZE, false), 0);
	assert_int_equal(page_uffd_wp(a), 0);
	assert_int_equal(page_uffd_wp(a + PAGE_SIZE), 0);
	os_fail_reset();
	os_unmap(a, 2 * PAGE_SIZE);
	close(fd);
	close(uffd);
}

/* Whether the kernel may write into addr: EFAULT from read(2) if not. */
static bool writable(char *addr)
{
	int p[2];
	bool ok;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	ok = read(p[0], addr, 1) == 1;
	close(p[0]);
	close(p[1]);
	return ok;
}

/*
 * A window that fails to open (here: the program unmapped a page of its
 * range) may have protected part of the range, and gave it back with one
 * try: an unprotect that failed then (mprotect's ENOMEM) left the page
 * read-only with no window, for good. Now it is asked again, as at a close.
 */
static void failed_window_open_unprotects_after_a_failure(void **state)
{
	(void)state;
	for (unsigned long nth = 1; nth <= 8; nth++) {
		sp_pool *pool = pool_small(SP_POOL_SIGSEGV, 1);
		char *a = sp_alloc(pool, 2 * PAGE_SIZE, SP_POPULATE);
		struct sp_window w;

		assert_non_null(a);
		assert_int_equal(os_unmap(a + PAGE_SIZE, PAGE_SIZE), 0);
		fail_set(OS_FAIL_PROTECT, nth, 0, 2, ENOMEM);
		assert_int_equal(wp_window_open(pool, &w, a, 2 * PAGE_SIZE), -1);
		assert_int_equal(errno, ENOMEM);
		os_fail_reset();
		assert_true(writable(a));
		sp_pool_destroy(pool);
	}
}

#define KNOB(fn) cmocka_unit_test_teardown(fn, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		KNOB(nth_fails_that_call),
		KNOB(every_is_seeded),
		KNOB(errno_must_be_real),
		KNOB(parse_spec),
		KNOB(cannot_fail_falls_back),
		KNOB(pagemap_read_fails_visibly),
		KNOB(protect_fails_when_mapped_page_cannot_change),
		KNOB(uffd_wp_retries),
		KNOB(freed_frames_read_zeros_when_punch_fails),
		KNOB(swap_in_survives_failed_io),
		KNOB(offline_keeps_copy_when_pagemap_fails),
		KNOB(merge_survives_failed_registration),
		KNOB(unmerge_of_swapped_sharer_survives_failed_copy),
		KNOB(window_close_unprotects_after_a_failure),
		KNOB(swap_out_keeps_its_errno),
		KNOB(failed_ksm_move_puts_sharers_back),
		KNOB(failed_ksm_swap_out_maps_sharers_back),
		KNOB(uffd_unprotect_asks_a_page_again),
		KNOB(failed_window_open_unprotects_after_a_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
