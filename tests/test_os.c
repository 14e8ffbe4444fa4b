/* SPDX-License-Identifier: MIT */
/*
 * The OS layer, one primitive at a time, against the real kernel: memfds,
 * userfaultfd, /proc/self/pagemap, futexes. No pool: each test makes what it
 * needs with the primitives themselves.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "os.h"

#define NPAGES 16

static void *page(void *base, unsigned long i)
{
	return (char *)base + i * PAGE_SIZE;
}

static off_t frame(unsigned long i)
{
	return (off_t)(i * PAGE_SIZE);
}

static int new_memfd(void)
{
	int fd = os_memfd_create("test_os", NPAGES * PAGE_SIZE);

	assert_true(fd >= 0);
	return fd;
}

static uint64_t pagemap_of(const void *addr)
{
	int fd = os_pagemap_open();
	uint64_t pm = ~0ull;

	assert_true(fd >= 0);
	os_pagemap_read(fd, addr, 1, &pm);
	close(fd);
	return pm;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- a touch that may fault with a signal ------------------------------ */

static sigjmp_buf touch_env;
static volatile sig_atomic_t touch_sig;

static void touch_handler(int sig)
{
	touch_sig = sig;
	siglongjmp(touch_env, 1);
}

/* Read (or write) one byte at p: 0, or the signal it died of. */
static int touch(void *p, bool write)
{
	struct sigaction sa = { .sa_handler = touch_handler }, old_segv, old_bus;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	touch_sig = 0;
	if (!sigsetjmp(touch_env, 1)) {
		if (write)
			*(volatile char *)p = 1;
		else
			(void)*(volatile char *)p;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return touch_sig;
}

/* ---- memfd ------------------------------------------------------------- */

static void memfd_punch_makes_hole(void **state)
{
	char buf[PAGE_SIZE];
	int fd = new_memfd();

	(void)state;
	assert_true(os_memfd_is_hole(fd, frame(2)));
	assert_int_equal(os_memfd_resident(fd), 0);
	fill_page(buf, 2);
	assert_int_equal(os_memfd_fill(fd, frame(2), buf, PAGE_SIZE), 0);
	assert_false(os_memfd_is_hole(fd, frame(2)));
	assert_true(os_memfd_is_hole(fd, frame(3)));
	assert_int_equal(os_memfd_resident(fd), (long)PAGE_SIZE);

	assert_int_equal(os_memfd_punch(fd, frame(2), PAGE_SIZE), 0);
	assert_true(os_memfd_is_hole(fd, frame(2)));
	assert_int_equal(os_memfd_resident(fd), 0);
	/* A hole reads zeros through the file. */
	assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, frame(2)), 0);
	assert_true(page_is_zero(buf));
	close(fd);
}

static void memfd_fill_copy_round_trip(void **state)
{
	char *map, buf[PAGE_SIZE];
	int fd = new_memfd();

	(void)state;
	map = os_memfd_map(fd, NPAGES * PAGE_SIZE);
	assert_non_null(map);
	for (unsigned long i = 0; i < 4; i++) {
		fill_page(buf, 100 + i);
		assert_int_equal(os_memfd_fill(fd, frame(i), buf, PAGE_SIZE), 0);
	}
	os_memfd_copy(fd, map, frame(0), frame(8), 4 * PAGE_SIZE);
	for (unsigned long i = 0; i < 4; i++) {
		assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, frame(8 + i)), 0);
		assert_int_equal(check_page(buf, 100 + i), 0);
		assert_int_equal(check_page(page(map, 8 + i), 100 + i), 0); /* the same bytes */
	}
	assert_int_equal(os_unmap(map, NPAGES * PAGE_SIZE), 0);
	close(fd);
}

