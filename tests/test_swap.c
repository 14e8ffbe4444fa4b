/* SPDX-License-Identifier: MIT */
/*
 * Swap: private and KSM frames out to the swap file and back on access, from
 * user code and from read(2); a KSM frame takes one slot for all its sharers;
 * a full swap area says ENOSPC with nothing lost; a damaged slot ends in
 * SIGBUS, never in wrong bytes; offlining a section with swapped frames;
 * the swap file's lock: a crashed pool's file taken over, a live pool's
 * refused, and only a pool's own file removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define N 64

static char path[64];

static sp_pool *swap_pool(size_t swap_pages, unsigned flags)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 4,
				      .swap_path = path,
				      .swap_size = swap_pages * SP_PAGE_SIZE,
				      .flags = flags | SP_POOL_NO_KSMD };
	sp_pool *pool;

	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	return pool;
}

static void private_round_trip(void **state)
{
	sp_pool *pool = swap_pool(256, 0);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, 0);
	struct stat st;
	long res;
	int fds[2];

	(void)state;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	for (int i = 0; i < N; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	res = stat_of(pool, "bytes_resident");
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), N);
	assert_int_equal(stat_of(pool, "bytes_resident"), res - N * SP_PAGE_SIZE);
	/* Back on access: user reads, user writes, and the kernel writing for us. */
	assert_int_equal(check_page(a, 0), 0);
	fill_page(a + SP_PAGE_SIZE, 1000);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "swapped", 7), 7);
	assert_int_equal(read(fds[0], a + 2 * SP_PAGE_SIZE + 8, 7), 7);
	assert_memory_equal(a + 2 * SP_PAGE_SIZE + 8, "swapped", 7);
	for (int i = 3; i < N; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(check_page(a + SP_PAGE_SIZE, 1000), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	assert_int_equal(stat_of(pool, "faults_swapin"), N);
	assert_int_equal(stat_of(pool, "bytes_resident"), res);
	close(fds[0]);
	close(fds[1]);
	sp_pool_destroy(pool);
	assert_int_equal(access(path, F_OK), -1); /* removed with the pool */
}

/*
 * Zero pages take no slot: pages merged with the zero page stay so, pages
 * never touched give their frames up without one, and both read zeros and
 * take writes afterwards.
 */
static void zero_round_trip(void **state)
{
	sp_pool *pool = swap_pool(256, 0);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	long free0;

	(void)state;
	assert_int_equal(sp_ksm_set(pool, "use_zero_pages", 1), 0);
	/* Pages 0-15 data, 16-31 written with zeros, 32-63 never touched. */
	for (int i = 0; i < 16; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	memset(a + 16 * SP_PAGE_SIZE, 0, 16 * SP_PAGE_SIZE);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "ksm_zero_pages"), 16);
	free0 = stat_of(pool, "frames_free");
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 16); /* the data pages only */
	assert_int_equal(stat_of(pool, "frames_free"), free0 + 16 + 32);
	for (int i = 16; i < N; i++)
		assert_int_equal(page_is_zero(a + i * SP_PAGE_SIZE), 1);
	for (int i = 0; i < 16; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	fill_page(a + 20 * SP_PAGE_SIZE, 20); /* a merged zero page: its own copy */
	fill_page(a + 40 * SP_PAGE_SIZE, 40); /* a page with no frame: gets one */
	assert_int_equal(check_page(a + 20 * SP_PAGE_SIZE, 20), 0);
	assert_int_equal(check_page(a + 40 * SP_PAGE_SIZE, 40), 0);
	assert_int_equal(page_is_zero(a + 41 * SP_PAGE_SIZE), 1);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	sp_pool_destroy(pool);
}

