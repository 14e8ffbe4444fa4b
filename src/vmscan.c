/* SPDX-License-Identifier: MIT */
/*
 * Reclaim: when free frames run low, cold pages go to swap and their frames
 * to whoever needs them.
 *
 * Watermarks, in frames (knobs swap.low_watermark and swap.high_watermark):
 * below low, the reclaim thread ("sp-kswapd") wakes and swaps out until free
 * frames reach high. A page fault that finds no free frame at all reclaims
 * for itself (direct reclaim, in the swap-in worker), an offline short of
 * room reclaims for it, and sp_alloc that finds too few frames hands out
 * pages without frames, which get theirs at first touch: so none of them
 * fails with ENOMEM while swap has room. What is left to fail: swap full,
 * or every frame in use busy.
 *
 * Which pages: a clock over the regions' pages, whose reference bit is the
 * kernel's own page table entry for the program's mapping, read from
 * /proc/self/pagemap. The hand finds a page present (touched since the hand
 * last passed), takes the access away (MADV_DONTNEED on the MAP_SHARED
 * mapping: the data stays in the frame, and the next touch is a minor fault
 * that maps it again) and moves on; a page still absent when the hand comes
 * back is cold, and goes. A page never touched is a hole and goes without a
 * slot. A KSM frame is looked at from its first sharer, and is cold when no
 * sharer maps it (ksm.c); it goes as one slot. When two turns of the clock
 * did not free enough, the third takes pages hot or not, as the kernel does
 * once its inactive list is empty.
 *
 * Locks: reclaim.lock serialises reclaimers (the thread, the worker's direct
 * reclaim, offlining, sp_reclaim) and guards the hand and the step's
 * buffers; every caller holds rt.lock (read). Under it the KSM mutex and
 * frame locks are only ever tried (a busy frame is skipped: a reclaimer never
 * waits on a frame lock whose holder may wait on it). reclaim.wait_lock
 * guards the thread's sleep, and kicks. The order: lock.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

#define CLOCK_STEP 512 /* pages the hand looks at per step: one pagemap read */
#define KSWAPD_PERIOD_MS 100 /* the thread also looks on its own this often */

unsigned long reclaim_low(struct sp_pool *pool)
{
	long low = atomic_load(&pool->reclaim.low);

	if (low >= 0)
		return (unsigned long)low;
	/* 1/64 of the pool, as min_free_kbytes-style reserves go, but not under 64 frames. */
	return pool->frames_total / 64 > 64 ? pool->frames_total / 64 : 64;
}

unsigned long reclaim_high(struct sp_pool *pool)
{
	long high = atomic_load(&pool->reclaim.high);
	unsigned long low = reclaim_low(pool);

	if (high < 0)
		return 2 * low;
	return (unsigned long)high > low ? (unsigned long)high : low;
}

/* Free frames, and the watermarks in force, read together. */
static unsigned long free_frames(struct sp_pool *pool, unsigned long *low, unsigned long *high)
{
	unsigned long n;

	mutex_lock(&pool->lock);
	n = pool->frames_free;
	*low = reclaim_low(pool);
	*high = reclaim_high(pool);
	mutex_unlock(&pool->lock);
	return n;
}

/* The frame lies on a node of mask (the reclaim's target). */
static bool frame_on(struct sp_pool *pool, unsigned long pfn, unsigned long mask)
{
	return mask == NODES_ALL || (pfn_to_section(pool, pfn) < pool->max_sections &&
				     (mask >> pool->sections[pfn_to_section(pool, pfn)].node & 1));
}

/*
 * From page idx of r, up to max pages that are private, not lost, on a node
 * of mask, present or not as present says (pm: their pagemap entries), and,
 * for a cold run, on consecutive frames of one section: try-locked and
 * checked. How many.
 */
static unsigned long lock_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			      unsigned long max, const uint64_t *pm, bool present, bool cold,
			      unsigned long mask)
{
	unsigned long n = 0, f0 = pte_val(atomic_load(&r->pte[idx]));

	while (n < max) {
		uint64_t pte = atomic_load(&r->pte[idx + n]);
		unsigned long f = pte_val(pte);

		if (pte_type(pte) != PTE_PRIVATE || (pte & PTE_LOST) ||
		    pm_present(pm[n]) != present || !frame_on(pool, f, mask))
			break;
		if (cold && (f != f0 + n || pfn_to_section(pool, f) != pfn_to_section(pool, f0)))
			break;
		if (!frame_trylock(pool, f))
			break;
		if (atomic_load(&r->pte[idx + n]) != pte) {
			frame_unlock(pool, f);
			break;
		}
		n++;
	}
	return n;
}

