/* SPDX-License-Identifier: MIT */
/*
 * api_outside: the foundation of the samepage API, checked as a program
 * outside the project sees it: only <samepage.h> and libc, built as API.md
 * says (from the top of the source tree, after `ninja -C build`):
 *
 *   cc -Wall -Wextra -Werror -Iinclude tests/outside/api_outside.c -Lbuild \
 *      -lsamepage -Wl,-rpath,$PWD/build -pthread -o build/api_outside
 *
 * Output: one line per check, "ok N - ..." or "not ok N - ... (details: ...)",
 * "# " lines for notes, and last "P passed, F failed". Exit status 0 only if
 * nothing failed. A failed check is recorded and the run goes on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <samepage.h>

#include "check.h"

#define PG ((size_t)SP_PAGE_SIZE)
#define MIB ((size_t)1 << 20)
#define SMALL_SECTION (4 * MIB)
#define SMALL_SECTIONS 4u
#define SMALL_NODES 2u

/* ---- helpers ---------------------------------------------------------- */

static size_t pages_of(size_t len)
{
	return (len + PG - 1) / PG;
}

static bool page_aligned(const void *p)
{
	return ((uintptr_t)p & (PG - 1)) == 0;
}

static void *stack_page(void)
{
	char here;

	return (void *)((uintptr_t)&here & ~(uintptr_t)(PG - 1));
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static unsigned char pattern_byte(size_t page, size_t off, unsigned seed)
{
	return (unsigned char)(page * 131 + off * 7 + seed);
}

static void fill_pattern(unsigned char *p, size_t npages, unsigned seed)
{
	for (size_t i = 0; i < npages; i++)
		for (size_t j = 0; j < PG; j++)
			p[i * PG + j] = pattern_byte(i, j, seed);
}

/* Offset of the first byte that differs from the pattern; -1 if none. */
static long check_pattern(const unsigned char *p, size_t npages, unsigned seed)
{
	for (size_t i = 0; i < npages; i++)
		for (size_t j = 0; j < PG; j++)
			if (p[i * PG + j] != pattern_byte(i, j, seed))
				return (long)(i * PG + j);
	return -1;
}

static sp_pool *small_pool(unsigned flags)
{
	struct sp_pool_config cfg = {
		.section_size = SMALL_SECTION,
		.nr_sections = SMALL_SECTIONS,
		.nr_nodes = SMALL_NODES,
		.flags = flags,
	};

	return sp_pool_create(&cfg);
}

/* sp_alloc must fail with errno want; frees what it returns if it does not. */
__attribute__((format(printf, 5, 6))) static void
expect_alloc_fail(sp_pool *pool, size_t len, unsigned flags, int want, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	void *p;
	int e;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	errno = 0;
	p = sp_alloc(pool, len, flags);
	e = errno;
	report(!p && e == want, (long)(uintptr_t)p, e, "%s: NULL with %s", what, errname(want));
	if (p && pool)
		sp_free(pool, p);
}

/* ---- pool creation ---------------------------------------------------- */

static void test_defaults(void)
{
	sp_pool *pool;
	pid_t pid;
	int status = -1;

	errno = 0;
	pool = sp_pool_create(NULL);
	if (!report(pool != NULL, 0, errno, "sp_pool_create(NULL) creates a default pool"))
		return;
	report(stat_of(pool, "frames_total") == 16 * 16384, stat_of(pool, "frames_total"), 0,
	       "default pool: frames_total == 16 * 16384");
	report(stat_of(pool, "sections_online") == 16, stat_of(pool, "sections_online"), 0,
	       "default pool: sections_online == 16");
	report(stat_of(pool, "frames_free") == 16 * 16384, stat_of(pool, "frames_free"), 0,
	       "default pool: all frames free");
	sp_pool_destroy(pool);

	/* In a child, so that a crash is a failed check and not the end of the run. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		sp_pool_destroy(NULL);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	report(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, status, 0,
	       "sp_pool_destroy(NULL) is harmless");
}

static void expect_bad_config(const struct sp_pool_config *cfg, const char *what)
{
	sp_pool *pool;
	int e;

	errno = 0;
	pool = sp_pool_create(cfg);
	e = errno;
	report(!pool && e == EINVAL, (long)(uintptr_t)pool, e,
	       "sp_pool_create rejects %s: NULL with EINVAL", what);
	sp_pool_destroy(pool);
}

static void test_bad_configs(void)
{
	struct sp_pool_config cfg;
	char swap[64];

	cfg = (struct sp_pool_config){ .section_size = 4 * MIB + 100, .nr_sections = 2 };
	expect_bad_config(&cfg, "section_size not a multiple of 4096");
	cfg = (struct sp_pool_config){ .section_size = 4 * MIB,
				       .nr_sections = 4,
				       .max_sections = 2 };
	expect_bad_config(&cfg, "max_sections < nr_sections");
	cfg = (struct sp_pool_config){ .section_size = 4 * MIB, .nr_sections = 2, .flags = 0x80 };
	expect_bad_config(&cfg, "unknown flags bit 0x80");

	snprintf(swap, sizeof(swap), "/tmp/api_outside.%d.swap", (int)getpid());
	cfg = (struct sp_pool_config){ .section_size = 4 * MIB,
				       .nr_sections = 2,
				       .swap_path = swap,
				       .swap_size = 64 * MIB + 1 };
	expect_bad_config(&cfg, "swap_size not a page multiple");
	unlink(swap);
}

/* ---- regions ---------------------------------------------------------- */

static void test_zeroed(sp_pool *pool, const char *tag, size_t len)
{
	long used0 = stat_of(pool, "frames_used"), free0 = stat_of(pool, "frames_free");
	long npages = (long)pages_of(len), used1, free1;
	unsigned char *p;

	errno = 0;
	p = sp_alloc(pool, len, 0);
	if (!report(p && page_aligned(p), (long)(uintptr_t)p, errno,
		    "[%s] sp_alloc(%zu) returns page-aligned memory", tag, len))
		return;
	report(all_zero(p, len), 0, 0, "[%s] sp_alloc(%zu) memory reads as zeros", tag, len);
	used1 = stat_of(pool, "frames_used");
	free1 = stat_of(pool, "frames_free");
	report(used1 - used0 == npages, used1 - used0, 0,
	       "[%s] sp_alloc(%zu): frames_used grows by %ld", tag, len, npages);
	report(free0 - free1 == npages, free0 - free1, 0,
	       "[%s] sp_alloc(%zu): frames_free falls by %ld", tag, len, npages);
	memset(p, 0xa5, len);
	EXPECT_OK(sp_free(pool, p), "[%s] sp_free of the %zu-byte region", tag, len);
	report(stat_of(pool, "frames_used") == used0, stat_of(pool, "frames_used"), 0,
	       "[%s] sp_free(%zu-byte region) gives frames_used back", tag, len);
	report(stat_of(pool, "frames_free") == free0, stat_of(pool, "frames_free"), 0,
	       "[%s] sp_free(%zu-byte region) gives frames_free back", tag, len);
}

static void test_pattern(sp_pool *pool, const char *tag)
{
	const size_t npages = 37;
	unsigned char *p;
	long bad;

	errno = 0;
	p = sp_alloc(pool, npages * PG, SP_MERGEABLE);
	if (!report(p != NULL, 0, errno, "[%s] sp_alloc(37 pages, SP_MERGEABLE)", tag))
		return;
	fill_pattern(p, npages, 3);
	bad = check_pattern(p, npages, 3);
	report(bad < 0, bad, 0, "[%s] a pattern written to every page reads back", tag);
	fill_pattern(p, npages, 200);
	bad = check_pattern(p, npages, 200);
	report(bad < 0, bad, 0, "[%s] a second pattern over the first reads back", tag);
	EXPECT_OK(sp_free(pool, p), "[%s] sp_free of the pattern region", tag);
}

static void test_pipe(sp_pool *pool, const char *tag, unsigned char *buf, unsigned char *back)
{
	unsigned char *p = sp_alloc(pool, 4 * PG, 0);
	int fds[2];
	ssize_t n;

	if (!report(p != NULL, 0, errno, "[%s] sp_alloc(4 pages) for pipe I/O", tag))
		return;
	if (!report(pipe(fds) == 0, -1, errno, "[%s] pipe(2)", tag)) {
		sp_free(pool, p);
		return;
	}
	n = write(fds[1], buf, 2 * PG) == (ssize_t)(2 * PG) ? read_full(fds[0], p + 100, 2 * PG) :
							      -1;
	report(n == (ssize_t)(2 * PG) && !memcmp(p + 100, buf, 2 * PG), (long)n, errno,
	       "[%s] read(2) from a pipe into region memory (across a page boundary)", tag);
	n = write(fds[1], p + 100, 2 * PG);
	report(n == (ssize_t)(2 * PG), (long)n, errno, "[%s] write(2) from region memory to a pipe",
	       tag);
	n = n == (ssize_t)(2 * PG) ? read_full(fds[0], back, 2 * PG) : -1;
	report(n == (ssize_t)(2 * PG) && !memcmp(back, buf, 2 * PG), (long)n, errno,
	       "[%s] what write(2) sent from region memory arrives intact", tag);
	close(fds[0]);
	close(fds[1]);
	sp_free(pool, p);
}

static void test_file(sp_pool *pool, const char *tag, unsigned char *buf, unsigned char *back)
{
	unsigned char *p = sp_alloc(pool, 2 * PG, 0);
	FILE *f = tmpfile();
	int fd = f ? fileno(f) : -1;
	ssize_t n;

	if (!report(p && f, 0, errno, "[%s] sp_alloc(2 pages) and tmpfile() for file I/O", tag))
		goto out;
	n = pwrite(fd, buf, 2 * PG, 0) == (ssize_t)(2 * PG) ? pread(fd, p, 2 * PG, 0) : -1;
	report(n == (ssize_t)(2 * PG) && !memcmp(p, buf, 2 * PG), (long)n, errno,
	       "[%s] read(2) from a file into untouched region pages", tag);
	n = pwrite(fd, p, 2 * PG, 2 * PG);
	report(n == (ssize_t)(2 * PG), (long)n, errno, "[%s] write(2) from region memory to a file",
	       tag);
	n = n == (ssize_t)(2 * PG) ? pread(fd, back, 2 * PG, 2 * PG) : -1;
	report(n == (ssize_t)(2 * PG) && !memcmp(back, buf, 2 * PG), (long)n, errno,
	       "[%s] what write(2) wrote from region memory reads back from the file", tag);
out:
	if (f)
		fclose(f);
	if (p)
		sp_free(pool, p);
}

static void test_syscalls(sp_pool *pool, const char *tag)
{
	unsigned char *buf = malloc(2 * PG), *back = malloc(2 * PG);

	if (report(buf && back, 0, errno, "[%s] malloc for system call buffers", tag)) {
		fill_pattern(buf, 2, 77);
		test_pipe(pool, tag, buf, back);
		memset(back, 0, 2 * PG);
		test_file(pool, tag, buf, back);
	}
	free(buf);
	free(back);
}

static void test_free_errors(sp_pool *pool, const char *tag)
{
	char *p = sp_alloc(pool, 3 * PG, 0), *heap = malloc(64);
	long free0;

	if (!report(p != NULL, 0, errno, "[%s] sp_alloc(3 pages) for sp_free errors", tag)) {
		free(heap);
		return;
	}
	EXPECT_ERR(sp_free(pool, NULL), EINVAL, "[%s] sp_free(NULL): -1 EINVAL", tag);
	EXPECT_ERR(sp_free(pool, p + PG), EINVAL,
		   "[%s] sp_free of a page inside a region (not its start): -1 EINVAL", tag);
	EXPECT_ERR(sp_free(pool, p + 1), EINVAL,
		   "[%s] sp_free of an unaligned pointer inside a region: -1 EINVAL", tag);
	EXPECT_ERR(sp_free(pool, stack_page()), EINVAL,
		   "[%s] sp_free of a stack (non-pool) pointer: -1 EINVAL", tag);
	if (heap)
		EXPECT_ERR(sp_free(pool, heap), EINVAL,
			   "[%s] sp_free of a malloc (non-pool) pointer: -1 EINVAL", tag);
	EXPECT_OK(sp_free(pool, p), "[%s] sp_free of the region after the refused calls", tag);
	free0 = stat_of(pool, "frames_free");
	EXPECT_ERR(sp_free(pool, p), EINVAL, "[%s] double sp_free: -1 EINVAL", tag);
	report(stat_of(pool, "frames_free") == free0, stat_of(pool, "frames_free"), 0,
	       "[%s] double sp_free leaves frames_free unchanged", tag);
	free(heap);
}

static void test_too_big(sp_pool *pool, const char *tag)
{
	long total = stat_of(pool, "frames_total"), free0;
	void *held = sp_alloc(pool, 10 * PG, 0), *p;

	free0 = stat_of(pool, "frames_free");
	expect_alloc_fail(pool, (size_t)(total + 1) * PG, 0, ENOMEM,
			  "[%s] sp_alloc(frames_total + 1 pages)", tag);
	report(stat_of(pool, "frames_free") == free0, stat_of(pool, "frames_free"), 0,
	       "[%s] failed oversized sp_alloc leaves frames_free unchanged", tag);
	expect_alloc_fail(pool, (size_t)(free0 + 1) * PG, 0, ENOMEM,
			  "[%s] sp_alloc(frames_free + 1 pages)", tag);
	report(stat_of(pool, "frames_free") == free0, stat_of(pool, "frames_free"), 0,
	       "[%s] failed sp_alloc(frames_free + 1 pages) leaves frames_free unchanged", tag);
	expect_alloc_fail(pool, (size_t)1 << 40, 0, ENOMEM, "[%s] sp_alloc(1 TiB)", tag);
	p = sp_alloc(pool, 16 * PG, 0);
	report(p != NULL, 0, errno, "[%s] a fitting sp_alloc works after the refused ones", tag);
	if (p)
		sp_free(pool, p);
	if (held)
		sp_free(pool, held);
}

static void test_alloc_errors(sp_pool *pool, const char *tag)
{
	expect_alloc_fail(pool, 0, 0, EINVAL, "[%s] sp_alloc(len 0)", tag);
	expect_alloc_fail(pool, PG, 0x80, EINVAL, "[%s] sp_alloc(flags 0x80)", tag);
	test_too_big(pool, tag);
}

static void test_exhaust(sp_pool *pool, const char *tag)
{
	long free0 = stat_of(pool, "frames_free");
	unsigned char *p;

	errno = 0;
	p = sp_alloc(pool, (size_t)free0 * PG, 0);
	if (!report(p != NULL, 0, errno, "[%s] sp_alloc of exactly all %ld free frames", tag,
		    free0))
		return;
	report(stat_of(pool, "frames_free") == 0, stat_of(pool, "frames_free"), 0,
	       "[%s] frames_free == 0 with every frame allocated", tag);
	p[0] = 1;
	p[(size_t)free0 * PG - 1] = 2;
	report(p[0] == 1 && p[(size_t)free0 * PG - 1] == 2, 0, 0,
	       "[%s] first and last byte of the full-pool region are writable", tag);
	expect_alloc_fail(pool, 1, 0, ENOMEM, "[%s] sp_alloc(1) on a full pool", tag);
	EXPECT_OK(sp_free(pool, p), "[%s] sp_free of the full-pool region", tag);
	report(stat_of(pool, "frames_free") == free0, stat_of(pool, "frames_free"), 0,
	       "[%s] frames_free back to %ld after freeing the full-pool region", tag, free0);
}

static void test_resident(sp_pool *pool, const char *tag)
{
	const size_t n = 64;
	long b0 = stat_of(pool, "bytes_resident"), b1, b2;
	unsigned char *p = sp_alloc(pool, n * PG, 0);

	if (!report(p != NULL, 0, errno, "[%s] sp_alloc(64 pages) for bytes_resident", tag))
		return;
	for (size_t i = 0; i < n; i++)
		p[i * PG] = (unsigned char)(i + 1);
	b1 = stat_of(pool, "bytes_resident");
	report(b1 - b0 >= (long)(n * PG), b1 - b0, 0,
	       "[%s] bytes_resident grows by >= 64 * 4096 after touching 64 pages", tag);
	sp_free(pool, p);
	b2 = stat_of(pool, "bytes_resident");
	report(b2 <= b0, b2, 0,
	       "[%s] bytes_resident falls back to its baseline (%ld) after sp_free", tag, b0);
}

static void test_madvise(sp_pool *pool, const char *tag)
{
	char *p = sp_alloc(pool, 8 * PG, 0);

	if (!report(p != NULL, 0, errno, "[%s] sp_alloc(8 pages) for sp_madvise", tag))
		return;
	EXPECT_OK(sp_madvise(pool, p, 8 * PG, SP_MADV_MERGEABLE),
		  "[%s] sp_madvise(whole region, MERGEABLE) == 0", tag);
	EXPECT_OK(sp_madvise(pool, p, 8 * PG, SP_MADV_UNMERGEABLE),
		  "[%s] sp_madvise(whole region, UNMERGEABLE) == 0", tag);
	EXPECT_OK(sp_madvise(pool, p + 2 * PG, 3 * PG, SP_MADV_MERGEABLE),
		  "[%s] sp_madvise(sub-range, MERGEABLE) == 0", tag);
	EXPECT_OK(sp_madvise(pool, p + 2 * PG, 3 * PG, SP_MADV_UNMERGEABLE),
		  "[%s] sp_madvise(sub-range, UNMERGEABLE) == 0", tag);
	EXPECT_ERR(sp_madvise(pool, p, PG, 7), EINVAL, "[%s] sp_madvise(advice 7): -1 EINVAL", tag);
	EXPECT_ERR(sp_madvise(pool, p + 1, PG, SP_MADV_MERGEABLE), EINVAL,
		   "[%s] sp_madvise(unaligned addr): -1 EINVAL", tag);
	EXPECT_ERR(sp_madvise(pool, p, 0, SP_MADV_MERGEABLE), EINVAL,
		   "[%s] sp_madvise(len 0): -1 EINVAL", tag);
	EXPECT_ERR(sp_madvise(pool, stack_page(), PG, SP_MADV_MERGEABLE), ENOMEM,
		   "[%s] sp_madvise(page-aligned stack address): -1 ENOMEM", tag);
	EXPECT_ERR(sp_madvise(pool, p + 6 * PG, 4 * PG, SP_MADV_MERGEABLE), ENOMEM,
		   "[%s] sp_madvise(range running past the region's end): -1 ENOMEM", tag);
	sp_free(pool, p);
}

static void test_page_queries(sp_pool *pool, const char *tag)
{
	char *p = sp_alloc(pool, 2 * PG, 0);
	void *outside = stack_page();
	int v;

	if (!report(p != NULL, 0, errno, "[%s] sp_alloc(2 pages) for page queries", tag))
		return;
	p[PG] = 1;
	v = sp_page_node(pool, p);
	report(v >= 0 && v < (int)SMALL_NODES, v, errno,
	       "[%s] sp_page_node of an untouched page "
	       "in [0, nr_nodes)",
	       tag);
	v = sp_page_node(pool, p + PG + 123);
	report(v >= 0 && v < (int)SMALL_NODES, v, errno,
	       "[%s] sp_page_node inside a touched page "
	       "in [0, nr_nodes)",
	       tag);
	v = sp_page_section(pool, p + PG);
	report(v >= 0 && v < (int)SMALL_SECTIONS, v, errno, "[%s] sp_page_section in [0, sections)",
	       tag);
	v = sp_page_is_ksm(pool, p);
	report(v == 0, v, errno, "[%s] sp_page_is_ksm of a fresh page == 0", tag);
	EXPECT_ERR(sp_page_node(pool, outside), EINVAL, "[%s] sp_page_node(non-pool): -1 EINVAL",
		   tag);
	EXPECT_ERR(sp_page_section(pool, outside), EINVAL,
		   "[%s] sp_page_section(non-pool): -1 EINVAL", tag);
	EXPECT_ERR(sp_page_is_ksm(pool, outside), EINVAL,
		   "[%s] sp_page_is_ksm(non-pool): -1 EINVAL", tag);
	sp_free(pool, p);
	EXPECT_ERR(sp_page_node(pool, p), EINVAL, "[%s] sp_page_node(freed region): -1 EINVAL",
		   tag);
}

static void test_mode(unsigned flags, long want_mode, const char *tag)
{
	sp_pool *pool;
	long mode;

	errno = 0;
	pool = small_pool(flags);
	if (!report(pool != NULL, 0, errno, "[%s] sp_pool_create(4 x 4 MiB, flags %#x)", tag,
		    flags))
		return;
	mode = stat_of(pool, "fault_mode");
	report(mode == want_mode, mode, 0, "[%s] fault_mode == %ld", tag, want_mode);
	test_zeroed(pool, tag, 1);
	test_zeroed(pool, tag, 3 * PG + 5);
	test_zeroed(pool, tag, 100 * PG);
	test_pattern(pool, tag);
	test_syscalls(pool, tag);
	test_free_errors(pool, tag);
	test_alloc_errors(pool, tag);
	test_exhaust(pool, tag);
	test_resident(pool, tag);
	test_madvise(pool, tag);
	test_page_queries(pool, tag);
	sp_pool_destroy(pool);
}

/* ---- KSM knobs and counters ------------------------------------------- */

static const char *const ksm_knobs[] = {
	"run",
	"pages_to_scan",
	"sleep_millisecs",
	"max_page_sharing",
	"merge_across_nodes",
	"use_zero_pages",
	"smart_scan",
};

static const char *const ksm_counters[] = {
	"pages_shared",	  "pages_sharing",  "pages_unshared",	  "pages_volatile",
	"pages_scanned",  "full_scans",	    "stable_node_chains", "stable_node_dups",
	"ksm_zero_pages", "general_profit",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void test_ksm_names(sp_pool *pool)
{
	long v;
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(ksm_knobs); i++)
		EXPECT_OK(sp_ksm_get(pool, ksm_knobs[i], &v), "sp_ksm_get(knob %s) readable",
			  ksm_knobs[i]);
	for (i = 0; i < ARRAY_SIZE(ksm_counters); i++)
		EXPECT_OK(sp_ksm_get(pool, ksm_counters[i], &v), "sp_ksm_get(counter %s) readable",
			  ksm_counters[i]);
	for (i = 0; sp_ksm_name(i); i++)
		if (sp_ksm_get(pool, sp_ksm_name(i), &v))
			break;
	report(!sp_ksm_name(i) && i >= ARRAY_SIZE(ksm_knobs) + ARRAY_SIZE(ksm_counters), i, 0,
	       "every sp_ksm_name() is readable, at least the 17 of API.md");
	EXPECT_ERR(sp_ksm_get(pool, "no_such_knob", &v), EINVAL, "sp_ksm_get(unknown): -1 EINVAL");
	EXPECT_ERR(sp_ksm_get(pool, NULL, &v), EINVAL, "sp_ksm_get(NULL name): -1 EINVAL");
	EXPECT_ERR(sp_ksm_get(pool, "run", NULL), EINVAL, "sp_ksm_get(NULL value): -1 EINVAL");
	EXPECT_ERR(sp_ksm_set(pool, "no_such_knob", 1), EINVAL, "sp_ksm_set(unknown): -1 EINVAL");
	EXPECT_ERR(sp_ksm_set(pool, NULL, 1), EINVAL, "sp_ksm_set(NULL name): -1 EINVAL");
	for (i = 0; i < ARRAY_SIZE(ksm_counters); i++)
		EXPECT_ERR(sp_ksm_set(pool, ksm_counters[i], 0), EPERM,
			   "sp_ksm_set(counter %s): -1 EPERM", ksm_counters[i]);
}

static void test_ksm_ranges(sp_pool *pool)
{
	static const struct {
		const char *knob;
		long value;
	} bad[] = {
		{ "run", 3 },
		{ "run", -1 },
		{ "max_page_sharing", 1 },
		{ "merge_across_nodes", 2 },
		{ "use_zero_pages", 2 },
		{ "smart_scan", -1 },
		{ "pages_to_scan", -1 },
	}, good[] = {
		{ "pages_to_scan", 1000 },
		{ "sleep_millisecs", 0 },
		{ "use_zero_pages", 1 },
		{ "max_page_sharing", 2 },
	};
	unsigned i;
	long before, after;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		before = ksm_of(pool, bad[i].knob);
		EXPECT_ERR(sp_ksm_set(pool, bad[i].knob, bad[i].value), EINVAL,
			   "sp_ksm_set(%s, %ld): -1 EINVAL", bad[i].knob, bad[i].value);
		after = ksm_of(pool, bad[i].knob);
		report(after == before, after, 0, "%s unchanged (%ld) after the refused set",
		       bad[i].knob, before);
	}
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		int rc, e;

		errno = 0;
		rc = sp_ksm_set(pool, good[i].knob, good[i].value);
		e = errno;
		after = ksm_of(pool, good[i].knob);
		report(rc == 0 && after == good[i].value, rc ? rc : after, e,
		       "sp_ksm_set(%s, %ld) reads back", good[i].knob, good[i].value);
	}
}

