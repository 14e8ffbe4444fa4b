/* SPDX-License-Identifier: MIT */
/*
 * Migration: give a page, or a KSM frame and all its sharers, a new frame
 * while the program runs. One primitive, migrate_pages(), serves every
 * caller; the reason says whether KSM frames may move (the seed's offlining
 * argument).
 *
 * Private frame: its frame lock serialises it against merge, swap and other
 * migrations; the write-protect window makes the copy atomic with respect to
 * the program's writers; the remap is the last step inside the window, so a
 * write either happened before the copy or lands in the new frame.
 *
 * KSM frame: nobody writes it (its sharers map it MAP_PRIVATE, and their
 * writes are copied by the kernel), so it is copied once; then each sharer in
 * turn gets a window, is skipped if the kernel has copied it already, and is
 * remapped onto the new frame. A writer waits for its own page's window only.
 * The stable node's kpfn changes last: it names a frame, never a pointer.
 *
 * Locks: KSM mutex (held by the caller for KSM frames: offline holds it from
 * GOING_OFFLINE on) -> rt.lock (read, taken here per frame) -> frame locks,
 * try-locked: a frame someone else holds is busy, and the caller retries a
 * bounded number of times -> pool lock (inside frame allocation).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "pool.h"

static char *page_addr(const struct sp_region *r, unsigned long idx)
{
	return r->start + (idx << PAGE_SHIFT);
}

static void frame_take_owner(struct sp_pool *pool, unsigned long pfn, struct sp_region *r,
			     unsigned long idx)
{
	struct sp_page *page = pfn_to_page(pool, pfn);

	page->owner = r->id;
	page->index = (uint32_t)idx;
	page->mapcount = 1;
	atomic_store(&page->refcount, 1);
}

/* Page idx of r, backed by private frame old, moves to frame new. rt.lock held. */
static int move_private(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			unsigned long old, unsigned long new)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	void *addr = page_addr(r, idx);
	struct sp_window w;
	int err = EAGAIN;

	if (pte_type(pte) != PTE_PRIVATE || pte_val(pte) != old || !frame_trylock(pool, old))
		goto out;
	if (atomic_load(&r->pte[idx]) != pte)
		goto out_unlock;
	if (wp_window_open(pool, &w, addr, PAGE_SIZE)) {
		err = errno;
		goto out_unlock;
	}
	/* A hole stays a hole: copying it would allocate two pages of zeros. */
	if (!frame_is_hole(pool, old))
		memcpy(pfn_to_virt(pool, new), pfn_to_virt(pool, old), PAGE_SIZE);
	if (fault_map(pool, addr, PAGE_SIZE, new, true)) {
		err = errno;
		wp_window_close(pool, &w);
		goto out_unlock;
	}
	frame_take_owner(pool, new, r, idx);
	atomic_store(&r->pte[idx], mk_pte(PTE_PRIVATE, new, pte & PTE_MERGEABLE));
	wp_window_close(pool, &w);
	frame_unlock(pool, old);
	frames_free_run(pool, old, 1);
	atomic_fetch_add(&pool->pages_migrated, 1);
	return 0;

out_unlock:
	frame_unlock(pool, old);
out:
	errno = err;
	return -1;
}

int migrate_private_page(struct sp_pool *pool, struct sp_region *r, unsigned long idx, int node)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	long new;

	if (pte_type(pte) != PTE_PRIVATE) {
		errno = EAGAIN;
		return -1;
	}
	new = frame_alloc(pool, node);
	if (new < 0)
		return -1;
	if (move_private(pool, r, idx, pte_val(pte), (unsigned long)new)) {
		int err = errno;

		frames_free_run(pool, (unsigned long)new, 1);
		errno = err;
		return -1;
	}
	return 0;
}

/* Put the sharers in moved[0..n) back on frame k after a failed remap. */
static void ksm_roll_back(struct sp_pool *pool, struct ksm_rmap *moved, int n, unsigned long k)
{
	for (int i = 0; i < n; i++) {
		struct sp_region *w = region_by_id(pool, moved[i].rid);
		struct sp_window win;

		if (wp_window_open(pool, &win, page_addr(w, moved[i].idx), PAGE_SIZE))
			continue;
		if (fault_map(pool, page_addr(w, moved[i].idx), PAGE_SIZE, k, false))
			sp_log(SP_LOG_ERR, "restoring a KSM page at %p: %s",
			       (void *)page_addr(w, moved[i].idx), strerror(errno));
		else
			atomic_store(&w->pte[moved[i].idx], mk_pte(PTE_KSM, k, PTE_MERGEABLE));
		wp_window_close(pool, &win);
	}
}

/*
 * One sharer onto frame f: 1 remapped, 0 copied by the kernel already (it is
 * no sharer any more), -1 if the remap failed (it still maps k).
 */
static int ksm_move_sharer(struct sp_pool *pool, struct sp_region *w, unsigned long idx,
			   unsigned long k, unsigned long f)
{
	uint64_t pte = atomic_load(&w->pte[idx]), pm = 0;
	struct sp_window win;
	int ret = 1;

	if (wp_window_open(pool, &win, page_addr(w, idx), PAGE_SIZE))
		return -1;
	/* Protected first, so that no copy-on-write completes after the look. */
	ksm_pagemap(pool, page_addr(w, idx), &pm);
	if (ksm_pm_copied(pm)) {
		atomic_store(&w->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE));
		ret = 0;
	} else if (fault_map(pool, page_addr(w, idx), PAGE_SIZE, f, false)) {
		ret = -1;
	} else {
		atomic_store(&w->pte[idx], mk_pte(PTE_KSM, f, pte & PTE_MERGEABLE));
	}
	wp_window_close(pool, &win);
	(void)k;
	return ret;
}

