/* SPDX-License-Identifier: MIT */
/*
 * The write-protect window, in both fault modes: writers wait in it and
 * their writes are neither lost nor torn by a frame change; the kernel
 * writing for the program (read(2)) waits too in userfaultfd mode; faults
 * that are not samepage's reach the program as they would have without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "migrate.h"
#include "pool.h"

struct writer {
	uint64_t *page;
	_Atomic int stop;
	_Atomic uint64_t last; /* last value fully written */
	_Atomic int bad;
};

/* Fill the whole page with v, then check it: a write lost or torn by a move shows. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t v = 1; !atomic_load(&w->stop); v++) {
		for (int i = 0; i < 512; i++)
			w->page[i] = v;
		for (int i = 0; i < 512; i++)
			if (w->page[i] != v)
				atomic_store(&w->bad, 1);
		atomic_store(&w->last, v);
	}
	return NULL;
}

static void move_under_writer(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	uint64_t *p = sp_alloc(pool, SP_PAGE_SIZE, 0);
	struct writer w = { .page = p };
	struct sp_region *r;
	pthread_t t;
	int moved = 0;

	assert_non_null(p);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	while (!atomic_load(&w.last))
		sched_yield();
	for (int i = 0; i < 2000; i++) {
		rwlock_rdlock(&pool->rt.lock);
		r = region_find(pool, p);
		moved += !migrate_private_page(pool, r, 0, -1);
		rwlock_unlock(&pool->rt.lock);
	}
	atomic_store(&w.stop, 1);
	pthread_join(t, NULL);
	assert_int_equal(moved, 2000);
	assert_int_equal(atomic_load(&w.bad), 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(p[i], atomic_load(&w.last));
	assert_int_equal(stat_of(pool, "pages_migrated"), 2000);
	assert_int_equal(stat_of(pool, "fault_mode"), mode ? SP_FAULT_SIGSEGV : SP_FAULT_UFFD);
	assert_int_equal(sp_free(pool, p), 0);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	sp_pool_destroy(pool);
}

static unsigned long frame_at(sp_pool *pool, void *addr)
{
	struct sp_region *r = region_find(pool, addr);

	return pte_val(r->pte[region_index(r, addr)]);
}

struct reader {
	int fd;
	void *buf;
	ssize_t ret;
	int err;
	_Atomic int done;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	rd->ret = read(rd->fd, rd->buf, 64);
	rd->err = errno;
	atomic_store(&rd->done, 1);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * read(2) into a page in a window: in userfaultfd mode the kernel's write
 * waits and lands after close; in SIGSEGV mode it fails with EFAULT, as the
 * docs say, and writes nothing.
 */
static void syscall_write_waits(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 1);
	char *p = sp_alloc(pool, SP_PAGE_SIZE, 0);
	struct reader rd = { .buf = p };
	struct sp_window w;
	int fds[2];
	pthread_t t;

	assert_non_null(p);
	memset(p, 'a', SP_PAGE_SIZE);
	assert_int_equal(pipe(fds), 0);
	rd.fd = fds[0];
	assert_int_equal(write(fds[1], "0123456789abcdef", 16), 16);
	assert_int_equal(wp_window_open(pool, &w, p, SP_PAGE_SIZE), 0);
	assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
	sleep_ms(100);
	if (mode == mode_uffd) {
		assert_int_equal(atomic_load(&rd.done), 0); /* waiting in the window */
		/* Through the direct map: the page is the frame, and read(2) has not landed. */
		assert_int_equal(*(char *)pfn_to_virt(pool, frame_at(pool, p)), 'a');
	}
	wp_window_close(pool, &w);
	pthread_join(t, NULL);
	if (mode == mode_uffd) {
		assert_int_equal(rd.ret, 16);
		assert_memory_equal(p, "0123456789abcdef", 16);
		assert_true(stat_of(pool, "faults_wp") >= 1);
	} else {
		assert_int_equal(rd.ret, -1);
		assert_int_equal(rd.err, EFAULT);
		assert_int_equal(p[0], 'a');
	}
	assert_int_equal(p[16], 'a');
	close(fds[0]);
	close(fds[1]);
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

/* A user write in a window waits, then lands in the same frame. */
static void user_write_waits(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 1);
	uint64_t *p = sp_alloc(pool, SP_PAGE_SIZE, 0);
	struct writer w = { .page = p };
	struct sp_window win;
	uint64_t seen;
	pthread_t t;

	assert_non_null(p);
	p[0] = 0;
	assert_int_equal(wp_window_open(pool, &win, p, SP_PAGE_SIZE), 0);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	sleep_ms(100);
	seen = atomic_load(&w.last);
	assert_int_equal(seen, 0); /* the first write has not completed */
	/* Through the direct map: no write reached the frame either. */
	assert_int_equal(((uint64_t *)pfn_to_virt(pool, frame_at(pool, p)))[0], 0);
	wp_window_close(pool, &win);
	while (atomic_load(&w.last) < 10)
		sched_yield();
	atomic_store(&w.stop, 1);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&w.bad), 0);
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

static void on_segv(int sig, siginfo_t *info, void *ctx)
{
	(void)sig, (void)ctx;
	/* The program's own handler gets its own fault, with its address. */
	_exit(info->si_addr == (void *)0x1000 ? 42 : 43);
}