/* One slot per KSM frame, not per page; one read brings it back for all. */
static void ksm_one_slot(void **state)
{
	sp_pool *pool = swap_pool(256, 0);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N), *c = alloc_alike(pool, N);
	long res, free0;

	(void)state;
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 2 * N);
	res = stat_of(pool, "bytes_resident");
	free0 = stat_of(pool, "frames_free");
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), N); /* frames, not 3N pages */
	assert_int_equal(stat_of(pool, "bytes_resident"), res - N * SP_PAGE_SIZE);
	/* The frames themselves are free for others; the pages are still merged. */
	assert_int_equal(stat_of(pool, "frames_free"), free0 + N);
	assert_int_equal(sp_page_is_ksm(pool, c + 5 * SP_PAGE_SIZE), 1);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 2 * N);
	for (int i = 0; i < N; i++)
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(stat_of(pool, "frames_free"), free0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	assert_int_equal(stat_of(pool, "faults_swapin"), N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	assert_int_equal(stat_of(pool, "faults_swapin"), N); /* read once for all */
	/* A write to a swapped KSM page swaps in and copies for that sharer only. */
	assert_int_equal(sp_swap_out(pool, b, N * SP_PAGE_SIZE), 0);
	fill_page(c, 777);
	assert_int_equal(check_page(c, 777), 0);
	assert_int_equal(check_page(a, 0), 0);
	assert_int_equal(check_page(b, 0), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), N);
	/* c's page 0 is the kernel's copy now: it moves into a pool frame, then out. */
	res = stat_of(pool, "swap_slots_used");
	assert_int_equal(sp_swap_out(pool, c, SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), res + 1);
	assert_int_equal(check_page(c, 777), 0);
	sp_pool_destroy(pool);
}

/* Swap full: ENOSPC, and what was swapped stays swapped and correct. */
static void swap_full(void **state)
{
	sp_pool *pool = swap_pool(16, 0);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, 0);

	(void)state;
	for (int i = 0; i < N; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	errno = 0;
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 16);
	for (int i = 0; i < N; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	sp_pool_destroy(pool);
}

