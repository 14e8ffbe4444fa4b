/* SPDX-License-Identifier: MIT */
/*
 * Pinned memory: memory that something outside the program's code writes by
 * reference (O_DIRECT reads, a device). Swap-out checksums the bytes it
 * wrote, so a late write into the old frame never makes a healthy slot look
 * damaged.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define FILE_PAGES 1024 /* 4 MiB */
#define READERS 4
#define BUF_PAGES 16 /* 64 KiB per read */
#define BUF_LEN (BUF_PAGES * SP_PAGE_SIZE)

enum mover { MOVE_SWAP };

/* An O_DIRECT file of known pages, and threads reading it into a region. */
struct odirect {
	sp_pool *pool;
	char *region;
	char file[64];
	enum mover mover;
	atomic_int stop;
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

		memset(buf, 0xee, BUF_LEN);
		if (pread(fd, buf, BUF_LEN, (off_t)(first * SP_PAGE_SIZE)) != BUF_LEN)
			continue;
		for (int p = 0; p < BUF_PAGES; p++)
			if (check_page(buf + p * SP_PAGE_SIZE, first + p))
				atomic_fetch_add(&o->bad_pages, 1);
		atomic_fetch_add(&o->reads, 1);
	}
	close(fd);
	return NULL;
}

static void odirect_move(struct odirect *o)
{
	switch (o->mover) {
	case MOVE_SWAP:
		if (!sp_swap_out(o->pool, o->region, READERS * BUF_LEN))
			atomic_fetch_add(&o->moves, 1);
		usleep(200);
		break;
	}
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
	assert_true(atomic_load(&o->moves) > 0);
}

static void odirect_setup(struct odirect *o, enum mover mover, const char *swap)
{
	struct sp_pool_config cfg = { .section_size = 1 << 20,
				      .nr_sections = 4,
				      .swap_path = swap,
				      .swap_size = swap ? 16 << 20 : 0,
				      .flags = SP_POOL_NO_KSMD };

	memset(o, 0, sizeof(*o));
	o->mover = mover;
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
	odirect_setup(&o, MOVE_SWAP, swap);
	odirect_run(&o, 2000);
	assert_int_equal(stat_of(o.pool, "swap_errors"), 0);
	odirect_teardown(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(swap_late_write_not_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