static void memfd_bind_node0(void **state)
{
	int fd = new_memfd(), nodes = os_nr_nodes();
	char *map = os_memfd_map(fd, NPAGES * PAGE_SIZE);

	(void)state;
	assert_true(nodes >= 1);
	assert_non_null(map);
	/* Node 0 exists on every machine; libnuma may say the kernel has no NUMA. */
	assert_true(!os_memfd_bind(map, NPAGES * PAGE_SIZE, 0) || errno == ENOSYS);
	assert_int_equal(os_memfd_bind(map, NPAGES * PAGE_SIZE, -1), -1);
	assert_int_equal(errno, EINVAL);
	os_unmap(map, NPAGES * PAGE_SIZE);
	close(fd);
}

static void file_allocate_copy(void **state)
{
	char path[] = "/tmp/test_os.XXXXXX", buf[PAGE_SIZE];
	int fd = mkstemp(path);
	struct stat st;

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(os_file_allocate(fd, 8 * PAGE_SIZE), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)(8 * PAGE_SIZE));
	fill_page(buf, 7);
	assert_int_equal(os_file_write(fd, buf, PAGE_SIZE, frame(1)), 0);
	assert_int_equal(os_file_copy(fd, frame(1), frame(5), PAGE_SIZE), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, frame(5)), 0);
	assert_int_equal(check_page(buf, 7), 0);
	/* Past the end: short, and said so. */
	assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, frame(8)), -1);
	assert_int_equal(errno, EIO);
	close(fd);
}

/* ---- address space ----------------------------------------------------- */

static void map_shared_writes_reach_memfd(void **state)
{
	char buf[PAGE_SIZE];
	int fd = new_memfd();
	char *a = os_reserve(4 * PAGE_SIZE);

	(void)state;
	assert_non_null(a);
	assert_int_equal(os_map_frames(page(a, 1), PAGE_SIZE, fd, frame(5), true), 0);
	fill_page(page(a, 1), 55);
	assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, frame(5)), 0);
	assert_int_equal(check_page(buf, 55), 0);
	assert_true(pm_present(pagemap_of(page(a, 1))));
	assert_false(pm_copied(pagemap_of(page(a, 1))));
	/* The reserved pages around it have no access. */
	assert_int_equal(touch(page(a, 0), false), SIGSEGV);
	os_unmap(a, 4 * PAGE_SIZE);
	close(fd);
}

static void map_private_copies_on_write(void **state)
{
	char buf[PAGE_SIZE];
	int fd = new_memfd();
	char *a = os_reserve(PAGE_SIZE);

	(void)state;
	fill_page(buf, 9);
	assert_int_equal(os_memfd_fill(fd, frame(3), buf, PAGE_SIZE), 0);
	assert_int_equal(os_map_frames(a, PAGE_SIZE, fd, frame(3), false), 0);
	assert_int_equal(check_page(a, 9), 0);
	assert_true(pm_present(pagemap_of(a)));
	assert_false(pm_copied(pagemap_of(a))); /* reading maps the file's page */
	a[0] ^= 1;
	assert_true(pm_copied(pagemap_of(a)));
	assert_int_equal(os_file_read(fd, buf, PAGE_SIZE, frame(3)), 0);
	assert_int_equal(check_page(buf, 9), 0); /* the file kept its bytes */
	os_unmap(a, PAGE_SIZE);
	close(fd);
}

static void map_zero_reads_zeros(void **state)
{
	char *a = os_reserve(2 * PAGE_SIZE);

	(void)state;
	assert_int_equal(os_map_zero(a, 2 * PAGE_SIZE), 0);
	assert_true(page_is_zero(a));
	assert_false(pm_written(pagemap_of(a)));
	a[1] = 1;
	assert_true(pm_written(pagemap_of(a)));
	assert_false(pm_written(pagemap_of(page(a, 1))));
	os_unmap(a, 2 * PAGE_SIZE);
}

static void map_none_faults(void **state)
{
	char *a = os_reserve(2 * PAGE_SIZE);

	(void)state;
	assert_int_equal(os_map_zero(a, 2 * PAGE_SIZE), 0);
	a[0] = 1;
	assert_int_equal(os_map_none(a, PAGE_SIZE), 0);
	assert_int_equal(touch(a, false), SIGSEGV);
	assert_int_equal(touch(a, true), SIGSEGV);
	assert_int_equal(touch(page(a, 1), true), 0);
	os_unmap(a, 2 * PAGE_SIZE);
}

