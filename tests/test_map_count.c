/* SPDX-License-Identifier: MIT */
/*
 * Mappings as a budget (issue 11): at Debian's default vm.max_map_count
 * (65,530), which this test sets and puts back (under the lock every test
 * that changes it takes), merging stops short of the limit, says so once,
 * and unmerge, swap, an offline and sp_alloc still work; map_count is the
 * kernel's own count of the pool's vmas.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAP_COUNT_FILE "/proc/sys/vm/max_map_count"
#ifndef DEFAULT_LIMIT
#define DEFAULT_LIMIT 65530
#endif

/* ---- vm.max_map_count, set and put back on every way out ---------------- */

static int lock_fd = -1;
static volatile long saved_limit = -1;

/* Async-signal-safe: open, write, close. */
static int write_limit(long v)
{
	char buf[32];
	int fd = open(MAP_COUNT_FILE, O_WRONLY), n, ok;

	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok ? 0 : -1;
}

static void restore_limit(void)
{
	if (saved_limit > 0 && !write_limit(saved_limit))
		saved_limit = -1;
}

static void on_fatal(int sig)
{
	restore_limit();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void put_limit(void);

/* 0: the limit is DEFAULT_LIMIT until put_limit; -1: cannot (not root). */
static int take_limit(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGABRT, SIGALRM, SIGQUIT };

	put_limit(); /* a test that failed left it taken */
	lock_fd = open("/tmp/samepage-max-map-count.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX))
		return -1;
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_fatal);
	saved_limit = file_long(MAP_COUNT_FILE);
	if (saved_limit <= 0 || write_limit(DEFAULT_LIMIT)) {
		saved_limit = -1;
		close(lock_fd);
		lock_fd = -1;
		return -1;
	}
	return 0;
}

static void put_limit(void)
{
	restore_limit();
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -1;
}

/* ---- the log -------------------------------------------------------------- */

static int log_lines;
static char log_first[512];

static void count_log(enum sp_log_level level, const char *msg, void *priv)
{
	(void)level;
	(void)priv;
	if (!log_lines++)
		snprintf(log_first, sizeof(log_first), "%s", msg);
}