static void bad_calls(void **state)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 1,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg); /* no swap */
	char *a = sp_alloc(pool, 4 * SP_PAGE_SIZE, 0);
	int fd;

	(void)state;
	errno = 0;
	assert_int_equal(sp_swap_out(pool, a, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(sp_swap_out(NULL, a, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
	pool = swap_pool(16, SP_POOL_SIGSEGV);
	a = sp_alloc(pool, 4 * SP_PAGE_SIZE, 0);
	assert_int_equal(sp_swap_out(pool, a, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, ENOTSUP); /* no missing faults to bring it back */
	assert_int_equal(sp_swap_out(pool, a + 1, SP_PAGE_SIZE), -1);
	sp_pool_destroy(pool);
	pool = swap_pool(16, 0);
	a = sp_alloc(pool, 4 * SP_PAGE_SIZE, 0);
	assert_int_equal(sp_swap_out(pool, a + 1, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_swap_out(pool, a, 5 * SP_PAGE_SIZE), -1);
	assert_int_equal(errno, ENOMEM);
	sp_pool_destroy(pool);
	/* An existing file is not ours to take over. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	cfg.swap_path = path;
	errno = 0;
	assert_null(sp_pool_create(&cfg));
	assert_int_equal(errno, EEXIST);
	unlink(path);
}

/*
 * Pages nr of a (merged with b's when b is there) swapped out, slot bad
 * overwritten in the file, then touched in a child: it must die of SIGBUS
 * there, after reading the intact pages right. Exit codes say what failed.
 */
static void damaged_child(bool merged, unsigned nr, unsigned bad)
{
	sp_pool *pool = swap_pool(64, 0);
	char *a = sp_alloc(pool, nr * SP_PAGE_SIZE, merged ? SP_MERGEABLE : 0);
	char *b = merged ? sp_alloc(pool, nr * SP_PAGE_SIZE, SP_MERGEABLE) : a;
	char junk[64];
	int fd;

	signal(SIGBUS, SIG_DFL);
	for (unsigned i = 0; i < nr; i++) {
		fill_page(a + i * SP_PAGE_SIZE, i);
		fill_page(b + i * SP_PAGE_SIZE, i);
	}
	if (merged)
		full_scan(pool);
	/* One slot per page, or per KSM frame: slots are handed out in order. */
	if (sp_swap_out(pool, a, nr * SP_PAGE_SIZE) || stat_of(pool, "swap_slots_used") != nr)
		_exit(10);
	fd = open(path, O_WRONLY);
	memset(junk, 0x5a, sizeof(junk));
	if (fd < 0 || pwrite(fd, junk, sizeof(junk), bad * SP_PAGE_SIZE + 100) != 64)
		_exit(11);
	close(fd);
	for (unsigned i = 0; i < nr; i++)
		if (i != bad && check_page(b + i * SP_PAGE_SIZE, i))
			_exit(12);
	(void)*(volatile char *)(b + bad * SP_PAGE_SIZE); /* SIGBUS here */
	_exit(13);
}

static void damaged(bool merged, unsigned nr, unsigned bad)
{
	pid_t pid = fork();
	int status;

	if (!pid)
		damaged_child(merged, nr, bad);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
}

/* A damaged slot: SIGBUS for the thread that touches it; other pages intact. */
static void damaged_slot(void **state)
{
	(void)state;
	damaged(false, 8, 3);
}

/* A damaged slot of a KSM frame: SIGBUS for its sharers too, never wrong bytes. */
static void damaged_ksm_slot(void **state)
{
	(void)state;
	damaged(true, 4, 2);
}

/*
 * Sharers of swapped KSM frames: unmerging gives each a slot of its own and
 * no frame; freeing the other sharers leaves the last one the node's slot.
 */
static void ksm_swapped_unmerge_free(void **state)
{
	sp_pool *pool = swap_pool(512, 0);
	char *a = alloc_alike(pool, N), *b = alloc_alike(pool, N), *c = alloc_alike(pool, N);
	long free0;

	(void)state;
	full_scan(pool);
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), 0);
	free0 = stat_of(pool, "frames_free");
	assert_int_equal(sp_madvise(pool, a, N * SP_PAGE_SIZE, SP_MADV_UNMERGEABLE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 2 * N);
	assert_int_equal(stat_of(pool, "frames_free"), free0); /* no frame needed */
	assert_int_equal(sp_page_is_ksm(pool, a), 0);
	assert_int_equal(sp_page_is_ksm(pool, b), 1);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(sp_free(pool, b), 0);
	/* c's pages are the last sharers: each owns its node's slot now. */
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 2 * N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	sp_pool_destroy(pool);
}

/*
 * A region whose swapped KSM frames it shares only with itself can be freed
 * (every slot goes); and a swapped sharer moved to another merge domain
 * leaves its frame, as a resident one does.
 */
static void ksm_swapped_free_domain(void **state)
{
	sp_pool *pool = swap_pool(256, 0);
	char *a = sp_alloc(pool, 8 * SP_PAGE_SIZE, SP_MERGEABLE), *b, *c;

	(void)state;
	for (int i = 0; i < 8; i++)
		fill_page(a + i * SP_PAGE_SIZE, 5); /* all alike: one frame, 8 sharers */
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), 1);
	assert_int_equal(sp_swap_out(pool, a, 8 * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 1);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);

	b = alloc_alike(pool, N);
	c = alloc_alike(pool, N);
	full_scan(pool); /* the pass a was freed in: it may end before b and c */
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), N);
	assert_int_equal(sp_swap_out(pool, b, N * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_set_merge_domain(pool, b, N * SP_PAGE_SIZE, 1), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 0);
		assert_int_equal(check_page(c + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	assert_int_equal(ksm_of(pool, "pages_sharing"), 0);
	sp_pool_destroy(pool);
}

/* Offlining a section with swapped frames keeps every byte. */
static void offline_with_swapped(void **state)
{
	sp_pool *pool = swap_pool(256, 0);
	char *a = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, N * SP_PAGE_SIZE, SP_MERGEABLE);
	int section;

	(void)state;
	for (int i = 0; i < N; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, i % 2 ? (uint64_t)i : 500u + i);
	}
	full_scan(pool);
	section = sp_page_section(pool, a);
	assert_true(section >= 0);
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_swap_out(pool, b, N * SP_PAGE_SIZE), 0);
	/* A swapped private page has no frame; a swapped KSM frame keeps its number. */
	assert_int_equal(sp_page_section(pool, a), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(sp_section_offline(pool, (unsigned)section), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, i % 2 ? (uint64_t)i : 500u + i),
				 0);
	}
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	/* Swapped again, then freed: the slots go with the frames. */
	assert_int_equal(sp_swap_out(pool, a, N * SP_PAGE_SIZE), 0);
	assert_true(stat_of(pool, "swap_slots_used") > 0);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(sp_free(pool, b), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	sp_pool_destroy(pool);
}

/* ---- the swap file's lock ---------------------------------------------- */

struct log_lines {
	int n;
	char msg[4][512];
};

static void log_capture(enum sp_log_level level, const char *msg, void *priv)
{
	struct log_lines *l = priv;

	(void)level;
	if (l->n < 4)
		snprintf(l->msg[l->n], sizeof(l->msg[0]), "%s", msg);
	l->n++;
}

/* A small pool with 16 pages of swap at path. */
static sp_pool *lock_pool(unsigned flags)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 1,
				      .swap_path = path,
				      .swap_size = 16 * SP_PAGE_SIZE,
				      .flags = flags | SP_POOL_NO_KSMD };

	return sp_pool_create(&cfg);
}