/* KSM frame k and every sharer move to frame f. KSM mutex and rt.lock held. */
static int move_ksm(struct sp_pool *pool, unsigned long k, unsigned long f)
{
	struct stable_tree *t = &pool->ksm.stable;
	uint32_t sid = pfn_to_page(pool, k)->owner, n;
	struct ksm_rmap *sharers, *moved;
	struct sp_page *fp = pfn_to_page(pool, f);
	int nr_moved = 0, err = 0;

	if (sid >= t->nr_ids || !t->nodes[sid].live || t->nodes[sid].kpfn != k) {
		errno = EAGAIN;
		return -1;
	}
	n = t->nodes[sid].nr;
	sharers = malloc((n + 1) * sizeof(*sharers));
	moved = malloc((n + 1) * sizeof(*moved));
	if (!sharers || !moved) {
		free(sharers);
		free(moved);
		errno = ENOMEM;
		return -1;
	}
	memcpy(sharers, t->nodes[sid].rmap, n * sizeof(*sharers));
	memcpy(pfn_to_virt(pool, f), pfn_to_virt(pool, k), PAGE_SIZE);
	atomic_fetch_or(&fp->flags, PG_ksm);
	fp->owner = sid;
	fp->mapcount = 0;
	for (uint32_t i = 0; i < n && !err; i++) {
		struct sp_region *w = region_by_id(pool, sharers[i].rid);
		int r;

		if (!w || sharers[i].idx >= w->npages ||
		    atomic_load(&w->pte[sharers[i].idx]) != mk_pte(PTE_KSM, k, PTE_MERGEABLE))
			continue;
		r = ksm_move_sharer(pool, w, sharers[i].idx, k, f);
		if (r > 0) {
			moved[nr_moved++] = sharers[i];
			fp->mapcount++;
		} else if (r == 0) {
			ksm_sharer_copied(pool, sid, sharers[i].rid, sharers[i].idx);
		} else {
			err = errno ? errno : EBUSY;
		}
	}
	if (err) {
		ksm_roll_back(pool, moved, nr_moved, k);
		atomic_fetch_and(&fp->flags, ~(uint32_t)PG_ksm);
		free(sharers);
		free(moved);
		errno = err;
		return -1;
	}
	t->nodes[sid].kpfn = (uint32_t)f;
	if (!atomic_load(&pool->ksm.knob[KSM_MERGE_ACROSS_NODES]))
		t->nodes[sid].node = pool->sections[pfn_to_section(pool, f)].node; /* re-keyed */
	atomic_fetch_and(&pfn_to_page(pool, k)->flags, ~(uint32_t)PG_ksm);
	ksm_settle(pool, sid);
	free(sharers);
	free(moved);
	return 0;
}

/* Move the frame at pfn, whatever it backs. 0 moved (or free), -1 with errno. */
static int migrate_one(struct sp_pool *pool, unsigned long pfn, migrate_new_fn get_new, void *priv,
		       enum migrate_reason reason)
{
	struct sp_page *page = pfn_to_page(pool, pfn);
	uint32_t flags = atomic_load(&page->flags);
	struct sp_region *r;
	long new;
	int ret = -1;

	if (!(flags & PG_used))
		return 0;
	if (flags & PG_reserved) {
		errno = EBUSY;
		return -1;
	}
	/* The seed: only offlining has the locking to move a KSM frame. */
	if ((flags & PG_ksm) && reason == MR_MEMPOLICY) {
		errno = EBUSY;
		return -1;
	}
	new = get_new(pool, pfn, priv);
	if (new < 0)
		return -1;
	pthread_rwlock_rdlock(&pool->rt.lock);
	if (flags & PG_ksm) {
		if (frame_trylock(pool, pfn)) {
			ret = move_ksm(pool, pfn, (unsigned long)new);
			frame_unlock(pool, pfn);
			if (!ret) {
				frames_free_run(pool, pfn, 1);
				atomic_fetch_add(&pool->pages_migrated, 1);
			}
		} else {
			errno = EAGAIN;
		}
	} else {
		r = region_by_id(pool, page->owner);
		errno = EAGAIN; /* being allocated, freed or merged: try again */
		if (r && page->index < r->npages)
			ret = move_private(pool, r, page->index, pfn, (unsigned long)new);
	}
	pthread_rwlock_unlock(&pool->rt.lock);
	if (ret) {
		int err = errno;

		frames_free_run(pool, (unsigned long)new, 1);
		errno = err;
	}
	return ret;
}

long migrate_pages(struct sp_pool *pool, const unsigned long *pfns, unsigned long nr,
		   migrate_new_fn get_new, void *priv, enum migrate_reason reason,
		   struct migrate_result *res)
{
	long failed = 0;

	memset(res, 0, sizeof(*res));
	for (unsigned long i = 0; i < nr; i++) {
		if (!migrate_one(pool, pfns[i], get_new, priv, reason)) {
			res->moved++;
			continue;
		}
		failed++;
		if (errno == ENOMEM)
			res->nomem++;
		else if (errno == EAGAIN)
			res->again++;
		else
			res->busy++;
	}
	/* Frames KSM let go of meanwhile, and its counters; only KSM's movers hold its mutex. */
	if (reason != MR_MEMPOLICY)
		ksm_flush(pool);
	return failed;
}
