/* SPDX-License-Identifier: MIT */
/*
 * Pinned memory: memory that something outside the program's code writes by
 * reference (O_DIRECT reads, a device). Declared pins (sp_pin, sp_unpin):
 * counted per page, bad calls refused with nothing changed; merge, swap-out,
 * policy moves and offline leave pinned pages alone (an offline fails with
 * EBUSY after its retries); pinned-for-life regions live on unmovable
 * sections. The reproducers of ../shared/repro as tests: O_DIRECT reads
 * racing offline, swap-out and sp_mbind, process_vm_writev and /proc/PID/mem
 * writes from a child racing offlines, io_uring fixed reads after merges and
 * offlines: with pins declared, nothing is lost and nothing fails. Swap-out
 * checksums the bytes it wrote, so a late write into the old frame never
 * makes a healthy slot look damaged.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include "common.h"

#define FILE_PAGES 1024 /* 4 MiB */
#define READERS 4
#define BUF_PAGES 16 /* 64 KiB per read */
#define BUF_LEN (BUF_PAGES * SP_PAGE_SIZE)

enum mover { MOVE_SWAP, MOVE_OFFLINE, MOVE_MBIND };

/* An O_DIRECT file of known pages, and threads reading it into a region. */
struct odirect {
	sp_pool *pool;
	char *region;
	char file[64];
	enum mover mover;
	bool pin; /* readers declare their buffers pinned around each read */
	atomic_int stop;
	atomic_long failures; /* move calls failing with anything but EBUSY */
	atomic_long reads, bad_pages, moves;
};

static void odirect_file(struct odirect *o)
{
	char *page = aligned_alloc(SP_PAGE_SIZE, SP_PAGE_SIZE);
	int fd;

	/* In the build tree, not /tmp: tmpfs has no O_DIRECT. */
	snprintf(o->file, sizeof(o->file), "gup-%d.dat", getpid());
	fd = open(o->file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (unsigned long p = 0; p < FILE_PAGES; p++) {
		fill_page(page, p);
		assert_int_equal(pwrite(fd, page, SP_PAGE_SIZE, (off_t)(p * SP_PAGE_SIZE)),
				 SP_PAGE_SIZE);
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(page);
}

static void *odirect_reader(void *arg)
{
	struct odirect *o = arg;
	static atomic_int next;
	int id = atomic_fetch_add(&next, 1) % READERS;
	char *buf = o->region + (size_t)id * BUF_LEN;
	unsigned seed = (unsigned)id + 1;
	int fd = open(o->file, O_RDONLY | O_DIRECT);

	assert_true(fd >= 0);
	while (!atomic_load(&o->stop)) {
		unsigned long first = (unsigned long)rand_r(&seed) % (FILE_PAGES - BUF_PAGES);

		ssize_t got;

		memset(buf, 0xee, BUF_LEN);
		if (o->pin)
			assert_int_equal(sp_pin(o->pool, buf, BUF_LEN), 0);
		got = pread(fd, buf, BUF_LEN, (off_t)(first * SP_PAGE_SIZE));
		if (o->pin)
			assert_int_equal(sp_unpin(o->pool, buf, BUF_LEN), 0);
		if (got != BUF_LEN)
			continue;
		for (int p = 0; p < BUF_PAGES; p++)
			if (check_page(buf + p * SP_PAGE_SIZE, first + p))
				atomic_fetch_add(&o->bad_pages, 1);
		atomic_fetch_add(&o->reads, 1);
	}
	close(fd);
	return NULL;
}

static int odirect_move_one(struct odirect *o)
{
	static int node;
	int s;

	switch (o->mover) {
	case MOVE_SWAP:
		usleep(200);
		return sp_swap_out(o->pool, o->region, READERS * BUF_LEN);
	case MOVE_OFFLINE:
		s = sp_page_section(o->pool, o->region);
		if (s < 0 || sp_section_offline(o->pool, (unsigned)s))
			return -1;
		assert_int_equal(sp_section_online(o->pool, (unsigned)s), 0);
		return 0;
	case MOVE_MBIND:
		node ^= 1;
		return sp_mbind(o->pool, o->region, READERS * BUF_LEN, SP_MPOL_BIND, 1ul << node,
				SP_MPOL_MF_MOVE);
	}
	return -1;
}

static void odirect_move(struct odirect *o)
{
	if (!odirect_move_one(o))
		atomic_fetch_add(&o->moves, 1);
	else if (errno != EBUSY)
		atomic_fetch_add(&o->failures, 1);
}

static void *odirect_mover(void *arg)
{
	struct odirect *o = arg;

	while (!atomic_load(&o->stop))
		odirect_move(o);
	return NULL;
}

/* Readers and a mover for ms milliseconds. */
static void odirect_run(struct odirect *o, unsigned ms)
{
	pthread_t th[READERS + 1];

	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, odirect_reader, o), 0);
	assert_int_equal(pthread_create(&th[READERS], NULL, odirect_mover, o), 0);
	usleep(ms * 1000);
	atomic_store(&o->stop, 1);
	for (int i = 0; i <= READERS; i++)
		pthread_join(th[i], NULL);
	assert_true(atomic_load(&o->reads) > 0);
	assert_int_equal(atomic_load(&o->failures), 0);
}