static void populate_and_dontneed(void **state)
{
	int fd = new_memfd(), pidfd = os_pidfd_open();
	char *a = os_reserve(4 * PAGE_SIZE);
	unsigned char vec[4];
	struct iovec iov[2];

	(void)state;
	assert_int_equal(os_map_frames(a, 4 * PAGE_SIZE, fd, 0, true), 0);
	assert_false(pm_present(pagemap_of(a)));
	assert_int_equal(os_populate(a, 4 * PAGE_SIZE, true), 0);
	assert_int_equal(os_memfd_resident(fd), (long)(4 * PAGE_SIZE));
	assert_int_equal(os_mincore(a, 4 * PAGE_SIZE, vec), 0);
	for (int i = 0; i < 4; i++) {
		assert_true(vec[i] & 1);
		assert_true(pm_present(pagemap_of(page(a, i))));
	}
	fill_page(a, 1);
	/* Gone from the page table, kept in the file. */
	assert_int_equal(os_dontneed(a, PAGE_SIZE), 0);
	assert_false(pm_present(pagemap_of(a)));
	assert_int_equal(check_page(a, 1), 0);
	/* The batch, with and without a pidfd. */
	iov[0] = (struct iovec){ page(a, 1), PAGE_SIZE };
	iov[1] = (struct iovec){ page(a, 3), PAGE_SIZE };
	os_dontneed_batch(pidfd, iov, 2);
	assert_false(pm_present(pagemap_of(page(a, 1))));
	assert_true(pm_present(pagemap_of(page(a, 2))));
	assert_false(pm_present(pagemap_of(page(a, 3))));
	iov[0] = (struct iovec){ page(a, 2), PAGE_SIZE };
	os_dontneed_batch(-1, iov, 1);
	assert_false(pm_present(pagemap_of(page(a, 2))));
	assert_int_equal(os_memfd_resident(fd), (long)(4 * PAGE_SIZE));
	os_unmap(a, 4 * PAGE_SIZE);
	if (pidfd >= 0)
		close(pidfd);
	close(fd);
}

static void all_mapped_sees_unmap(void **state)
{
	char *a = os_reserve(8 * PAGE_SIZE);
	unsigned char vec[8];

	(void)state;
	assert_true(os_all_mapped(a, 8 * PAGE_SIZE));
	assert_int_equal(os_unmap(page(a, 5), PAGE_SIZE), 0);
	assert_false(os_all_mapped(a, 8 * PAGE_SIZE));
	assert_true(os_all_mapped(a, 5 * PAGE_SIZE));
	assert_int_equal(os_mincore(a, 8 * PAGE_SIZE, vec), -1);
	assert_int_equal(errno, ENOMEM);
	os_unmap(a, 8 * PAGE_SIZE);
}

static void protect_steps_over_holes(void **state)
{
	int fd = new_memfd();
	char *a = os_reserve(4 * PAGE_SIZE);

	(void)state;
	assert_int_equal(os_map_frames(a, 4 * PAGE_SIZE, fd, 0, true), 0);
	assert_int_equal(os_unmap(page(a, 1), PAGE_SIZE), 0);
	assert_int_equal(os_protect(a, 4 * PAGE_SIZE, false), 0);
	assert_int_equal(touch(page(a, 0), false), 0);
	assert_int_equal(touch(page(a, 0), true), SIGSEGV);
	assert_int_equal(touch(page(a, 3), true), SIGSEGV);
	assert_int_equal(os_protect(a, 4 * PAGE_SIZE, true), 0);
	assert_int_equal(touch(page(a, 3), true), 0);
	assert_int_equal(touch(page(a, 1), false), SIGSEGV); /* the hole stayed a hole */
	os_unmap(a, 4 * PAGE_SIZE);
	close(fd);
}

