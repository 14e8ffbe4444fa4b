/* SPDX-License-Identifier: MIT */
/*
 * Memory hot-remove with KSM frames in the section, writers running; the
 * notifier chain; every failure path ending in CANCEL_OFFLINE with nothing
 * lost; hot-add.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "pool.h"

#define SEC_PAGES 1024 /* pool_small: 4 MiB sections */

struct writer {
	char *mem;
	int pages;
	_Atomic int stop;
	uint64_t last[512];
	_Atomic long rounds;
};

/* Rewrites its pages over and over; last[] is the oracle. */
static void *writer_main(void *p)
{
	struct writer *w = p;

	for (uint64_t v = 1; !atomic_load(&w->stop); v++) {
		for (int i = 0; i < w->pages; i++) {
			fill_page(w->mem + (size_t)i * SP_PAGE_SIZE, v * 1000 + (uint64_t)i);
			w->last[i] = v * 1000 + (uint64_t)i;
		}
		atomic_fetch_add(&w->rounds, 1);
	}
	return NULL;
}

static void check_writer(struct writer *w)
{
	for (int i = 0; i < w->pages; i++)
		assert_int_equal(check_page(w->mem + (size_t)i * SP_PAGE_SIZE, w->last[i]), 0);
}

static void section_is_hole(sp_pool *pool, unsigned s)
{
	for (unsigned long pfn = s * SEC_PAGES; pfn < (s + 1) * SEC_PAGES; pfn++)
		assert_true(frame_is_hole(pool, pfn));
}

static void no_page_in(sp_pool *pool, char *mem, int pages, int s)
{
	for (int i = 0; i < pages; i++)
		assert_int_not_equal(sp_page_section(pool, mem + (size_t)i * SP_PAGE_SIZE), s);
}

static void offline_with_ksm_frames(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 4);
	char *a = sp_alloc(pool, 600 * SP_PAGE_SIZE, SP_MERGEABLE);
	char *b = sp_alloc(pool, 600 * SP_PAGE_SIZE, SP_MERGEABLE);
	struct writer w = { .pages = 64 };
	long sharing, total = stat_of(pool, "frames_total");
	pthread_t t;
	int s;

	for (int i = 0; i < 600; i++) {
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
		fill_page(b + i * SP_PAGE_SIZE, (uint64_t)i);
	}
	full_scan(pool);
	sharing = ksm_of(pool, "pages_sharing");
	assert_int_equal(sharing, 600);
	s = sp_page_section(pool, a); /* section 0: holds KSM frames */
	assert_int_equal(sp_page_is_ksm(pool, a), 1);
	w.mem = sp_alloc(pool, 64 * SP_PAGE_SIZE, 0);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	while (atomic_load(&w.rounds) < 2)
		sched_yield();

	assert_int_equal(sp_section_offline(pool, (unsigned)s), 0);
	atomic_store(&w.stop, 1);
	pthread_join(t, NULL);
	check_writer(&w);
	no_page_in(pool, a, 600, s);
	no_page_in(pool, b, 600, s);
	no_page_in(pool, w.mem, 64, s);
	for (int i = 0; i < 600; i++) {
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(check_page(b + i * SP_PAGE_SIZE, (uint64_t)i), 0);
		assert_int_equal(sp_page_is_ksm(pool, b + i * SP_PAGE_SIZE), 1);
	}
	assert_int_equal(ksm_of(pool, "pages_sharing"), sharing);
	assert_int_equal(stat_of(pool, "sections_online"), 3);
	assert_int_equal(stat_of(pool, "frames_total"), total - SEC_PAGES);
	assert_true(stat_of(pool, "pages_migrated") > 0);
	section_is_hole(pool, (unsigned)s); /* its memory is back with the OS */

	/* KSM goes on merging, and copy-on-write of a moved KSM frame still works. */
	fill_page(b, 4242);
	assert_int_equal(check_page(a, 0), 0);
	for (int i = 0; i < 64; i++)
		fill_page(w.mem + i * SP_PAGE_SIZE, (uint64_t)i);
	sp_madvise(pool, w.mem, 64 * SP_PAGE_SIZE, SP_MADV_MERGEABLE);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(sp_page_is_ksm(pool, w.mem), 1);
	assert_int_equal(check_page(b, 4242), 0);

	assert_int_equal(sp_section_online(pool, (unsigned)s), 0);
	assert_int_equal(stat_of(pool, "sections_online"), 4);
	assert_int_equal(stat_of(pool, "frames_total"), total);
	sp_pool_destroy(pool);
}

struct log {
	int n;
	enum sp_mem_action what[16];
	int who[16];
	struct sp_memory_notify arg;
	int veto; /* this notifier vetoes GOING_OFFLINE */
};

struct tag {
	struct log *log;
	int id;
};