static void odirect_setup(struct odirect *o, enum mover mover, const char *swap, bool pin)
{
	struct sp_pool_config cfg = { .section_size = 1 << 20,
				      .nr_sections = 4,
				      .nr_nodes = mover == MOVE_MBIND ? 2 : 1,
				      .swap_path = swap,
				      .swap_size = swap ? 16 << 20 : 0,
				      .flags = SP_POOL_NO_KSMD };

	memset(o, 0, sizeof(*o));
	o->mover = mover;
	o->pin = pin;
	odirect_file(o);
	o->pool = sp_pool_create(&cfg);
	assert_non_null(o->pool);
	o->region = sp_alloc(o->pool, READERS * BUF_LEN, 0);
	assert_non_null(o->region);
	memset(o->region, 1, READERS * BUF_LEN);
}

static void odirect_teardown(struct odirect *o)
{
	sp_pool_destroy(o->pool);
	unlink(o->file);
}

/*
 * O_DIRECT reads racing sp_swap_out, no pins declared: late writes may be
 * lost (they land in the old frame), but no slot is ever reported damaged,
 * and no page ends in SIGBUS. Before the slot buffer was checksummed, this
 * died of SIGBUS within a second.
 */
static void swap_late_write_not_damage(void **state)
{
	struct odirect o;
	char swap[64];

	(void)state;
	snprintf(swap, sizeof(swap), "gup-%d.swap", getpid());
	odirect_setup(&o, MOVE_SWAP, swap, false);
	odirect_run(&o, 2000);
	assert_true(atomic_load(&o.moves) > 0);
	assert_int_equal(stat_of(o.pool, "swap_errors"), 0);
	odirect_teardown(&o);
}

/*
 * O_DIRECT reads into pinned buffers racing a mover: not one byte lost. The
 * mover still does its work on what is not pinned at the time.
 */
static void odirect_pinned(enum mover mover, const char *swap)
{
	struct odirect o;

	odirect_setup(&o, mover, swap, true);
	odirect_run(&o, 2000);
	assert_int_equal(atomic_load(&o.bad_pages), 0);
	assert_true(atomic_load(&o.moves) > 0);
	if (swap)
		assert_int_equal(stat_of(o.pool, "swap_errors"), 0);
	odirect_teardown(&o);
}

static void odirect_pinned_offline(void **state)
{
	(void)state;
	odirect_pinned(MOVE_OFFLINE, NULL);
}

static void odirect_pinned_mbind(void **state)
{
	(void)state;
	odirect_pinned(MOVE_MBIND, NULL);
}

static void odirect_pinned_swap(void **state)
{
	char swap[64];

	(void)state;
	snprintf(swap, sizeof(swap), "gup-%d.swap", getpid());
	odirect_pinned(MOVE_SWAP, swap);
}

#define NP 16

static sp_pool *gup_pool(unsigned nodes, const char *swap)
{
	struct sp_pool_config cfg = { .section_size = 1 << 20,
				      .nr_sections = 4,
				      .nr_nodes = nodes,
				      .swap_path = swap,
				      .swap_size = swap ? 4 << 20 : 0,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);

	assert_non_null(pool);
	return pool;
}