/* A run that kept its frames: its entries still name them. */
static void unlock_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
		       unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		frame_unlock(pool, pte_val(atomic_load(&r->pte[idx + i])));
}

/*
 * Referenced runs of a step lose their access in one call: process_madvise()
 * takes them all and flushes the TLBs once (Linux 6.15), where a madvise()
 * per run would interrupt every CPU the program runs on, per run. Their
 * frames stay locked until then.
 */
static void revoke_flush(struct sp_pool *pool, struct sp_region *r)
{
	struct sp_reclaim *rc = &pool->reclaim;

	os_dontneed_batch(rc->pidfd, rc->iov, rc->nr_iov);
	for (unsigned i = 0; i < rc->nr_iov; i++)
		unlock_run(pool, r, region_index(r, rc->iov[i].iov_base),
			   rc->iov[i].iov_len >> PAGE_SHIFT);
	rc->nr_iov = 0;
}

/* A run of cold pages, locked: out. Frames freed (to free at the step's end), or -1. */
static long cold_run(struct sp_pool *pool, struct sp_region *r, unsigned long j, unsigned long k)
{
	struct sp_reclaim *rc = &pool->reclaim;
	unsigned long f0;
	long done = swap_out_run(pool, r, j, k, &f0);

	if (done < 0 && errno != ENOSPC)
		sp_log(SP_LOG_ERR, "reclaim: swapping out %p: %s", (void *)page_addr(r, j),
		       strerror(errno));
	for (long m = 0; m < done; m++)
		rc->freed[rc->nr_freed++] = f0 + (unsigned long)m;
	return done;
}

/*
 * One step of the hand over up to CLOCK_STEP pages of one region: frames
 * freed. force: present pages go too. mask: only pages whose frames lie on
 * those nodes (the others are stepped over as they are). *stop: nothing
 * more can go (swap full, no regions).
 */
static unsigned long clock_step(struct sp_pool *pool, bool force, unsigned long want,
				unsigned long mask, unsigned long *scanned, bool *stop)
{
	struct sp_reclaim *rc = &pool->reclaim;
	struct sp_region *r = region_next(pool, rc->hand);
	unsigned long idx, n, freed = 0, i = 0;

	if (!r) {
		rc->hand = 0; /* past the last region: the hand goes round */
		r = region_next(pool, 0);
	}
	if (!r) {
		*stop = true;
		return 0;
	}
	idx = rc->hand > (uintptr_t)r->start ? region_index(r, (void *)rc->hand) : 0;
	n = r->npages - idx < CLOCK_STEP ? r->npages - idx : CLOCK_STEP;
	os_pagemap_read(pool->pagemap, page_addr(r, idx), n, rc->pm);
	while (i < n && freed < want) {
		bool present = pm_present(rc->pm[i]), cold = force || !present;
		uint64_t pte = atomic_load(&r->pte[idx + i]);
		unsigned long j = idx + i, max = n - i, k;
		long done;

		if (pte_type(pte) == PTE_KSM && !(pte & PTE_LOST)) {
			if (frame_on(pool, pte_val(pte), mask))
				freed += (unsigned long)ksm_reclaim(pool, r, j, force);
			i++;
			continue;
		}
		if (cold && max > want - freed)
			max = want - freed;
		k = lock_run(pool, r, j, max, rc->pm + i, present, cold, mask);
		if (!k) {
			i++;
			continue;
		}
		if (!cold) {
			/* Referenced: its access goes, and the next turn sees if it comes back. */
			rc->iov[rc->nr_iov++] =
				(struct iovec){ page_addr(r, j), (size_t)k << PAGE_SHIFT };
			i += k;
			continue;
		}
		done = cold_run(pool, r, j, k);
		if (done < 0) {
			*stop = true;
			break;
		}
		freed += (unsigned long)done;
		i += done > 0 ? (unsigned long)done : 1;
	}
	revoke_flush(pool, r);
	/* Freed together: one flush of the direct map for all (frames_free_pfns). */
	frames_free_pfns(pool, rc->freed, rc->nr_freed);
	rc->nr_freed = 0;
	/* The hand stops where the work did: the rest of the step is the next one's. */
	rc->hand = (uintptr_t)page_addr(r, idx + i);
	*scanned += i;
	return freed;
}