static int record(sp_pool *pool, enum sp_mem_action action, const struct sp_memory_notify *arg,
		  void *priv)
{
	struct tag *t = priv;
	struct log *l = t->log;

	(void)pool;
	if (l->n < 16) {
		l->what[l->n] = action;
		l->who[l->n++] = t->id;
	}
	l->arg = *arg;
	return action == SP_MEM_GOING_OFFLINE && l->veto == t->id;
}

static void notifier_chain(void **state)
{
	sp_pool *pool = pool_small(0, 4);
	struct log l = { 0 };
	struct tag lo = { &l, 1 }, hi = { &l, 2 };

	(void)state;
	assert_int_equal(sp_register_memory_notifier(pool, record, &lo, 10), 0);
	assert_int_equal(sp_register_memory_notifier(pool, record, &hi, 200), 0);
	assert_int_equal(sp_section_offline(pool, 2), 0);
	/* Higher priority first, each action down the whole chain. */
	assert_int_equal(l.n, 4);
	assert_int_equal(l.what[0], SP_MEM_GOING_OFFLINE);
	assert_int_equal(l.who[0], 2);
	assert_int_equal(l.who[1], 1);
	assert_int_equal(l.what[2], SP_MEM_OFFLINE);
	assert_int_equal(l.who[2], 2);
	assert_int_equal(l.arg.section, 2);
	assert_int_equal(l.arg.start_pfn, 2 * SEC_PAGES);
	assert_int_equal(l.arg.nr_pages, SEC_PAGES);
	assert_int_equal(l.arg.node, 0);
	l.n = 0;
	assert_int_equal(sp_section_online(pool, 2), 0);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.what[0], SP_MEM_GOING_ONLINE);
	assert_int_equal(l.what[3], SP_MEM_ONLINE);

	/* A veto: CANCEL_OFFLINE to those that agreed, the section as it was. */
	l.n = 0;
	l.veto = 1;
	errno = 0;
	assert_int_equal(sp_section_offline(pool, 2), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.what[2], SP_MEM_CANCEL_OFFLINE);
	assert_int_equal(l.who[2], 2);
	assert_int_equal(stat_of(pool, "sections_online"), 4);
	/* And KSM got its mutex back: it merges. */
	assert_int_equal(sp_ksm_scan(pool, 10), 0);
	assert_int_equal(sp_register_memory_notifier(pool, NULL, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_register_memory_notifier(NULL, record, &lo, 0), -1);
	sp_pool_destroy(pool);
}

/* Not enough room outside the section: ENOMEM, nothing moved, all usable. */
static void no_room(void **state)
{
	unsigned mode = *(unsigned *)*state;
	sp_pool *pool = pool_small(mode, 2);
	char *a = sp_alloc(pool, 1500 * SP_PAGE_SIZE, 0);
	struct log l = { 0 };
	struct tag tg = { &l, 1 };

	for (int i = 0; i < 1500; i++)
		fill_page(a + i * SP_PAGE_SIZE, (uint64_t)i);
	sp_register_memory_notifier(pool, record, &tg, 0);
	errno = 0;
	assert_int_equal(sp_section_offline(pool, 0), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(l.what[l.n - 1], SP_MEM_CANCEL_OFFLINE);
	assert_int_equal(stat_of(pool, "pages_migrated"), 0);
	assert_int_equal(stat_of(pool, "sections_online"), 2);
	for (int i = 0; i < 1500; i++)
		assert_int_equal(check_page(a + i * SP_PAGE_SIZE, (uint64_t)i), 0);
	sp_free(pool, a);
	a = sp_alloc(pool, 2048 * SP_PAGE_SIZE, 0); /* section 0 allocates again */
	assert_non_null(a);
	sp_pool_destroy(pool);
}

/*
 * A frame held by an operation that does not finish: bounded retries, EBUSY.
 * Its lock bit is set behind the lock checker's back, as if another thread
 * held it (this thread may not hold a frame lock while it offlines).
 */
static void pinned_frame(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *a = sp_alloc(pool, 8 * SP_PAGE_SIZE, 0);
	unsigned long pfn;

	(void)state;
	fill_page(a, 5);
	pfn = pte_val(region_find(pool, a)->pte[0]);
	atomic_fetch_or(&pfn_to_page(pool, pfn)->flags, PG_locked);
	errno = 0;
	assert_int_equal(sp_section_offline(pool, 0), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(stat_of(pool, "sections_online"), 2);
	atomic_fetch_and(&pfn_to_page(pool, pfn)->flags, ~PG_locked);
	assert_int_equal(check_page(a, 5), 0);
	assert_int_equal(sp_section_offline(pool, 0), 0);
	assert_int_equal(check_page(a, 5), 0);
	sp_pool_destroy(pool);
}

static void bad_arguments(void **state)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 2,
				      .max_sections = 4,
				      .flags = SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);
	long total = stat_of(pool, "frames_total");

	(void)state;
	errno = 0;
	assert_int_equal(sp_section_offline(pool, 4), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_online(pool, 4), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_offline(pool, 2), -1); /* never online */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_online(pool, 1), -1); /* online already */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_section_offline(NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(stat_of(pool, "frames_total"), total);
	/* Hot-add up to max_sections. */
	assert_int_equal(sp_section_online(pool, 3), 0);
	assert_int_equal(sp_section_online(pool, 2), 0);
	assert_int_equal(stat_of(pool, "sections_online"), 4);
	assert_non_null(sp_alloc(pool, 4000 * SP_PAGE_SIZE, 0));
	assert_int_equal(sp_section_offline(pool, 1), -1); /* full pool: no room */
	assert_int_equal(errno, ENOMEM);
	sp_pool_destroy(pool);
}