static int setup(void **state)
{
	(void)state;
	atexit(restore_limit);
	sp_set_log(count_log, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sp_set_log(NULL, NULL);
	put_limit();
	return 0;
}

/* A failed test leaves by longjmp: the limit goes back here, not at its end. */
static int limit_teardown(void **state)
{
	(void)state;
	put_limit();
	return 0;
}

/* ---- W1 ------------------------------------------------------------------ */

#define W1_CONTENTS 1024

static unsigned long w1_contents = W1_CONTENTS;

/* W1: even pages copies of 1,024 contents (fewer in a small region), odd pages unique. */
static uint64_t w1_seed(unsigned long i)
{
	return i & 1 ? 1000000 + i : (i / 2) % w1_contents;
}

static void w1_fill(char *r, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		fill_page(r + i * SP_PAGE_SIZE, w1_seed(i));
}

static unsigned long w1_bad(const char *r, unsigned long n)
{
	unsigned long bad = 0;

	for (unsigned long i = 0; i < n; i++)
		bad += check_page(r + i * SP_PAGE_SIZE, w1_seed(i)) != 0;
	return bad;
}

static void scan_passes(sp_pool *pool, int passes)
{
	long want = ksm_of(pool, "full_scans") + passes;

	while (ksm_of(pool, "full_scans") < want)
		assert_true(sp_ksm_scan(pool, 4096) >= 0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(sp_pool *pool, const char *when)
{
	print_message("# %s: map_count %ld map_limit %ld merges_deferred %ld map_failures %ld "
		      "process vmas %ld\n",
		      when, stat_of(pool, "map_count"), stat_of(pool, "map_limit"),
		      stat_of(pool, "merges_deferred"), stat_of(pool, "map_failures"),
		      proc_maps_lines(NULL));
}

/*
 * The run at the default limit, at 512 MiB: W1 in a pool of 12 x 64
 * MiB sections with swap, three full scans. Every byte stays right, one log
 * line at most, merges stop short of the limit and at least 40% of what
 * could merge merges; then sp_alloc, an offline of a section holding KSM
 * frames, a swap-out and swap-in of the whole region and run=2 all succeed.
 */
static void w1_at_default_limit(void **state)
{
	const unsigned long n = (512ul << 20) / SP_PAGE_SIZE;
	const long could = (long)(n / 2 - W1_CONTENTS);
	char swap_path[] = "/tmp/sp-map-count-XXXXXX";
	struct sp_pool_config cfg = { .section_size = 64 << 20,
				      .nr_sections = 12,
				      .swap_path = swap_path,
				      .swap_size = 640ul << 20,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool;
	char *r, *more;
	long sharing, section = -1;
	double t0;
	int fd;

	(void)state;
	if (take_limit())
		skip();
	fd = mkstemp(swap_path);
	assert_true(fd >= 0);
	close(fd);
	unlink(swap_path); /* the pool makes it (O_EXCL) */
	log_lines = 0;
	pool = sp_pool_create(&cfg);
	if (!pool)
		print_message("# sp_pool_create: %m; log: %s\n", log_first);
	assert_non_null(pool);
	r = sp_alloc(pool, n * SP_PAGE_SIZE, SP_MERGEABLE);
	assert_non_null(r);
	w1_fill(r, n);
	t0 = now_s();
	scan_passes(pool, 3);
	sharing = ksm_of(pool, "pages_sharing");
	print_message("# W1 512 MiB at vm.max_map_count=%d: merged %ld of %ld (%.1f%%) in %.1f s\n",
		      DEFAULT_LIMIT, sharing, could, 100.0 * (double)sharing / (double)could,
		      now_s() - t0);
	report(pool, "merged");
	assert_int_equal(w1_bad(r, n), 0);
	assert_true(sharing * 10 >= could * 4);
	assert_true(stat_of(pool, "merges_deferred") > 0);
	assert_true(stat_of(pool, "map_count") <= stat_of(pool, "map_limit"));

	/* sp_alloc of 32 MiB more, every page of it written. */
	more = sp_alloc(pool, 32 << 20, 0);
	if (!more)
		print_message("# sp_alloc: %m; log: %s\n", log_first);
	assert_non_null(more);
	for_each_page (p, more, 32 << 20)
		fill_page(p, 7);
	for_each_page (p, more, 32 << 20)
		assert_int_equal(check_page(p, 7), 0);

	/* An offline of a section that holds KSM frames. */
	for (unsigned long i = 0; i < n && section < 0; i += 2)
		if (sp_page_is_ksm(pool, r + i * SP_PAGE_SIZE) == 1)
			section = sp_page_section(pool, r + i * SP_PAGE_SIZE);
	assert_true(section >= 0);
	assert_int_equal(sp_section_offline(pool, (unsigned)section), 0);
	assert_int_equal(w1_bad(r, n), 0);
	report(pool, "offline");

	/* The whole region to swap and back (its reads are the swap-ins). */
	assert_int_equal(sp_swap_out(pool, r, n * SP_PAGE_SIZE), 0);
	assert_int_equal(w1_bad(r, n), 0);
	assert_true(stat_of(pool, "faults_swapin") > 0);
	report(pool, "swap");

	/* run=2: every page private again. */
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	assert_int_equal(w1_bad(r, n), 0);
	report(pool, "unmerged");

	assert_int_equal(stat_of(pool, "map_failures"), 0);
	print_message("# log lines: %d%s%s\n", log_lines, log_lines ? ": " : "", log_first);
	assert_true(log_lines <= 1);
	assert_int_equal(sp_free(pool, more), 0);
	assert_int_equal(sp_free(pool, r), 0);
	sp_pool_destroy(pool);
	unlink(swap_path);
	put_limit();
}

/* ---- W2 ------------------------------------------------------------------ */

#define W2_IMAGE 16384ul
#define W2_COPIES 8

/* W2's image (WORKLOADS.md): every tenth page zeros, the rest distinct. */
static void w2_fill(char *page, unsigned long p)
{
	if (p % 10 == 0)
		memset(page, 0, SP_PAGE_SIZE);
	else
		fill_page(page, 5000000 + p);
}

/*
 * W2, eight copies of a 64 MiB image in eight regions, zero pages merged
 * with the zero page, at the default limit: the copies merge onto the first
 * one's frames in runs, a mapping per run, and at least 95% of what could
 * merge away does (the image's 14,745 distinct contents and its zero
 * content stay).
 */
static void w2_at_default_limit(void **state)
{
	const long could = (long)(W2_IMAGE * W2_COPIES) - 14746;
	struct sp_pool_config cfg = { .section_size = 64 << 20,
				      .nr_sections = 12,
				      .flags = SP_POOL_NO_KSMD };
	char *img[W2_COPIES];
	sp_pool *pool;
	long merged;
	double t0;

	(void)state;
	if (take_limit())
		skip();
	log_lines = 0;
	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	assert_int_equal(sp_ksm_set(pool, "use_zero_pages", 1), 0);
	for (int k = 0; k < W2_COPIES; k++) {
		img[k] = sp_alloc(pool, W2_IMAGE * SP_PAGE_SIZE, SP_MERGEABLE);
		assert_non_null(img[k]);
		for (unsigned long p = 0; p < W2_IMAGE; p++)
			w2_fill(img[k] + p * SP_PAGE_SIZE, p);
	}
	t0 = now_s();
	scan_passes(pool, 3);
	merged = ksm_of(pool, "pages_sharing") + ksm_of(pool, "ksm_zero_pages");
	print_message("# W2 8 x 64 MiB at vm.max_map_count=%d: merged away %ld of %ld (%.1f%%) "
		      "in %.1f s\n",
		      DEFAULT_LIMIT, merged, could, 100.0 * (double)merged / (double)could,
		      now_s() - t0);
	report(pool, "W2 merged");
	assert_true(merged * 100 >= could * 95);
	for (int k = 0; k < W2_COPIES; k++) {
		char want[SP_PAGE_SIZE];

		for (unsigned long p = 0; p < W2_IMAGE; p++) {
			w2_fill(want, p);
			assert_memory_equal(img[k] + p * SP_PAGE_SIZE, want, SP_PAGE_SIZE);
		}
	}
	assert_true(log_lines <= 1);
	sp_pool_destroy(pool);
	put_limit();
}

/* ---- map_count against the kernel's maps ------------------------------- */

/*
 * The pool's vmas as the test sees them: those that begin in one of its
 * regions, and the direct map (the memfd mapped outside any region).
 */
static long maps_of(char *const *regions, const size_t *lens, int nr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	long n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		uintptr_t start = (uintptr_t)strtoull(line, NULL, 16);
		bool in = false;

		for (int i = 0; i < nr; i++)
			in |= start >= (uintptr_t)regions[i] &&
			      start < (uintptr_t)regions[i] + lens[i];
		n += in || strstr(line, "memfd:samepage");
	}
	fclose(f);
	return n;
}

static void check_count(sp_pool *pool, char *const *regions, const size_t *lens, int nr,
			const char *when)
{
	long ours = stat_of(pool, "map_count"), kernel = maps_of(regions, lens, nr);

	print_message("# %s: map_count %ld, /proc/self/maps %ld\n", when, ours, kernel);
	assert_int_equal(ours, kernel);
	assert_true(stat_of(pool, "map_limit") > ours);
}

/* map_count is exact after merging, copy-on-write, swap and an offline. */
static void map_count_is_the_kernels(void **state)
{
	const unsigned long n = 2048;
	char swap_path[] = "/tmp/sp-map-count-XXXXXX";
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 4,
				      .swap_path = swap_path,
				      .swap_size = 16 << 20,
				      .flags = SP_POOL_NO_KSMD };
	char *regions[2];
	size_t lens[2] = { n * SP_PAGE_SIZE, 64 * SP_PAGE_SIZE };
	long section = -1, merged;
	sp_pool *pool;
	int fd;

	(void)state;
	fd = mkstemp(swap_path);
	assert_true(fd >= 0);
	close(fd);
	unlink(swap_path);
	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	regions[0] = sp_alloc(pool, lens[0], SP_MERGEABLE);
	regions[1] = sp_alloc(pool, lens[1], 0);
	assert_non_null(regions[0]);
	assert_non_null(regions[1]);
	check_count(pool, regions, lens, 2, "allocated");
	w1_contents = 16;
	w1_fill(regions[0], n);
	scan_passes(pool, 2);
	assert_true(ksm_of(pool, "pages_sharing") > 0);
	check_count(pool, regions, lens, 2, "merged");
	merged = stat_of(pool, "map_count");

	/* Copy-on-write of every fourth page, brought back by the next pass. */
	for (unsigned long i = 0; i < n; i += 4)
		fill_page(regions[0] + i * SP_PAGE_SIZE, w1_seed(i));
	check_count(pool, regions, lens, 2, "written");
	scan_passes(pool, 1);
	check_count(pool, regions, lens, 2, "copies back");

	/* Unmerged pages take the frames next to their neighbours': their vmas join. */
	assert_int_equal(sp_ksm_set(pool, "run", 2), 0);
	check_count(pool, regions, lens, 2, "unmerged");
	assert_true(stat_of(pool, "map_count") < merged / 8);
	assert_int_equal(w1_bad(regions[0], n), 0);
	assert_int_equal(sp_ksm_set(pool, "run", 0), 0);
	scan_passes(pool, 2);
	check_count(pool, regions, lens, 2, "merged again");

	assert_int_equal(sp_swap_out(pool, regions[0], lens[0] / 2), 0);
	check_count(pool, regions, lens, 2, "swapped out");
	assert_int_equal(w1_bad(regions[0], n), 0);
	check_count(pool, regions, lens, 2, "swapped in");

	for (unsigned long i = 0; i < n && section < 0; i += 2)
		if (sp_page_is_ksm(pool, regions[0] + i * SP_PAGE_SIZE) == 1)
			section = sp_page_section(pool, regions[0] + i * SP_PAGE_SIZE);
	assert_true(section >= 0);
	assert_int_equal(sp_section_offline(pool, (unsigned)section), 0);
	check_count(pool, regions, lens, 2, "offline");
	assert_int_equal(w1_bad(regions[0], n), 0);

	assert_int_equal(sp_free(pool, regions[1]), 0);
	check_count(pool, regions, lens, 1, "freed");
	w1_contents = W1_CONTENTS;
	sp_pool_destroy(pool);
	unlink(swap_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(map_count_is_the_kernels),
		cmocka_unit_test_teardown(w1_at_default_limit, limit_teardown),
		cmocka_unit_test_teardown(w2_at_default_limit, limit_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