/* Pages the clock goes round: every region's. rt.lock held. */
static unsigned long clock_pages(struct sp_pool *pool)
{
	unsigned long n = 0;

	for (unsigned i = 0; i < pool->rt.nr; i++)
		n += pool->rt.sorted[i]->npages;
	return n;
}

/* Pages can go to swap, so reclaim can free frames. */
static bool can_swap(struct sp_pool *pool)
{
	return pool->swap.fd >= 0 && fault_can_swap(pool) && pool->reclaim.pm;
}

static long shrink(struct sp_pool *pool, unsigned long want, unsigned long mask)
{
	struct sp_reclaim *rc = &pool->reclaim;
	unsigned long freed = 0, scanned = 0, turn;
	bool stop = false;

	if (!can_swap(pool))
		return 0;
	mutex_lock(&rc->lock);
	turn = clock_pages(pool) + CLOCK_STEP;
	while (freed < want && !stop && scanned < 3 * turn)
		freed += clock_step(pool, scanned >= 2 * turn, want - freed, mask, &scanned, &stop);
	mutex_unlock(&rc->lock);
	atomic_fetch_add(&rc->scanned, (long)scanned);
	atomic_fetch_add(&rc->reclaimed, (long)freed);
	return (long)freed;
}

long reclaim_direct(struct sp_pool *pool, unsigned long want, unsigned long mask)
{
	atomic_fetch_add(&pool->reclaim.direct, 1);
	reclaim_kick(pool); /* and the thread goes on to the high watermark */
	return shrink(pool, want, mask);
}

/* "on nodes {0,2}", or "in the pool" for every node. */
static void nodes_name(struct sp_pool *pool, unsigned long mask, char *buf, size_t len)
{
	size_t at;

	if (mask == NODES_ALL) {
		snprintf(buf, len, "in the pool");
		return;
	}
	at = (size_t)snprintf(buf, len, "on nodes {");
	for (unsigned n = 0; n < pool->nr_nodes && at < len; n++)
		if (mask >> n & 1)
			at += (size_t)snprintf(buf + at, len - at, "%s%u",
					       buf[at - 1] == '{' ? "" : ",", n);
	if (at < len)
		snprintf(buf + at, len - at, "}");
}

/* Why a page got no frame: what is missing, said plainly. */
static void alloc_why(struct sp_pool *pool, unsigned long mask, char *why, size_t len)
{
	char nodes[96];

	if (!why)
		return;
	nodes_name(pool, mask, nodes, sizeof(nodes));
	if (!can_swap(pool))
		snprintf(why, len, "no free frame %s, and no swap to reclaim to", nodes);
	else if (swap_slots_used(pool) >= (long)pool->swap.nr_slots)
		snprintf(why, len, "no free frame %s and swap is full", nodes);
	else
		snprintf(why, len,
			 "no free frame %s, and nothing there could be reclaimed "
			 "(every page busy or pinned)",
			 nodes);
}

int frames_alloc_page(struct sp_pool *pool, unsigned long mask, int prefer, unsigned long *nr,
		      struct sp_run **runs, unsigned *nr_runs, unsigned flags, char *why,
		      size_t why_len)
{
	bool stuck = false;

	/* A bounded number of rounds: others may take what a reclaim freed. */
	for (int round = 0; round < 16; round++) {
		if (!frames_alloc_mask(pool, mask, prefer, *nr, runs, nr_runs))
			return 0;
		if (*nr > 1 && !frames_alloc_mask(pool, mask, prefer, 1, runs, nr_runs)) {
			*nr = 1;
			return 0;
		}
		if (mask != NODES_ALL && !nodes_have_memory(pool, mask)) {
			mask = NODES_ALL; /* its nodes have no memory left: anywhere */
			continue;
		}
		/* After a reclaim that freed nothing, one more look, then give up. */
		if (!(flags & ALLOC_RECLAIM) || stuck || !can_swap(pool))
			break;
		stuck = reclaim_direct(pool, *nr, mask) <= 0;
	}
	alloc_why(pool, mask, why, why_len);
	errno = ENOMEM;
	return -1;
}