struct churn {
	sp_pool *pool;
	_Atomic int stop;
	_Atomic long bad;
};

/* Regions come and go, merge and get freed, while sections go and come. */
static void *churn_main(void *p)
{
	struct churn *c = p;

	while (!atomic_load(&c->stop)) {
		char *r = sp_alloc(c->pool, 64 * SP_PAGE_SIZE, SP_MERGEABLE);

		if (!r)
			continue;
		for (int i = 0; i < 64; i++)
			fill_page(r + i * SP_PAGE_SIZE, (uint64_t)(i % 8));
		usleep(300);
		for (int i = 0; i < 64; i++)
			if (check_page(r + i * SP_PAGE_SIZE, (uint64_t)(i % 8)))
				atomic_fetch_add(&c->bad, 1);
		sp_free(c->pool, r);
	}
	return NULL;
}

struct binder {
	sp_pool *pool;
	char *mem;
	_Atomic int *stop;
	_Atomic long moves, bad;
};

/* Policy moves of the writer's pages from node to node, racing the offlines. */
static void *binder_main(void *p)
{
	struct binder *b = p;

	for (unsigned long i = 0; !atomic_load(b->stop); i++) {
		int ret = sp_mbind(b->pool, b->mem, 128 * SP_PAGE_SIZE, SP_MPOL_BIND,
				   1ul << (i % 2), SP_MPOL_MF_MOVE);

		if (!ret)
			atomic_fetch_add(&b->moves, 1);
		else if (errno != ENOMEM && errno != EBUSY)
			atomic_fetch_add(&b->bad, 1);
		usleep(1000);
	}
	return NULL;
}

static void offline_races(void **state)
{
	unsigned mode = *(unsigned *)*state;
	struct sp_pool_config cfg = {
		.section_size = 4 << 20, .nr_sections = 4, .nr_nodes = 2, .flags = mode
	};
	struct churn c = { .pool = sp_pool_create(&cfg) };
	struct writer w = { .pages = 128 };
	struct binder b = { .pool = c.pool, .stop = &c.stop };
	pthread_t t[4];
	int ok = 0;

	assert_int_equal(sp_ksm_set(c.pool, "sleep_millisecs", 0), 0);
	w.mem = sp_alloc(c.pool, 128 * SP_PAGE_SIZE, SP_MERGEABLE);
	pthread_create(&t[0], NULL, writer_main, &w);
	while (atomic_load(&w.rounds) < 1) /* every page written once: the oracle holds */
		sched_yield();
	pthread_create(&t[1], NULL, churn_main, &c);
	pthread_create(&t[2], NULL, churn_main, &c);
	b.mem = w.mem;
	pthread_create(&t[3], NULL, binder_main, &b);
	for (int round = 0; round < 12; round++) {
		unsigned s = (unsigned)round % 4;

		if (!sp_section_offline(c.pool, s)) {
			ok++;
			assert_int_equal(sp_section_online(c.pool, s), 0);
		} else {
			assert_true(errno == EBUSY || errno == ENOMEM);
		}
	}
	atomic_store(&w.stop, 1);
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	check_writer(&w);
	assert_int_equal(atomic_load(&c.bad), 0);
	assert_int_equal(atomic_load(&b.bad), 0);
	assert_true(atomic_load(&b.moves) > 0);
	assert_true(ok > 0);
	sp_free(c.pool, w.mem);
	assert_int_equal(stat_of(c.pool, "frames_used"), 0);
	sp_pool_destroy(c.pool);
}

/*
 * A run of two KSM frames whose batch move fails (the program unmapped a
 * sharer) after another sharer was found copied: the failed batch settles
 * one frame onto its last sharer. The offline must still move every frame,
 * and free only what nobody maps; it used to free the old run (two pages
 * read zeros) and leak the new one.
 */