static sp_pool *create_logged(unsigned flags, struct log_lines *l)
{
	sp_pool *pool;
	int err;

	memset(l, 0, sizeof(*l));
	sp_set_log(log_capture, l);
	pool = lock_pool(flags);
	err = errno;
	sp_set_log(NULL, NULL);
	for (int i = 0; i < l->n && i < 4; i++)
		print_message("log: %s\n", l->msg[i]);
	errno = err;
	return pool;
}

/* A child that makes a pool with swap at a fresh path and waits to be killed: its pid. */
static pid_t child_with_pool(unsigned flags)
{
	int fds[2];
	pid_t pid;
	char c;

	unlink(path); /* what a failed test before may have left */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		sp_pool *pool;

		/* Never outlive the test, whatever it does. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(60);
		pool = lock_pool(flags);
		if (write(fds[1], pool ? "y" : "n", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	assert_int_equal(c, 'y');
	return pid;
}

/* Pages of pool go out to its swap file and come back (userfaultfd mode). */
static void swap_works(sp_pool *pool, unsigned flags, uint64_t seed)
{
	char *a;

	if (flags & SP_POOL_SIGSEGV)
		return; /* no swap-in there */
	a = sp_alloc(pool, 4 * SP_PAGE_SIZE, 0);
	for (int i = 0; i < 4; i++)
		fill_page(a + i * SP_PAGE_SIZE, seed + (uint64_t)i);
	assert_int_equal(sp_swap_out(pool, a, 4 * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, seed + (uint64_t)i), 0);
	assert_int_equal(sp_free(pool, a), 0);
}

static void kill_child(pid_t pid)
{
	int status;

	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
}

/*
 * A pool killed with SIGKILL leaves its swap file; the next pool at that
 * path takes it over, and says so in one line.
 */
static void stale_taken_over(void **state)
{
	unsigned flags = *(unsigned *)*state;
	pid_t pid = child_with_pool(flags);
	struct log_lines l;
	sp_pool *pool;

	kill_child(pid);
	assert_int_equal(access(path, F_OK), 0); /* left behind */
	pool = create_logged(flags, &l);
	assert_non_null(pool);
	assert_int_equal(l.n, 1);
	assert_non_null(strstr(l.msg[0], path));
	assert_non_null(strstr(l.msg[0], "taking it over"));
	swap_works(pool, flags, 70); /* a swap file of ours, */
	sp_pool_destroy(pool); /* that goes with the pool */
	assert_int_equal(access(path, F_OK), -1);
}

/* The pid a busy message names: "... pid N ...", or -1. */
static long pid_in(const char *msg)
{
	const char *p = strstr(msg, "pid ");

	return p ? strtol(p + 4, NULL, 10) : -1;
}

/*
 * A live pool's swap file is refused with EBUSY, and the log names the
 * process holding it: another process's pool, or one of this process.
 */
static void live_file_busy(void **state)
{
	unsigned flags = *(unsigned *)*state;
	pid_t pid = child_with_pool(flags);
	struct log_lines l;
	sp_pool *pool;

	errno = 0;
	assert_null(create_logged(flags, &l));
	assert_int_equal(errno, EBUSY);
	assert_int_equal(l.n, 1);
	assert_non_null(strstr(l.msg[0], path));
	assert_int_equal(pid_in(l.msg[0]), pid);
	kill_child(pid);

	pool = create_logged(flags, &l); /* stale now: taken over */
	assert_non_null(pool);
	errno = 0;
	assert_null(create_logged(flags, &l));
	assert_int_equal(errno, EBUSY);
	assert_int_equal(l.n, 1);
	assert_int_equal(pid_in(l.msg[0]), getpid());
	/* The refused pool left the file alone: still the live pool's. */
	assert_int_equal(access(path, F_OK), 0);
	sp_pool_destroy(pool);
	assert_int_equal(access(path, F_OK), -1);
}

/*
 * The swap file unlinked while the pool lives (it goes on through its fd),
 * and someone else's file made at the path: destroy leaves that file alone
 * (../shared/repro/trunc.c). Swapping goes on meanwhile.
 */
static void other_file_kept(void **state)
{
	unsigned flags = *(unsigned *)*state;
	struct log_lines l;
	char buf[16] = { 0 };
	sp_pool *pool;
	int fd;

	unlink(path);
	pool = create_logged(flags, &l);
	assert_non_null(pool);
	assert_int_equal(unlink(path), 0);
	swap_works(pool, flags, 90);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);
	sp_pool_destroy(pool);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 9);
	close(fd);
	assert_string_equal(buf, "precious\n");
	unlink(path);
}