long frame_alloc_page(struct sp_pool *pool, unsigned long mask, int prefer)
{
	unsigned long nr = 1;
	struct sp_run *runs;
	unsigned nr_runs;
	long pfn;

	if (frames_alloc_page(pool, mask, prefer, &nr, &runs, &nr_runs, ALLOC_RECLAIM, NULL, 0))
		return -1;
	pfn = (long)runs[0].pfn;
	free(runs);
	return pfn;
}

/*
 * How long a fault waits for busy pages on its nodes to settle: as the
 * kernel's direct reclaim retries (should_reclaim_retry) before it gives up.
 * A move or an unmerge holds its frames for milliseconds, not seconds.
 */
#define RECLAIM_WAIT_MS 2000
#define RECLAIM_WAIT_STEP_MS 32

bool reclaim_wait(struct sp_pool *pool, unsigned *waited_ms)
{
	unsigned ms = *waited_ms < RECLAIM_WAIT_STEP_MS ? *waited_ms + 1 : RECLAIM_WAIT_STEP_MS;

	if (!can_swap(pool) || swap_slots_used(pool) >= (long)pool->swap.nr_slots ||
	    *waited_ms >= RECLAIM_WAIT_MS)
		return false;
	usleep(ms * 1000);
	*waited_ms += ms;
	return true;
}

long sp_reclaim(sp_pool *pool, unsigned long nr_pages)
{
	long n;

	if (swap_usable(pool))
		return -1;
	rwlock_rdlock(&pool->rt.lock);
	n = shrink(pool, nr_pages, NODES_ALL);
	rwlock_unlock(&pool->rt.lock);
	return n;
}

void reclaim_kick(struct sp_pool *pool)
{
	struct sp_reclaim *rc = &pool->reclaim;

	/* Awake already: it looks at the watermarks again before it sleeps. */
	if (!atomic_load(&rc->thread_started) || atomic_load(&rc->awake))
		return;
	mutex_lock(&rc->wait_lock);
	rc->kick = true;
	pthread_cond_signal(&rc->cond);
	mutex_unlock(&rc->wait_lock);
}

/* Sleep until kicked, or for a period; false: stop. */
static bool kswapd_sleep(struct sp_reclaim *rc)
{
	struct timespec ts;
	bool go;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += KSWAPD_PERIOD_MS * 1000000l;
	if (ts.tv_nsec >= 1000000000l) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000l;
	}
	mutex_lock(&rc->wait_lock);
	atomic_store(&rc->awake, false);
	while (!rc->stop && !rc->kick)
		if (cond_timedwait(&rc->cond, &rc->wait_lock, &ts) == ETIMEDOUT)
			break;
	rc->kick = false;
	atomic_store(&rc->awake, true);
	go = !rc->stop;
	mutex_unlock(&rc->wait_lock);
	return go;
}

static void *kswapd(void *arg)
{
	struct sp_pool *pool = arg;
	struct sp_reclaim *rc = &pool->reclaim;

	while (kswapd_sleep(rc)) {
		unsigned long low, high, free = free_frames(pool, &low, &high);

		if (free >= low)
			continue;
		atomic_fetch_add(&rc->wakeups, 1);
		/* A step at a time, so that sp_alloc and sp_free get the table in between. */
		while (free < high) {
			long got;

			rwlock_rdlock(&pool->rt.lock);
			got = shrink(pool, high - free < CLOCK_STEP ? high - free : CLOCK_STEP,
				     NODES_ALL);
			rwlock_unlock(&pool->rt.lock);
			if (got <= 0)
				break;
			free = free_frames(pool, &low, &high);
		}
	}
	return NULL;
}