static void test_ksm(void)
{
	sp_pool *pool;

	errno = 0;
	pool = small_pool(0);
	if (!report(pool != NULL, 0, errno, "sp_pool_create for the KSM knob checks"))
		return;
	test_ksm_names(pool);
	test_ksm_ranges(pool);
	sp_pool_destroy(pool);
}

/* ---- pool figures ----------------------------------------------------- */

static const char *const stat_names[] = {
	"frames_total",	  "frames_free",     "frames_used",	"frames_ksm",
	"bytes_resident", "sections_online", "swap_slots_used", "fault_mode",
	"faults_cow",	  "faults_swapin",   "pages_migrated",
};

static void test_stats(void)
{
	sp_pool *pool = small_pool(0);
	long v = -1;
	unsigned i;

	if (!report(pool != NULL, 0, errno, "sp_pool_create for the sp_stat checks"))
		return;
	for (i = 0; i < ARRAY_SIZE(stat_names); i++) {
		int rc = sp_stat(pool, stat_names[i], &v);

		report(rc == 0 && v >= 0, rc ? rc : v, rc ? errno : 0,
		       "sp_stat(%s) readable and >= 0", stat_names[i]);
	}
	for (i = 0; sp_stat_name(i); i++)
		if (sp_stat(pool, sp_stat_name(i), &v))
			break;
	report(!sp_stat_name(i) && i >= ARRAY_SIZE(stat_names), i, 0,
	       "every sp_stat_name() is readable, at least the 11 of API.md");
	report(stat_of(pool, "frames_total") == (long)(SMALL_SECTIONS * SMALL_SECTION / PG),
	       stat_of(pool, "frames_total"), 0, "small pool: frames_total == 4 * 1024");
	report(stat_of(pool, "sections_online") == SMALL_SECTIONS, stat_of(pool, "sections_online"),
	       0, "small pool: sections_online == 4");
	report(stat_of(pool, "frames_used") + stat_of(pool, "frames_free") ==
		       stat_of(pool, "frames_total"),
	       stat_of(pool, "frames_used"), 0, "frames_used + frames_free == frames_total");
	EXPECT_ERR(sp_stat(pool, "no_such_stat", &v), EINVAL, "sp_stat(unknown): -1 EINVAL");
	EXPECT_ERR(sp_stat(NULL, "frames_total", &v), EINVAL, "sp_stat(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_stat(pool, NULL, &v), EINVAL, "sp_stat(NULL name): -1 EINVAL");
	EXPECT_ERR(sp_stat(pool, "frames_total", NULL), EINVAL, "sp_stat(NULL value): -1 EINVAL");
	sp_pool_destroy(pool);
}

/* ---- NULL pool -------------------------------------------------------- */

static void test_null_pool(void)
{
	void *page = stack_page();
	long v;

	expect_alloc_fail(NULL, PG, 0, EINVAL, "sp_alloc(NULL pool)");
	EXPECT_ERR(sp_free(NULL, page), EINVAL, "sp_free(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_madvise(NULL, page, PG, SP_MADV_MERGEABLE), EINVAL,
		   "sp_madvise(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_ksm_set(NULL, "run", 1), EINVAL, "sp_ksm_set(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_ksm_get(NULL, "run", &v), EINVAL, "sp_ksm_get(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_stat(NULL, "frames_free", &v), EINVAL, "sp_stat(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_page_node(NULL, page), EINVAL, "sp_page_node(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_page_section(NULL, page), EINVAL, "sp_page_section(NULL pool): -1 EINVAL");
	EXPECT_ERR(sp_page_is_ksm(NULL, page), EINVAL, "sp_page_is_ksm(NULL pool): -1 EINVAL");
}

/* ---- log hook --------------------------------------------------------- */

struct capture {
	int total;
	int mmc;
	bool newline;
};

static void capture_log(enum sp_log_level level, const char *msg, void *priv)
{
	struct capture *cap = priv;
	size_t len = strlen(msg);

	cap->total++;
	if (strstr(msg, "max_map_count")) {
		cap->mmc++;
		cap->newline |= len && msg[len - 1] == '\n';
	}
	printf("# log hook (level %d): %s\n", (int)level, msg);
}

static long read_max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void test_log(void)
{
	struct sp_pool_config cfg = { .section_size = 64 * MIB,
				      .nr_sections = 1,
				      .max_sections = 1024 };
	struct capture cap = { 0 };
	long mmc = read_max_map_count();
	sp_pool *pool;

	if (mmc < 0 || mmc >= 1024l * 16384) {
		printf("# skip log hook check: vm.max_map_count is %ld\n", mmc);
		return;
	}
	sp_set_log(capture_log, &cap);
	errno = 0;
	pool = sp_pool_create(&cfg);
	report(pool != NULL, 0, errno, "sp_pool_create(64 MiB x 1, max_sections 1024)");
	report(cap.mmc == 1, cap.mmc, 0,
	       "exactly one max_map_count message through the log hook (max_map_count %ld)", mmc);
	report(cap.mmc == 1 && !cap.newline, cap.newline, 0,
	       "the max_map_count message has no trailing newline");
	sp_pool_destroy(pool);
	sp_set_log(NULL, NULL);
}

/* ---- calls whose engines are not built yet ---------------------------- */

static int notifier(sp_pool *pool, enum sp_mem_action action, const struct sp_memory_notify *arg,
		    void *priv)
{
	(void)pool, (void)action, (void)arg, (void)priv;
	return 0;
}

/* Appends name to list if the call said ENOSYS; notes it otherwise. */
static void note_call(const char *name, long rc, int err, char *list, size_t size)
{
	if (rc == -1 && err == ENOSYS) {
		size_t used = strlen(list);

		snprintf(list + used, size - used, "%s%s", used ? ", " : "", name);
	} else {
		printf("# %s: returned %ld, errno %s (implemented)\n", name, rc, errname(err));
	}
}

#define NOTE(call, name) WITH_CALL(call, note_call(name, rc_, e_, list, sizeof(list)))

static void test_not_yet(void)
{
	sp_pool *pool = small_pool(0);
	char list[512] = "";
	char *p;

	if (!pool) {
		printf("# could not create a pool for the not-yet-built calls\n");
		return;
	}
	p = sp_alloc(pool, 4 * PG, SP_MERGEABLE);
	if (p) {
		NOTE(sp_set_merge_domain(pool, p, 4 * PG, 1), "sp_set_merge_domain");
		NOTE(sp_mbind(pool, p, 4 * PG, SP_MPOL_BIND, 1ul, 0), "sp_mbind");
		NOTE(sp_swap_out(pool, p, 4 * PG), "sp_swap_out");
	}
	NOTE(sp_ksm_scan(pool, 16), "sp_ksm_scan");
	NOTE(sp_register_memory_notifier(pool, notifier, NULL, 0), "sp_register_memory_notifier");
	NOTE(sp_section_offline(pool, SMALL_SECTIONS - 1), "sp_section_offline");
	NOTE(sp_section_online(pool, SMALL_SECTIONS - 1), "sp_section_online");
	printf("# not yet implemented (-1 ENOSYS): %s\n", list[0] ? list : "none");
	if (p)
		sp_free(pool, p);
	sp_pool_destroy(pool);
}

int main(void)
{
	test_defaults();
	test_bad_configs();
	test_mode(0, SP_FAULT_UFFD, "uffd");
	test_mode(SP_POOL_SIGSEGV, SP_FAULT_SIGSEGV, "sigsegv");
	test_ksm();
	test_stats();
	test_null_pool();
	test_log();
	test_not_yet();
	printf("%u passed, %u failed\n", nr_checks - nr_failed, nr_failed);
	return nr_failed ? 1 : 0;
}