/*
 * A page the kernel copied comes back into a pool frame before it goes to
 * swap; with no frame free, that frame is reclaimed like any page's (it was
 * ENOMEM while swap had room).
 */
static void swap_out_copied_pool_full(void **state)
{
	sp_pool *pool = swap_pool(4096, 0);
	char *a = alloc_alike(pool, 2), *b = alloc_alike(pool, 2), *filler;
	long room;

	(void)state;
	assert_int_equal(sp_tune(pool, "swap.low_watermark", 0), 0);
	assert_int_equal(sp_tune(pool, "swap.high_watermark", 0), 0);
	full_scan(pool);
	assert_int_equal(sp_page_is_ksm(pool, a), 1);
	fill_page(a, 99); /* the kernel copies it */
	full_scan(pool); /* and the scanner learns of it: held back as volatile */
	room = stat_of(pool, "frames_free");
	filler = sp_alloc(pool, (size_t)room * SP_PAGE_SIZE, 0);
	assert_non_null(filler);
	for (long i = 0; i < room; i++)
		fill_page(filler + i * SP_PAGE_SIZE, (uint64_t)(500 + i));
	assert_int_equal(stat_of(pool, "frames_free"), 0);
	assert_int_equal(sp_swap_out(pool, a, 2 * SP_PAGE_SIZE), 0);
	assert_int_equal(check_page(a, 99), 0);
	assert_int_equal(check_page(a + SP_PAGE_SIZE, 1), 0);
	assert_int_equal(check_page(b, 0), 0);
	for (long i = 0; i < room; i++)
		assert_int_equal(check_page(filler + i * SP_PAGE_SIZE, (uint64_t)(500 + i)), 0);
	sp_pool_destroy(pool);
}

int main(void)
{
	/* The test process's pid: a forked child's pool uses it too, and the parent removes it. */
	snprintf(path, sizeof(path), "/tmp/sp-swap-%d", getpid());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(private_round_trip),
		cmocka_unit_test(zero_round_trip),
		cmocka_unit_test(ksm_one_slot),
		cmocka_unit_test(swap_full),
		cmocka_unit_test(bad_calls),
		cmocka_unit_test(damaged_slot),
		cmocka_unit_test(offline_with_swapped),
		cmocka_unit_test(ksm_swapped_unmerge_free),
		cmocka_unit_test(damaged_ksm_slot),
		cmocka_unit_test(ksm_swapped_free_domain),
		BOTH(stale_taken_over),
		BOTH(live_file_busy),
		BOTH(other_file_kept),
		cmocka_unit_test(swap_out_copied_pool_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