int reclaim_init(struct sp_pool *pool)
{
	struct sp_reclaim *rc = &pool->reclaim;
	pthread_condattr_t attr;

	memset(rc, 0, sizeof(*rc));
	atomic_store(&rc->low, -1);
	atomic_store(&rc->high, -1);
	mutex_init(&rc->lock, LOCK_RECLAIM);
	mutex_init(&rc->wait_lock, LOCK_RECLAIM_WAIT);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&rc->cond, &attr);
	pthread_condattr_destroy(&attr);
	rc->pidfd = -1;
	if (pool->swap.fd < 0)
		return 0;
	rc->pm = calloc(CLOCK_STEP, sizeof(*rc->pm));
	rc->iov = calloc(CLOCK_STEP, sizeof(*rc->iov));
	rc->freed = calloc(CLOCK_STEP, sizeof(*rc->freed));
	rc->pidfd = os_pidfd_open();
	return rc->pm && rc->iov && rc->freed ? 0 : -1;
}

/* The thread runs where pages can come back: a swap area and userfaultfd. */
int reclaim_start(struct sp_pool *pool)
{
	struct sp_reclaim *rc = &pool->reclaim;

	if (pool->swap.fd < 0 || !fault_can_swap(pool))
		return 0;
	errno = pthread_create(&rc->thread, NULL, kswapd, pool);
	if (errno)
		return -1;
	pthread_setname_np(rc->thread, "sp-kswapd");
	atomic_store(&rc->thread_started, true);
	return 0;
}

void reclaim_stop(struct sp_pool *pool)
{
	struct sp_reclaim *rc = &pool->reclaim;

	if (!atomic_load(&rc->thread_started))
		return;
	mutex_lock(&rc->wait_lock);
	rc->stop = true;
	pthread_cond_signal(&rc->cond);
	mutex_unlock(&rc->wait_lock);
	pthread_join(rc->thread, NULL);
	atomic_store(&rc->thread_started, false);
}

void reclaim_exit(struct sp_pool *pool)
{
	struct sp_reclaim *rc = &pool->reclaim;

	reclaim_stop(pool);
	free(rc->pm);
	free(rc->iov);
	free(rc->freed);
	rc->pm = NULL;
	rc->iov = NULL;
	rc->freed = NULL;
	if (rc->pidfd >= 0)
		close(rc->pidfd);
	rc->pidfd = -1;
	pthread_cond_destroy(&rc->cond);
	mutex_destroy(&rc->wait_lock);
	mutex_destroy(&rc->lock);
}

/* The knobs: swap.low_watermark and swap.high_watermark, in frames; -1: automatic. */
static _Atomic long *tune_knob(struct sp_pool *pool, const char *name)
{
	if (!strcmp(name, "swap.low_watermark"))
		return &pool->reclaim.low;
	if (!strcmp(name, "swap.high_watermark"))
		return &pool->reclaim.high;
	return NULL;
}

const char *reclaim_knob_name(unsigned i)
{
	static const char *const names[] = { "swap.low_watermark", "swap.high_watermark" };

	return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

/* -1 (automatic) up to the frames of the largest pool; -1 by default. */
int reclaim_knob_range(const char *name, long *min, long *max, long *def)
{
	if (strcmp(name, "swap.low_watermark") && strcmp(name, "swap.high_watermark")) {
		errno = EINVAL;
		return -1;
	}
	*min = -1;
	*max = (long)MAX_POOL_FRAMES;
	*def = -1;
	return 0;
}

int sp_tune(sp_pool *pool, const char *name, long value)
{
	_Atomic long *knob;

	if (!pool || !name) {
		errno = EINVAL;
		return -1;
	}
	if (!strncmp(name, "ksm.", 4))
		return sp_ksm_set(pool, name + 4, value);
	knob = tune_knob(pool, name);
	if (!knob || value < -1 || value > (long)(MAX_POOL_FRAMES)) {
		errno = EINVAL;
		return -1;
	}
	atomic_store(knob, value);
	reclaim_kick(pool); /* a raised watermark may want work now */
	return 0;
}

int sp_tune_get(sp_pool *pool, const char *name, long *value)
{
	if (!pool || !name || !value) {
		errno = EINVAL;
		return -1;
	}
	if (!strncmp(name, "ksm.", 4))
		return sp_ksm_get(pool, name + 4, value);
	if (!tune_knob(pool, name)) {
		errno = EINVAL;
		return -1;
	}
	/* What is in force, automatic or not. */
	mutex_lock(&pool->lock);
	*value = (long)(!strcmp(name, "swap.low_watermark") ? reclaim_low(pool) :
							      reclaim_high(pool));
	mutex_unlock(&pool->lock);
	return 0;
}