static void failed_batch_frees_nothing_mapped(void **state)
{
	struct sp_pool_config cfg = { .section_size = 256 * SP_PAGE_SIZE,
				      .nr_sections = 4,
				      .nr_nodes = 1,
				      .flags = *(unsigned *)*state | SP_POOL_NO_KSMD };
	sp_pool *pool = sp_pool_create(&cfg);
	char *a, *b;
	int sec;

	assert_non_null(pool);
	a = alloc_alike(pool, 2);
	b = alloc_alike(pool, 2);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_shared"), 2);
	sec = sp_page_section(pool, a);
	assert_int_equal(sp_page_section(pool, a + SP_PAGE_SIZE), sec);
	fill_page(a, 99); /* the kernel copies a[0] */
	assert_int_equal(munmap(b + SP_PAGE_SIZE, SP_PAGE_SIZE), 0); /* b[1] behind our back */
	assert_int_equal(sp_section_offline(pool, sec), 0);
	assert_int_equal(check_page(a, 99), 0);
	assert_int_equal(check_page(a + SP_PAGE_SIZE, 1), 0);
	assert_int_equal(check_page(b, 0), 0);
	for (char *p = a; p < a + 2 * SP_PAGE_SIZE; p += SP_PAGE_SIZE)
		assert_int_not_equal(sp_page_section(pool, p), sec);
	assert_int_not_equal(sp_page_section(pool, b), sec);
	/* The counters and the pages agree. */
	assert_int_equal(ksm_of(pool, "pages_shared"), 0);
	assert_int_equal(sp_page_is_ksm(pool, a + SP_PAGE_SIZE), 0);
	assert_int_equal(sp_page_is_ksm(pool, b), 0);
	assert_int_equal(sp_free(pool, a), 0);
	assert_int_equal(sp_free(pool, b), 0);
	assert_int_equal(stat_of(pool, "frames_used"), 0);
	sp_pool_destroy(pool);
}

struct mover_watch {
	char *page;
	_Atomic uint64_t *pte; /* the page's entry: it names the KSM frame */
	unsigned long k; /* the frame it shares */
	_Atomic int stop;
	_Atomic int wrote;
};

/* Writes the page once, the moment it maps a new frame: before any roll back. */
static void *write_when_moved(void *p)
{
	struct mover_watch *m = p;

	while (!atomic_load(&m->stop) && pte_val(atomic_load(m->pte)) == m->k)
		;
	if (atomic_load(&m->stop))
		return NULL;
	fill_page(m->page, 7);
	atomic_store(&m->wrote, 1);
	return NULL;
}

/*
 * A KSM frame's move that fails after some sharers moved puts them back;
 * one the program wrote since its move (the kernel copied it) must keep its
 * copy, not be mapped onto the old frame again. Found by the protocol model
 * (docs/model, BAD_ROLLBACK_NO_PAGEMAP).
 *
 * The move fails on the second sharer (page b): the program put a mapping
 * of its own there, which samepage cannot write-protect (it retries for a
 * while). Page a moves first, is written meanwhile, and is rolled back.
 * userfaultfd mode only: mprotect would protect any mapping.
 */
static void roll_back_keeps_copy(void **state)
{
	sp_pool *pool = pool_small(0, 2);
	char *a = sp_alloc(pool, 2 * SP_PAGE_SIZE, SP_MERGEABLE), *b = a + SP_PAGE_SIZE;
	struct mover_watch m = { .page = a };
	struct sp_region *r;
	pthread_t t;
	int s;

	(void)state;
	assert_non_null(a);
	fill_page(a, 5);
	fill_page(b, 5);
	full_scan(pool);
	assert_int_equal(ksm_of(pool, "pages_sharing"), 1);
	assert_ptr_equal(mmap(b, SP_PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			 b);
	fill_page(b, 6);
	r = region_find(pool, a);
	m.pte = &r->pte[0];
	m.k = pte_val(atomic_load(m.pte));
	s = sp_page_section(pool, a);
	assert_int_equal(pthread_create(&t, NULL, write_when_moved, &m), 0);
	errno = 0;
	assert_int_equal(sp_section_offline(pool, (unsigned)s), -1);
	assert_int_equal(errno, EBUSY);
	atomic_store(&m.stop, 1);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&m.wrote), 1);
	assert_int_equal(check_page(a, 7), 0);
	assert_int_equal(check_page(b, 6), 0);
	assert_int_equal(stat_of(pool, "sections_online"), 2);
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(offline_with_ksm_frames),
		cmocka_unit_test(notifier_chain),
		BOTH(no_room),
		cmocka_unit_test(pinned_frame),
		cmocka_unit_test(bad_arguments),
		BOTH(offline_races),
		BOTH(failed_batch_frees_nothing_mapped),
		cmocka_unit_test(roll_back_keeps_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