/* Counted per page; every bad call fails with nothing changed. */
static void pin_counts(void **state)
{
	sp_pool *pool = gup_pool(1, NULL);
	char *a = sp_alloc(pool, NP * SP_PAGE_SIZE, 0);
	int i;

	(void)state;
	assert_non_null(a);
	/* Not pinned: EINVAL. Partly pinned: EINVAL, and the pinned part stays pinned. */
	assert_int_equal(sp_unpin(pool, a, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_pin(pool, a + 9 * SP_PAGE_SIZE, 3 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, a + 8 * SP_PAGE_SIZE, 4 * SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_unpin(pool, a + 9 * SP_PAGE_SIZE, 3 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, a + 9 * SP_PAGE_SIZE, SP_PAGE_SIZE), -1);
	/* Overlapping pins: an unaligned range counts each page it touches. */
	assert_int_equal(sp_pin(pool, a + 100, 2 * SP_PAGE_SIZE), 0); /* pages 0..2 */
	assert_int_equal(sp_pin(pool, a + 2 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, a, 3 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, a + 2 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, a, SP_PAGE_SIZE), -1);
	/* 255 pins of a page; the 256th fails and changes nothing, over a word boundary too. */
	for (i = 0; i < 255; i++)
		assert_int_equal(sp_pin(pool, a + 7 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_pin(pool, a + 5 * SP_PAGE_SIZE, 4 * SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EOVERFLOW);
	assert_int_equal(sp_unpin(pool, a + 8 * SP_PAGE_SIZE, SP_PAGE_SIZE), -1);
	for (i = 0; i < 255; i++)
		assert_int_equal(sp_unpin(pool, a + 7 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, a + 7 * SP_PAGE_SIZE, SP_PAGE_SIZE), -1);
	/* Outside a region, past its end, no pool, no length. */
	assert_int_equal(sp_pin(pool, a, (NP + 1) * SP_PAGE_SIZE), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(sp_pin(pool, &i, 4), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(sp_pin(NULL, a, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_pin(pool, a, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_unpin(NULL, a, SP_PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	sp_pool_destroy(pool);
}

/* A pinned page is never merged; unpinned, it merges. */
static void pinned_not_merged(void **state)
{
	sp_pool *pool = gup_pool(1, NULL);
	char *a = alloc_alike(pool, NP), *b = alloc_alike(pool, NP);

	(void)state;
	assert_int_equal(sp_pin(pool, b, NP * SP_PAGE_SIZE), 0);
	full_scan(pool);
	full_scan(pool);
	for (int i = 0; i < NP; i++)
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_unpin(pool, b, NP * SP_PAGE_SIZE), 0);
	full_scan(pool);
	full_scan(pool);
	for (int i = 0; i < NP; i++) {
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 1);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	(void)a;
	sp_pool_destroy(pool);
}

/* Swap-out and sp_reclaim leave a pinned page resident; the others go. */
static void pinned_not_swapped(void **state)
{
	char swap[64];
	sp_pool *pool;
	char *a;

	(void)state;
	snprintf(swap, sizeof(swap), "gup-%d.swap", getpid());
	pool = gup_pool(1, swap);
	a = sp_alloc(pool, NP * SP_PAGE_SIZE, 0);
	assert_non_null(a);
	for (int i = 0; i < NP; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	assert_int_equal(sp_pin(pool, a + 4 * SP_PAGE_SIZE, 2 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_swap_out(pool, a, NP * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), NP - 2);
	assert_true(sp_page_section(pool, a + 4 * SP_PAGE_SIZE) >= 0);
	assert_true(sp_page_section(pool, a + 5 * SP_PAGE_SIZE) >= 0);
	for (int i = 0; i < NP; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(sp_reclaim(pool, NP), NP - 2);
	assert_true(sp_page_section(pool, a + 4 * SP_PAGE_SIZE) >= 0);
	assert_int_equal(sp_unpin(pool, a + 4 * SP_PAGE_SIZE, 2 * SP_PAGE_SIZE), 0);
	assert_int_equal(sp_swap_out(pool, a, NP * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), NP);
	for (int i = 0; i < NP; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	sp_pool_destroy(pool);
}

/* A policy move leaves a pinned page on its node; STRICT says EIO. */
static void pinned_not_moved(void **state)
{
	sp_pool *pool = gup_pool(2, NULL);
	char *a = sp_alloc(pool, NP * SP_PAGE_SIZE, 0);
	int node;

	(void)state;
	assert_non_null(a);
	memset(a, 7, NP * SP_PAGE_SIZE);
	node = sp_page_node(pool, a);
	assert_int_equal(sp_pin(pool, a, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_mbind(pool, a, NP * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << (1 - node),
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(sp_page_node(pool, a), node);
	assert_int_equal(sp_page_node(pool, a + SP_PAGE_SIZE), 1 - node);
	assert_int_equal(sp_unpin(pool, a, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_mbind(pool, a, NP * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << (1 - node),
				  SP_MPOL_MF_MOVE | SP_MPOL_MF_STRICT),
			 0);
	assert_int_equal(sp_page_node(pool, a), 1 - node);
	sp_pool_destroy(pool);
}

struct pin_race {
	sp_pool *pool;
	char *a;
	atomic_int stop;
	atomic_long moves;
};

static void *pin_race_mover(void *arg)
{
	struct pin_race *pr = arg;

	for (int node = 0; !atomic_load(&pr->stop); node ^= 1)
		if (!sp_mbind(pr->pool, pr->a, NP * SP_PAGE_SIZE, SP_MPOL_BIND, 1ul << node,
			      SP_MPOL_MF_MOVE))
			atomic_fetch_add(&pr->moves, 1);
	return NULL;
}

/*
 * A pin racing policy moves: once sp_pin returns, no move of the page is
 * under way and none starts, so its frame stays the same until sp_unpin;
 * unpinned, it moves again. (The mover's check and the pinner's are ordered
 * both ways: without that, a move that passed its check before the pin
 * would finish after sp_pin returned.)
 */
static void pin_races_move(void **state)
{
	struct pin_race pr = { .pool = gup_pool(2, NULL) };
	long pinned_moves = 0, seen = 0;
	struct timespec t0, t;
	pthread_t th;

	(void)state;
	pr.a = sp_alloc(pr.pool, NP * SP_PAGE_SIZE, 0);
	assert_non_null(pr.a);
	memset(pr.a, 3, NP * SP_PAGE_SIZE);
	assert_int_equal(pthread_create(&th, NULL, pin_race_mover, &pr), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int page = (int)(seen % NP), node, section;
		char *p = pr.a + page * SP_PAGE_SIZE;

		assert_int_equal(sp_pin(pr.pool, p, SP_PAGE_SIZE), 0);
		node = sp_page_node(pr.pool, p);
		section = sp_page_section(pr.pool, p);
		for (int i = 0; i < 50; i++)
			sched_yield(); /* let the mover at it */
		pinned_moves +=
			sp_page_node(pr.pool, p) != node || sp_page_section(pr.pool, p) != section;
		assert_int_equal(sp_unpin(pr.pool, p, SP_PAGE_SIZE), 0);
		seen++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 1 || atomic_load(&pr.moves) < 10);
	atomic_store(&pr.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(pinned_moves, 0);
	assert_true(atomic_load(&pr.moves) >= 10);
	sp_pool_destroy(pr.pool);
}

/*
 * An offline meeting a pinned frame retries for a bounded time, then fails
 * with EBUSY: every page where it was, the section online. Unpinned, it goes.
 */
static void pinned_offline_busy(void **state)
{
	sp_pool *pool = gup_pool(1, NULL);
	char *a = sp_alloc(pool, NP * SP_PAGE_SIZE, 0);
	struct timespec t0, t1;
	int s;

	(void)state;
	assert_non_null(a);
	for (int i = 0; i < NP; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	s = sp_page_section(pool, a + 3 * SP_PAGE_SIZE);
	assert_int_equal(sp_pin(pool, a + 3 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(sp_section_offline(pool, (unsigned)s), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(errno, EBUSY);
	assert_true(t1.tv_sec - t0.tv_sec < 10);
	assert_int_equal(sp_page_section(pool, a + 3 * SP_PAGE_SIZE), s);
	for (int i = 0; i < NP; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	assert_int_equal(sp_unpin(pool, a + 3 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	assert_int_equal(sp_section_offline(pool, (unsigned)s), 0);
	assert_true(sp_page_section(pool, a + 3 * SP_PAGE_SIZE) != s);
	for (int i = 0; i < NP; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	sp_pool_destroy(pool);
}

/*
 * Pinned for life: frames only from sections onlined unmovable, never
 * merged, swapped or moved; an offline of their section fails with EBUSY,
 * and goes once the region is freed.
 */
static void pinned_for_life(void **state)
{
	struct sp_pool_config cfg = { .section_size = 1 << 20,
				      .nr_sections = 2,
				      .max_sections = 4,
				      .flags = SP_POOL_NO_KSMD };
	char swap[64];
	sp_pool *pool;
	char *p, *q;

	(void)state;
	snprintf(swap, sizeof(swap), "gup-%d.swap", getpid());
	cfg.swap_path = swap;
	cfg.swap_size = 4 << 20;
	pool = sp_pool_create(&cfg);
	assert_non_null(pool);
	/* No unmovable section yet; and pinned memory is never mergeable. */
	assert_null(sp_alloc(pool, NP * SP_PAGE_SIZE, SP_PINNED));
	assert_int_equal(errno, ENOMEM);
	assert_null(sp_alloc(pool, NP * SP_PAGE_SIZE, SP_PINNED | SP_MERGEABLE));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_online_unmovable(pool, 0), -1); /* online already */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_online_unmovable(pool, 4), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_online_unmovable(pool, 3), 0);
	p = sp_alloc(pool, NP * SP_PAGE_SIZE, SP_PINNED);
	q = alloc_alike(pool, NP); /* movable first: not in section 3 */
	assert_non_null(p);
	for (int i = 0; i < NP; i++) {
		fill_page(p + i * SP_PAGE_SIZE, (uint64_t)i);
		assert_int_equal(sp_page_section(pool, p + i * SP_PAGE_SIZE), 3);
		assert_int_not_equal(sp_page_section(pool, q + i * SP_PAGE_SIZE), 3);
	}
	assert_int_equal(sp_madvise(pool, p, NP * SP_PAGE_SIZE, SP_MADV_MERGEABLE), 0);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(sp_swap_out(pool, p, NP * SP_PAGE_SIZE), 0);
	assert_int_equal(stat_of(pool, "swap_slots_used"), 0);
	assert_int_equal(sp_section_offline(pool, 3), -1);
	assert_int_equal(errno, EBUSY);
	for (int i = 0; i < NP; i++) {
		assert_int_equal(sp_page_is_ksm(pool, p + i * SP_PAGE_SIZE), 0);
		assert_int_equal(sp_page_section(pool, p + i * SP_PAGE_SIZE), 3);
		assert_int_equal(check_page(p + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	}
	assert_int_equal(sp_unpin(pool, p, SP_PAGE_SIZE), -1); /* not pinned by sp_pin */
	assert_int_equal(sp_free(pool, p), 0);
	assert_int_equal(sp_section_offline(pool, 3), 0);
	assert_int_equal(sp_section_online(pool, 3), 0); /* movable now */
	assert_null(sp_alloc(pool, NP * SP_PAGE_SIZE, SP_PINNED));
	sp_pool_destroy(pool);
}

/* ---- remote writers: another process writes pool pages ----------------- */

#define PVM_PAGES 64
#define PVM_LEN (PVM_PAGES * SP_PAGE_SIZE)

struct remote {
	pid_t kid;
	int req[2], ack[2];
	sp_pool *pool;
	char *region;
	atomic_int stop;
	atomic_long offlines;
};

/* The child: for each (addr, key), PVM_PAGES pages of key + i, written by reference. */
static void remote_writer(struct remote *rm, pid_t parent, bool procmem)
{
	static uint64_t buf[PVM_LEN / 8];
	uint64_t addr, key;
	char path[64];
	int mfd;

	close(rm->req[1]); /* EOF when the parent is done */
	close(rm->ack[0]);
	snprintf(path, sizeof(path), "/proc/%d/mem", parent);
	mfd = open(path, O_RDWR);
	while (read(rm->req[0], &addr, 8) == 8 && read(rm->req[0], &key, 8) == 8) {
		struct iovec l = { buf, PVM_LEN }, r = { (void *)(uintptr_t)addr, PVM_LEN };
		long n;

		for (size_t i = 0; i < PVM_LEN / 8; i++)
			buf[i] = key + i;
		if (procmem)
			n = pwrite(mfd, buf, PVM_LEN, (off_t)addr);
		else
			n = process_vm_writev(parent, &l, 1, &r, 1, 0);
		if (n < 0)
			n = -errno;
		if (write(rm->ack[1], &n, 8) != 8)
			break;
	}
	_exit(0);
}

static void *remote_offliner(void *arg)
{
	struct remote *rm = arg;

	while (!atomic_load(&rm->stop)) {
		int s = sp_page_section(rm->pool, rm->region);

		if (s >= 0 && !sp_section_offline(rm->pool, (unsigned)s)) {
			atomic_fetch_add(&rm->offlines, 1);
			assert_int_equal(sp_section_online(rm->pool, (unsigned)s), 0);
		}
	}
	return NULL;
}

/*
 * process_vm_writev or /proc/PID/mem writes from a child into pages the
 * pool's owner pins around each exchange, while their section is offlined
 * nonstop: every write succeeds and every byte is there.
 */
static void remote_pinned(bool procmem)
{
	struct sp_pool_config cfg = { .section_size = 1 << 20,
				      .nr_sections = 3,
				      .max_sections = 3,
				      .flags = SP_POOL_NO_KSMD };
	struct remote rm = { 0 };
	long writes = 0, failed = 0, lost = 0;
	uint64_t key = 1;
	struct timespec t0, t;
	pthread_t th;

	assert_int_equal(pipe(rm.req), 0);
	assert_int_equal(pipe(rm.ack), 0);
	rm.kid = fork();
	assert_true(rm.kid >= 0);
	if (!rm.kid)
		remote_writer(&rm, getppid(), procmem);
	close(rm.req[0]);
	close(rm.ack[1]);
	prctl(PR_SET_PTRACER, rm.kid); /* Yama: the child may write its parent */
	rm.pool = sp_pool_create(&cfg);
	assert_non_null(rm.pool);
	rm.region = sp_alloc(rm.pool, PVM_LEN, 0);
	assert_non_null(rm.region);
	memset(rm.region, 1, PVM_LEN);
	assert_int_equal(pthread_create(&th, NULL, remote_offliner, &rm), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		uint64_t a = (uint64_t)(uintptr_t)rm.region, *p = (uint64_t *)rm.region;
		long n = 0;

		key += 1ull << 32;
		assert_int_equal(sp_pin(rm.pool, rm.region, PVM_LEN), 0);
		assert_int_equal(write(rm.req[1], &a, 8), 8);
		assert_int_equal(write(rm.req[1], &key, 8), 8);
		assert_int_equal(read(rm.ack[0], &n, 8), 8);
		assert_int_equal(sp_unpin(rm.pool, rm.region, PVM_LEN), 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (n != PVM_LEN) {
			if (!failed++)
				print_error("remote write: %ld\n", n);
			continue;
		}
		writes++;
		for (size_t i = 0; i < PVM_LEN / 8; i++)
			lost += p[i] != key + i;
	} while (t.tv_sec - t0.tv_sec < 2);
	atomic_store(&rm.stop, 1);
	pthread_join(th, NULL);
	close(rm.req[1]);
	close(rm.ack[0]);
	waitpid(rm.kid, NULL, 0);
	assert_true(writes > 0);
	assert_int_equal(failed, 0);
	assert_int_equal(lost, 0);
	assert_true(atomic_load(&rm.offlines) > 0);
	sp_pool_destroy(rm.pool);
}

static void pvm_writev_pinned(void **state)
{
	(void)state;
	remote_pinned(false);
}

static void procmem_pinned(void **state)
{
	(void)state;
	remote_pinned(true);
}

#ifdef HAVE_LIBURING
/* ---- io_uring fixed buffers -------------------------------------------- */

/* A READ_FIXED of BUF_LEN at file page first into buf (registered as buffer 0). */
static void read_fixed(struct io_uring *ring, int fd, char *buf, unsigned long first)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;

	assert_non_null(sqe);
	io_uring_prep_read_fixed(sqe, fd, buf, BUF_LEN, (off_t)(first * SP_PAGE_SIZE), 0);
	assert_int_equal(io_uring_submit(ring), 1);
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	assert_int_equal(cqe->res, BUF_LEN);
	io_uring_cqe_seen(ring, cqe);
	for (int p = 0; p < BUF_PAGES; p++)
		assert_int_equal(check_page(buf + p * SP_PAGE_SIZE, first + p), 0);
}

/*
 * A registered buffer in an SP_PINNED region: the offline of every movable
 * section goes, its own section's fails with EBUSY, KSM leaves it unmerged,
 * and every fixed read lands where the program reads. A buffer pinned with
 * sp_pin for as long as it is registered fares the same.
 */
static void uring_fixed(bool for_life)
{
	struct sp_pool_config cfg = { .section_size = 1 << 20,
				      .nr_sections = 3,
				      .max_sections = 4,
				      .flags = SP_POOL_NO_KSMD };
	struct io_uring ring;
	struct odirect o;
	struct iovec iov;
	char *buf, *twin;
	int fd, s;

	odirect_file(&o);
	fd = open(o.file, O_RDONLY | O_DIRECT);
	assert_true(fd >= 0);
	o.pool = sp_pool_create(&cfg);
	assert_non_null(o.pool);
	assert_int_equal(sp_section_online_unmovable(o.pool, 3), 0);
	buf = sp_alloc(o.pool, BUF_LEN, for_life ? SP_PINNED : 0);
	twin = sp_alloc(o.pool, BUF_LEN, SP_MERGEABLE);
	assert_non_null(buf);
	assert_non_null(twin);
	if (!for_life)
		assert_int_equal(sp_pin(o.pool, buf, BUF_LEN), 0);
	assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
	iov = (struct iovec){ buf, BUF_LEN };
	assert_int_equal(io_uring_register_buffers(&ring, &iov, 1), 0);
	read_fixed(&ring, fd, buf, 0);

	/* A merge: the twin holds the same pages. */
	memcpy(twin, buf, BUF_LEN);
	assert_int_equal(sp_madvise(o.pool, buf, BUF_LEN, SP_MADV_MERGEABLE), 0);
	full_scan(o.pool);
	full_scan(o.pool);
	assert_int_equal(sp_page_is_ksm(o.pool, buf), 0);
	read_fixed(&ring, fd, buf, BUF_PAGES);

	/* Offlines: every section but the buffer's goes; the buffer's cannot. */
	s = sp_page_section(o.pool, buf);
	assert_true(for_life ? s == 3 : s >= 0);
	for (int k = 0; k < 4; k++) {
		if (k == s)
			continue;
		assert_int_equal(sp_section_offline(o.pool, (unsigned)k), 0);
		read_fixed(&ring, fd, buf, (unsigned long)(2 + k) * BUF_PAGES);
		assert_int_equal(sp_section_online(o.pool, (unsigned)k), 0);
	}
	assert_int_equal(sp_section_offline(o.pool, (unsigned)s), -1);
	assert_int_equal(errno, EBUSY);
	read_fixed(&ring, fd, buf, 7 * BUF_PAGES);

	io_uring_queue_exit(&ring);
	if (!for_life)
		assert_int_equal(sp_unpin(o.pool, buf, BUF_LEN), 0);
	close(fd);
	odirect_teardown(&o);
}

static void uring_fixed_pinned_for_life(void **state)
{
	(void)state;
	uring_fixed(true);
}

static void uring_fixed_sp_pin(void **state)
{
	(void)state;
	uring_fixed(false);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(swap_late_write_not_damage),
		cmocka_unit_test(pin_counts),
		cmocka_unit_test(pinned_not_merged),
		cmocka_unit_test(pinned_not_swapped),
		cmocka_unit_test(pinned_not_moved),
		cmocka_unit_test(pinned_offline_busy),
		cmocka_unit_test(pin_races_move),
		cmocka_unit_test(pinned_for_life),
		cmocka_unit_test(odirect_pinned_offline),
		cmocka_unit_test(odirect_pinned_mbind),
		cmocka_unit_test(odirect_pinned_swap),
		cmocka_unit_test(pvm_writev_pinned),
		cmocka_unit_test(procmem_pinned),
#ifdef HAVE_LIBURING
		cmocka_unit_test(uring_fixed_pinned_for_life),
		cmocka_unit_test(uring_fixed_sp_pin),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