/* In a child: a fault that is not samepage's must reach the program. */
static int child_foreign_fault(unsigned mode, int own_handler)
{
	pid_t pid = fork();
	int status;

	if (!pid) {
		struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };
		sp_pool *pool;
		char *ro, *p;

		signal(SIGSEGV, SIG_DFL); /* not cmocka's, inherited */
		if (own_handler)
			sigaction(SIGSEGV, &sa, NULL);
		pool = pool_small(mode, 1);
		p = sp_alloc(pool, SP_PAGE_SIZE, 0);
		p[0] = 1;
		if (own_handler)
			*(volatile char *)0x1000 = 1;
		ro = mmap(NULL, SP_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		*(volatile char *)ro = 1;
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void foreign_faults_reach_program(void **state)
{
	unsigned mode = *(unsigned *)*state;
	int status = child_foreign_fault(mode, 0);

	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	status = child_foreign_fault(mode, 1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 42);
}

/* A child gets none of the pool's mappings: they are MADV_DONTFORK. */
static void fork_child_has_no_region(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 1);
	char *p = sp_alloc(pool, SP_PAGE_SIZE, 0);
	pid_t pid;
	int status;

	p[0] = 7;
	pid = fork();
	if (!pid) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile char *)p = 1;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	assert_int_equal(p[0], 7);
	sp_free(pool, p);
	sp_pool_destroy(pool);
}

/*
 * A window closes while a page inside it was just remapped by another thread
 * (a swap-in, which registers it next): the vma is not registered yet, and
 * unprotecting stopped there, leaving the pages after it write-protected
 * with no window to open them (a writer there would fault for ever; the
 * stress test logged "unprotecting ...: No such file or directory").
 */
static void close_over_fresh_mapping(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char *a = sp_alloc(pool, 3 * SP_PAGE_SIZE, SP_POPULATE);
	struct sp_window w;
	unsigned long pfn;

	(void)state;
	assert_non_null(a);
	pfn = frame_at(pool, a + SP_PAGE_SIZE);
	assert_int_equal(wp_window_open(pool, &w, a, 3 * SP_PAGE_SIZE), 0);
	assert_int_equal(page_uffd_wp(a + 2 * SP_PAGE_SIZE), 1);
	/* Another thread's remap of the middle page, not registered yet. */
	assert_int_equal(fault_remap(pool, a + SP_PAGE_SIZE, SP_PAGE_SIZE, pfn, true), 0);
	wp_window_close(pool, &w);
	assert_int_equal(page_uffd_wp(a), 0);
	assert_int_equal(page_uffd_wp(a + 2 * SP_PAGE_SIZE), 0);
	assert_int_equal(fault_register(pool, a + SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	memset(a, 7, 3 * SP_PAGE_SIZE);
	sp_pool_destroy(pool);
}

struct toucher {
	volatile char *page;
	_Atomic int stop;
	_Atomic unsigned long done; /* stores completed */
};

/* Store what the page holds back into it: its content never changes. */
static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	while (!atomic_load(&t->stop)) {
		t->page[0] = t->page[0];
		atomic_fetch_add(&t->done, 1);
	}
	return NULL;
}

/*
 * A window whose open fails after it protected its range (the program
 * unmapped a page of it) has no close: a writer that faulted in it must
 * still be let go. The fault thread leaves such a writer to the window; it
 * is the unprotect (UFFDIO_WRITEPROTECT without MODE_DONTWAKE), or the
 * slot's futex in SIGSEGV mode, that wakes it. The protocol model
 * (docs/model) relies on this.
 *
 * Region: P, X, M, Y; P, X and Y alike, M not mergeable. A scan plans X
 * onto P (promote) and Y onto X's new KSM frame (join): one window over
 * X..Y, which spans M. The program unmaps M, so every such open fails; a
 * thread keeps storing into Y. Scans of 3 pages a pass never cut the run.
 */
static void failed_open_wakes(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *r = sp_alloc(pool, 4 * SP_PAGE_SIZE, SP_MERGEABLE);
	struct toucher t;
	unsigned long seen;
	pthread_t th;
	int rounds = 0;

	assert_non_null(r);
	fill_page(r, 1);
	fill_page(r + SP_PAGE_SIZE, 1);
	fill_page(r + 2 * SP_PAGE_SIZE, 2);
	fill_page(r + 3 * SP_PAGE_SIZE, 1);
	assert_int_equal(sp_madvise(pool, r + 2 * SP_PAGE_SIZE, SP_PAGE_SIZE, SP_MADV_UNMERGEABLE),
			 0);
	assert_int_equal(munmap(r + 2 * SP_PAGE_SIZE, SP_PAGE_SIZE), 0);
	t = (struct toucher){ .page = r + 3 * SP_PAGE_SIZE };
	assert_int_equal(pthread_create(&th, NULL, toucher_main, &t), 0);
	for (time_t end = time(NULL) + 2; time(NULL) < end; rounds++)
		sp_ksm_scan(pool, 300);
	/* Still storing? A thread left asleep in a window that never closes is not. */
	seen = atomic_load(&t.done);
	sleep_ms(300);
	if (atomic_load(&t.done) == seen)
		fail_msg("a writer stayed asleep after %d rounds of failed windows", rounds);
	atomic_store(&t.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	assert_int_equal(stat_of(pool, "pages_unmapped"), 1);
	assert_int_equal(check_page(r, 1), 0);
	assert_int_equal(check_page(r + 3 * SP_PAGE_SIZE, 1), 0);
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(move_under_writer),	BOTH(syscall_write_waits),
		BOTH(user_write_waits),		BOTH(foreign_faults_reach_program),
		BOTH(fork_child_has_no_region), cmocka_unit_test(close_over_fresh_mapping),
		BOTH(failed_open_wakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