static void errors_as_documented(void **state)
{
	char buf[PAGE_SIZE] = { 0 };
	char *a = os_reserve(2 * PAGE_SIZE);
	int fd = new_memfd();

	(void)state;
	assert_int_equal(os_memfd_punch(-1, 0, PAGE_SIZE), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(os_memfd_fill(-1, 0, buf, PAGE_SIZE), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(os_memfd_resident(-1), -1);
	assert_int_equal(errno, EBADF);
	assert_false(os_memfd_is_hole(-1, 0));
	assert_int_equal(os_map_frames(a + 1, PAGE_SIZE, fd, 0, true), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(os_map_frames(a, PAGE_SIZE, -1, 0, true), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(os_unmap(a + 1, PAGE_SIZE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(os_populate(a + 1, PAGE_SIZE, false), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(os_file_write(-1, buf, PAGE_SIZE, 0), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(os_uffd_register(-1, a, PAGE_SIZE, false), -1);
	assert_int_equal(errno, EBADF);
	os_unmap(a, 2 * PAGE_SIZE);
	close(fd);
}

/* ---- userfaultfd -------------------------------------------------------- */

/* A fault reader, as the pool's fault thread: missing faults on page 0 get src. */
struct reader {
	int uffd;
	_Atomic bool stop;
	_Atomic int wp_faults, missing_faults;
	_Atomic pid_t wp_tid;
	void *copy_at; /* missing faults here get src, others the zero page */
	char src[PAGE_SIZE];
	pthread_t thread;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct pollfd p = { .fd = rd->uffd, .events = POLLIN };

	while (!atomic_load(&rd->stop)) {
		struct os_fault f[8];
		int n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		n = os_uffd_read(rd->uffd, f, 8);
		for (int i = 0; i < n; i++) {
			if (f[i].wp) { /* left waiting: the test wakes it */
				atomic_store(&rd->wp_tid, f[i].tid);
				atomic_fetch_add(&rd->wp_faults, 1);
				continue;
			}
			atomic_fetch_add(&rd->missing_faults, 1);
			if ((void *)f[i].addr == rd->copy_at)
				os_uffd_copy(rd->uffd, (void *)f[i].addr, rd->src, PAGE_SIZE);
			else
				os_uffd_zeropage(rd->uffd, (void *)f[i].addr, PAGE_SIZE);
		}
	}
	return NULL;
}

/* A uffd with every feature the pool asks for, and a reader; NULL: skipped. */
static struct reader *reader_start(uint64_t need)
{
	struct reader *rd = calloc(1, sizeof(*rd));
	uint64_t features;

	assert_non_null(rd);
	if (os_uffd_probe(&features)) {
		free(rd);
		print_message("userfaultfd refused by the kernel (%s): skipped\n", strerror(errno));
		skip();
	}
	assert_true((features & need) == need);
	rd->uffd = os_uffd_open();
	assert_true(rd->uffd >= 0);
	features &= need | UFFD_FEATURE_THREAD_ID;
	assert_int_equal(os_uffd_api(rd->uffd, &features), 0);
	assert_true((features & need) == need);
	assert_int_equal(pthread_create(&rd->thread, NULL, reader_main, rd), 0);
	return rd;
}

static void reader_stop(struct reader *rd)
{
	atomic_store(&rd->stop, true);
	pthread_join(rd->thread, NULL);
	close(rd->uffd);
	free(rd);
}

static void uffd_api_twice_fails(void **state)
{
	uint64_t features = 0;
	int uffd = os_uffd_open();

	(void)state;
	if (uffd < 0) {
		print_message("userfaultfd refused by the kernel (%s): skipped\n", strerror(errno));
		skip();
	}
	assert_int_equal(os_uffd_api(uffd, &features), 0);
	features = 0;
	assert_int_equal(os_uffd_api(uffd, &features), -1);
	assert_int_equal(errno, EINVAL);
	/* Nothing has faulted: nothing to read. */
	assert_int_equal(os_uffd_read(uffd, (struct os_fault[1]){ 0 }, 1), -1);
	assert_int_equal(errno, EAGAIN);
	close(uffd);
}

static void map_missing_gets_missing_faults(void **state)
{
	struct reader *rd = reader_start(UFFD_FEATURE_EVENT_REMAP);
	char *a = os_reserve(2 * PAGE_SIZE);
	int fd = new_memfd();

	(void)state;
	fill_page(rd->src, 77);
	rd->copy_at = a;
	assert_int_equal(os_map_frames(a, 2 * PAGE_SIZE, fd, 0, true), 0);
	fill_page(a, 1); /* data that must not show through */
	assert_int_equal(os_map_missing(rd->uffd, a, 2 * PAGE_SIZE), 0);
	assert_int_equal(atomic_load(&rd->missing_faults), 0);
	/* Page 0 resolved by UFFDIO_COPY, page 1 by the zero page. */
	assert_int_equal(check_page(a, 77), 0);
	assert_true(page_is_zero(page(a, 1)));
	assert_int_equal(atomic_load(&rd->missing_faults), 2);
	/* Resolved once: a second copy finds it mapped. */
	assert_int_equal(os_uffd_copy(rd->uffd, a, rd->src, PAGE_SIZE), -1);
	assert_int_equal(errno, EEXIST);
	reader_stop(rd);
	os_unmap(a, 2 * PAGE_SIZE);
	close(fd);
}

struct wp_writer {
	uint64_t *p;
	_Atomic bool done;
};

static void *wp_writer_main(void *arg)
{
	struct wp_writer *w = arg;

	w->p[0] = 42;
	atomic_store(&w->done, true);
	return NULL;
}

static void wp_blocks_writer_until_wake(void **state)
{
	struct reader *rd = reader_start(UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	int fd = new_memfd();
	char *a = os_reserve(PAGE_SIZE), buf[8];
	struct wp_writer w = { .p = (uint64_t *)a };
	pthread_t t;

	(void)state;
	assert_int_equal(os_map_frames(a, PAGE_SIZE, fd, 0, true), 0);
	a[0] = 1; /* populated */
	assert_int_equal(os_uffd_register(rd->uffd, a, PAGE_SIZE, false), 0);
	assert_int_equal(os_uffd_wp(rd->uffd, a, PAGE_SIZE, true), 0);
	assert_int_equal(touch(a, false), 0); /* reads go on */
	assert_int_equal(pthread_create(&t, NULL, wp_writer_main, &w), 0);
	for (int i = 0; i < 500 && !atomic_load(&rd->wp_faults); i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&rd->wp_faults), 1);
	sleep_ms(50);
	assert_false(atomic_load(&w.done));
	assert_true(atomic_load(&rd->wp_tid) > 0);
	/* Writable again, and the wake lets it retry. */
	assert_int_equal(os_uffd_wp(rd->uffd, a, PAGE_SIZE, false), 0);
	os_uffd_wake(rd->uffd, a, PAGE_SIZE);
	pthread_join(t, NULL);
	assert_true(atomic_load(&w.done));
	assert_int_equal(os_file_read(fd, buf, sizeof(buf), 0), 0);
	assert_int_equal(*(uint64_t *)buf, 42);
	reader_stop(rd);
	os_unmap(a, PAGE_SIZE);
	close(fd);
}

static void poison_gives_sigbus(void **state)
{
	struct reader *rd = reader_start(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_POISON);
	char *a = os_reserve(2 * PAGE_SIZE);

	(void)state;
	assert_int_equal(os_map_missing(rd->uffd, a, 2 * PAGE_SIZE), 0);
	assert_int_equal(os_uffd_poison(rd->uffd, a, PAGE_SIZE), 0);
	assert_int_equal(touch(a, false), SIGBUS);
	assert_int_equal(touch(a, true), SIGBUS);
	assert_int_equal(atomic_load(&rd->missing_faults), 0); /* no fault was asked */
	assert_int_equal(touch(page(a, 1), false), 0); /* its neighbour is unaffected */
	assert_int_equal(atomic_load(&rd->missing_faults), 1);
	reader_stop(rd);
	os_unmap(a, 2 * PAGE_SIZE);
}

/* ---- futex, signals ----------------------------------------------------- */

static _Atomic uint32_t futex_word;

static void *futex_sleeper(void *arg)
{
	(void)arg;
	while (!atomic_load(&futex_word))
		os_futex_wait(&futex_word, 0);
	return NULL;
}

static void futex_wake_wakes(void **state)
{
	struct timespec ts;
	pthread_t t;

	(void)state;
	atomic_store(&futex_word, 0);
	assert_int_equal(pthread_create(&t, NULL, futex_sleeper, NULL), 0);
	sleep_ms(50); /* asleep by now, most likely: the test holds either way */
	atomic_store(&futex_word, 1);
	os_futex_wake(&futex_word, 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	assert_int_equal(pthread_timedjoin_np(t, NULL, &ts), 0);
}

static void futex_wait_returns_when_changed(void **state)
{
	_Atomic uint32_t word = 1;

	(void)state;
	os_futex_wait(&word, 0); /* not 0: returns at once (EAGAIN) */
}

static _Atomic int usr1_seen;

static void usr1_handler(int sig)
{
	(void)sig;
	atomic_store(&usr1_seen, 1);
}

static void tgkill_and_proc(void **state)
{
	struct sigaction sa = { .sa_handler = usr1_handler }, old;

	(void)state;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old);
	assert_int_equal(os_tgkill(gettid(), SIGUSR1), 0);
	assert_int_equal(atomic_load(&usr1_seen), 1);
	sigaction(SIGUSR1, &old, NULL);
	assert_int_equal(os_tgkill(0, SIGUSR1), -1);
	assert_int_equal(errno, EINVAL);
	assert_true(os_max_map_count() > 0);
}

/*
 * The mapping count: the growth counts every mapping high (a page mapped
 * over the middle of a range splits it in three), and os_maps_count sees the
 * kernel's vmas, those in a range too.
 */
static void maps_count_and_growth(void **state)
{
	char *r = os_reserve(8 * PAGE_SIZE);
	struct os_range range = { (uintptr_t)r, (uintptr_t)r + 8 * PAGE_SIZE };
	long before, in = -1, total;

	(void)state;
	assert_non_null(r);
	assert_int_equal(os_maps_count(&range, 1, &in), proc_maps_lines(NULL));
	assert_int_equal(in, 1);
	before = os_map_growth();
	total = os_maps_count(NULL, 0, NULL);
	assert_int_equal(os_map_zero(r + 4 * PAGE_SIZE, PAGE_SIZE), 0);
	assert_int_equal(os_map_growth() - before, 2);
	assert_int_equal(os_maps_count(&range, 1, &in), total + 2);
	assert_int_equal(in, 3);
	/* Not in the range: the vmas below and above it. */
	range.start += PAGE_SIZE;
	range.end = (uintptr_t)r + 4 * PAGE_SIZE;
	os_maps_count(&range, 1, &in);
	assert_int_equal(in, 0);
	assert_int_equal(os_unmap(r, 8 * PAGE_SIZE), 0);
	assert_int_equal(os_map_growth() - before, 3);
	assert_int_equal(os_maps_count(NULL, 0, NULL), total - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(memfd_punch_makes_hole),
		cmocka_unit_test(maps_count_and_growth),
		cmocka_unit_test(memfd_fill_copy_round_trip),
		cmocka_unit_test(memfd_bind_node0),
		cmocka_unit_test(file_allocate_copy),
		cmocka_unit_test(map_shared_writes_reach_memfd),
		cmocka_unit_test(map_private_copies_on_write),
		cmocka_unit_test(map_zero_reads_zeros),
		cmocka_unit_test(map_none_faults),
		cmocka_unit_test(populate_and_dontneed),
		cmocka_unit_test(all_mapped_sees_unmap),
		cmocka_unit_test(protect_steps_over_holes),
		cmocka_unit_test(errors_as_documented),
		cmocka_unit_test(uffd_api_twice_fails),
		cmocka_unit_test(map_missing_gets_missing_faults),
		cmocka_unit_test(wp_blocks_writer_until_wake),
		cmocka_unit_test(poison_gives_sigbus),
		cmocka_unit_test(futex_wake_wakes),
		cmocka_unit_test(futex_wait_returns_when_changed),
		cmocka_unit_test(tgkill_and_proc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
