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
 * Locks (the order is in lock.h): the caller holds the KSM mutex for KSM
 * frames (an offline holds it from GOING_OFFLINE on); rt.lock is taken here
 * (read) per frame or KSM run, and frame locks only tried: a frame someone
 * else holds is busy, and the caller retries a bounded number of times.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gup.h"
#include "log.h"
#include "migrate.h"
#include "pool.h"

static void frame_take_owner(struct sp_pool *pool, unsigned long pfn, struct sp_region *r,
			     unsigned long idx)
{
	struct sp_page *page = pfn_to_page(pool, pfn);

	page->owner = r->id;
	page->index = (uint32_t)idx;
	page->mapcount = 1;
	atomic_store(&page->refcount, 1);
}

/*
 * The program unmapped the page: nobody can write the frame any more, and
 * there is no mapping to replace. Only the frame moves. old is locked.
 */
static int move_lost(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
		     unsigned long old, unsigned long new)
{
	uint64_t pte = atomic_load(&r->pte[idx]);

	if (!frame_is_hole(pool, old))
		memcpy(pfn_to_virt(pool, new), pfn_to_virt(pool, old), PAGE_SIZE);
	frame_take_owner(pool, new, r, idx);
	atomic_store(&r->pte[idx], mk_pte(PTE_PRIVATE, new, pte & (PTE_MERGEABLE | PTE_LOST)));
	frame_unlock(pool, old);
	frames_free_run(pool, old, 1);
	atomic_fetch_add(&pool->pages_migrated, 1);
	return 0;
}

/* move_private's work once old is locked and still named by pte: unlocks old. */
static int move_locked(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
		       unsigned long old, unsigned long new, uint64_t pte)
{
	void *addr = page_addr(r, idx);
	struct sp_window w;
	int err = EAGAIN;

	if (page_pinned(r, idx)) {
		/* Something writes it by reference: as the kernel's refcount check. */
		err = EBUSY;
		goto out_unlock;
	}
	if (pte & PTE_LOST)
		return move_lost(pool, r, idx, old, new);
	if (wp_window_open(pool, &w, addr, PAGE_SIZE)) {
		err = errno;
		if (region_mark_lost(pool, r, idx, 1))
			return move_lost(pool, r, idx, old, new);
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
	errno = err;
	return -1;
}

/* Page idx of r, backed by private frame old, moves to frame new. rt.lock held. */
static int move_private(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			unsigned long old, unsigned long new)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	int ret;

	if (pte_type(pte) != PTE_PRIVATE || pte_val(pte) != old || !frame_trylock(pool, old)) {
		errno = EAGAIN;
		return -1;
	}
	if (atomic_load(&r->pte[idx]) != pte) {
		frame_unlock(pool, old);
		errno = EAGAIN;
		return -1;
	}
	move_begin(pool); /* before the pin check, under the frame lock (gup.c) */
	ret = move_locked(pool, r, idx, old, new, pte);
	move_end(pool);
	return ret;
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

/* A sharer the program unmapped maps no frame of ours: it leaves node sid. */
static void sharer_lost(struct sp_pool *pool, uint32_t sid, struct sp_region *w, unsigned long idx)
{
	uint64_t pte = atomic_load(&w->pte[idx]);

	atomic_store(&w->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
	ksm_sharer_copied(pool, sid, w->id, (uint32_t)idx);
}

/*
 * Put the sharers in moved[0..n) of node sid back on frame k after a failed
 * remap. One the program has unmapped meanwhile leaves the node instead. One
 * that cannot be mapped back (no mapping left) stays on its new frame, said
 * in the log: the caller must not free a frame a page still maps. One that
 * the program wrote since it moved has the kernel's copy: it keeps it and
 * leaves the node (the pagemap, read under the window as in
 * ksm_move_sharer). Mapped onto k again, it would lose that write.
 */
static void ksm_roll_back(struct sp_pool *pool, uint32_t sid, struct ksm_rmap *moved, int n,
			  unsigned long k)
{
	for (int i = 0; i < n; i++) {
		struct sp_region *w = region_by_id(pool, moved[i].rid);
		void *addr = page_addr(w, moved[i].idx);
		struct sp_window win;
		uint64_t pm = 0;

		if (wp_window_open(pool, &win, addr, PAGE_SIZE)) {
			if (region_mark_lost(pool, w, moved[i].idx, 1))
				sharer_lost(pool, sid, w, moved[i].idx);
			else
				sp_log(SP_LOG_ERR, "restoring a KSM page at %p: %s", addr,
				       strerror(errno));
			continue;
		}
		/* A failed read counts as "not copied": right unless a write raced. */
		if (!fault_pagemap(pool, addr, 1, &pm) && pm_copied(pm)) {
			atomic_store(&w->pte[moved[i].idx], mk_pte(PTE_COPIED, 0, PTE_MERGEABLE));
			ksm_sharer_copied(pool, sid, moved[i].rid, moved[i].idx);
		} else if (!fault_restore(pool, addr, PAGE_SIZE, k, false,
					  "a KSM page after a failed move")) {
			atomic_store(&w->pte[moved[i].idx], mk_pte(PTE_KSM, k, PTE_MERGEABLE));
		}
		wp_window_close(pool, &win);
	}
}

/*
 * One sharer onto frame f: 1 remapped, 0 copied by the kernel already (it is
 * no sharer any more), -1 if the remap failed (it still maps k).
 */
static int ksm_move_sharer(struct sp_pool *pool, struct sp_region *w, unsigned long idx,
			   unsigned long f)
{
	uint64_t pte = atomic_load(&w->pte[idx]), pm = 0;
	struct sp_window win;
	int ret = 1;

	if ((pte & PTE_LOST) || wp_window_open(pool, &win, page_addr(w, idx), PAGE_SIZE)) {
		if (!(pte & PTE_LOST) && !region_mark_lost(pool, w, idx, 1))
			return -1;
		/* Unmapped by the program: like a copy, it maps no frame of ours now. */
		atomic_store(&w->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
		return 0;
	}
	/* Protected first, so that no copy-on-write completes after the look. */
	if (fault_pagemap(pool, page_addr(w, idx), 1, &pm)) {
		wp_window_close(pool, &win);
		return -1;
	}
	if (pm_copied(pm)) {
		atomic_store(&w->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE));
		ret = 0;
	} else if (fault_map(pool, page_addr(w, idx), PAGE_SIZE, f, false)) {
		ret = -1;
	} else {
		atomic_store(&w->pte[idx], mk_pte(PTE_KSM, f, pte & PTE_MERGEABLE));
	}
	wp_window_close(pool, &win);
	return ret;
}

/* Page (rid, idx) still maps KSM frame f. rt.lock held. */
static bool maps_frame(struct sp_pool *pool, uint32_t rid, uint32_t idx, unsigned long f)
{
	struct sp_region *w = region_by_id(pool, rid);

	return w && idx < w->npages &&
	       (atomic_load(&w->pte[idx]) & ~(PTE_LOST | PTE_MERGEABLE)) == mk_pte(PTE_KSM, f, 0);
}

/*
 * KSM frame k and every sharer move to frame f. KSM mutex and rt.lock held.
 * 0 moved; -1 not moved (every sharer maps k, or has left); -2 not moved,
 * and a sharer that could not be put back still maps f: f must not be freed.
 */
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
		    (atomic_load(&w->pte[sharers[i].idx]) & ~PTE_LOST) !=
			    mk_pte(PTE_KSM, k, PTE_MERGEABLE))
			continue;
		r = ksm_move_sharer(pool, w, sharers[i].idx, f);
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
		bool stuck = false;

		ksm_roll_back(pool, sid, moved, nr_moved, k);
		for (int i = 0; i < nr_moved; i++)
			stuck |= maps_frame(pool, moved[i].rid, moved[i].idx, f);
		atomic_fetch_and(&fp->flags, ~(uint32_t)PG_ksm);
		ksm_settle(pool, sid); /* sharers copied meanwhile have left */
		free(sharers);
		free(moved);
		errno = err;
		return stuck ? -2 : -1;
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
	rwlock_rdlock(&pool->rt.lock);
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
	rwlock_unlock(&pool->rt.lock);
	if (ret == -2) {
		sp_log(SP_LOG_ERR, "frame %ld kept: a page still maps it after a failed move", new);
		ret = -1;
	} else if (ret) {
		int err = errno;

		frames_free_run(pool, (unsigned long)new, 1);
		/*
		 * The frame was there: an ENOMEM now is a page the fault machinery
		 * cannot protect (a mapping of the program's own, a lost
		 * registration) or a mapping the kernel refused. Busy, as the
		 * kernel's offline says of a page it cannot migrate; reclaim,
		 * which an ENOMEM asks for, would not help.
		 */
		errno = err == ENOMEM ? EBUSY : err;
	}
	return ret;
}

/* ---- KSM frames in runs ------------------------------------------------ */

/*
 * Consecutive KSM frames are usually shared by consecutive pages (two copies
 * of one image): moved together, each sharer region's stretch of them costs
 * one window, one pagemap read, one mapping and one registration, and the old
 * frames one punch, instead of all of that per page.
 */
#define KSM_BATCH 256

struct batch_ent {
	uint32_t rid, idx, i; /* sharer page (rid, idx) of the batch's i-th frame */
};

static int ent_cmp(const void *a, const void *b)
{
	const struct batch_ent *x = a, *y = b;

	if (x->rid != y->rid)
		return x->rid < y->rid ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The sharers of frames k0.., sorted so that stretches sit together. */
static struct batch_ent *batch_entries(struct sp_pool *pool, unsigned long k0, unsigned n,
				       size_t *nr)
{
	struct stable_tree *t = &pool->ksm.stable;
	struct batch_ent *e;
	size_t m = 0;

	for (unsigned i = 0; i < n; i++)
		m += t->nodes[pfn_to_page(pool, k0 + i)->owner].nr;
	e = malloc((m ? m : 1) * sizeof(*e));
	if (!e)
		return NULL;
	m = 0;
	for (unsigned i = 0; i < n; i++) {
		struct stable_node *s = &t->nodes[pfn_to_page(pool, k0 + i)->owner];

		for (uint32_t j = 0; j < s->nr; j++)
			e[m++] = (struct batch_ent){ s->rmap[j].rid, s->rmap[j].idx, i };
	}
	qsort(e, m, sizeof(*e), ent_cmp);
	*nr = m;
	return e;
}

struct batch {
	unsigned long k0, f0;
	unsigned n;
	struct batch_ent *copied; /* sharers the kernel had copied */
	size_t nr_copied;
	bool failed;
};

/*
 * Frames k0.. into f0..: the kernel copies file to file, allocating the new
 * pages without zeroing them first and without a fault each.
 */
static void copy_frames(struct sp_pool *pool, unsigned long k0, unsigned long f0, unsigned n)
{
	os_memfd_copy(pool->memfd, pool->dmap, (off_t)(k0 << PAGE_SHIFT), (off_t)(f0 << PAGE_SHIFT),
		      (size_t)n << PAGE_SHIFT);
}

/* Sharers e[0..len) are consecutive pages of w and of the batch: move them together. */
static void batch_stretch(struct sp_pool *pool, struct batch *b, struct sp_region *w,
			  const struct batch_ent *e, size_t len)
{
	char *addr = w->start + ((unsigned long)e[0].idx << PAGE_SHIFT);
	uint64_t pm[KSM_BATCH];
	struct sp_window win;
	size_t j = 0;

	if (wp_window_open(pool, &win, addr, len << PAGE_SHIFT)) {
		b->failed = true;
		return;
	}
	if (fault_pagemap(pool, addr, len, pm)) {
		b->failed = true;
		wp_window_close(pool, &win);
		return;
	}
	while (j < len && !b->failed) {
		size_t k = j;

		if (pm_copied(pm[j])) {
			atomic_store(&w->pte[e[j].idx], mk_pte(PTE_COPIED, 0, PTE_MERGEABLE));
			b->copied[b->nr_copied++] = e[j++];
			continue;
		}
		while (k + 1 < len && !pm_copied(pm[k + 1]))
			k++;
		if (fault_remap(pool, addr + (j << PAGE_SHIFT), (k - j + 1) << PAGE_SHIFT,
				b->f0 + e[j].i, false)) {
			b->failed = true;
			break;
		}
		for (; j <= k; j++)
			atomic_store(&w->pte[e[j].idx],
				     mk_pte(PTE_KSM, b->f0 + e[j].i, PTE_MERGEABLE));
	}
	if (fault_register(pool, addr, len << PAGE_SHIFT))
		b->failed = true;
	wp_window_close(pool, &win);
}

/* Longest stretch from e[0]: same region, consecutive pages, consecutive frames. */
static size_t stretch_len(const struct batch_ent *e, size_t left)
{
	size_t len = 1;

	while (len < left && len < KSM_BATCH && e[len].rid == e[0].rid &&
	       e[len].idx == e[0].idx + len && e[len].i == e[0].i + len)
		len++;
	return len;
}

/* Every sharer back on the old frames after a failure; the old frames still hold it all. */
static void batch_roll_back(struct sp_pool *pool, struct batch *b, const struct batch_ent *e,
			    size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		struct ksm_rmap one = { e[i].rid, e[i].idx };

		if (maps_frame(pool, e[i].rid, e[i].idx, b->f0 + e[i].i))
			ksm_roll_back(pool, pfn_to_page(pool, b->k0 + e[i].i)->owner, &one, 1,
				      b->k0 + e[i].i);
	}
}

/*
 * The batch failed: sharers are back on the old frames, those the kernel
 * copied leave their nodes, and the nodes settle (a frame may go to its
 * last sharer, or be freed). stuck[i]: new frame i is still mapped by a
 * sharer that could not be put back, and must not be freed.
 */
static void batch_fail(struct sp_pool *pool, struct batch *b, const struct batch_ent *e, size_t nr,
		       bool *stuck)
{
	batch_roll_back(pool, b, e, nr);
	for (size_t j = 0; j < b->nr_copied; j++) {
		struct sp_region *w = region_by_id(pool, b->copied[j].rid);

		/* Copied is copied: those leave the node whatever happens. */
		atomic_store(&w->pte[b->copied[j].idx], mk_pte(PTE_COPIED, 0, PTE_MERGEABLE));
		ksm_sharer_copied(pool, pfn_to_page(pool, b->k0 + b->copied[j].i)->owner,
				  b->copied[j].rid, b->copied[j].idx);
	}
	for (size_t j = 0; j < nr; j++)
		stuck[e[j].i] |= maps_frame(pool, e[j].rid, e[j].idx, b->f0 + e[j].i);
	for (unsigned j = 0; j < b->n; j++)
		ksm_settle(pool, pfn_to_page(pool, b->k0 + j)->owner);
}

static void batch_commit(struct sp_pool *pool, struct batch *b)
{
	struct stable_tree *t = &pool->ksm.stable;
	bool rekey = !atomic_load(&pool->ksm.knob[KSM_MERGE_ACROSS_NODES]);

	for (unsigned i = 0; i < b->n; i++) {
		uint32_t sid = pfn_to_page(pool, b->k0 + i)->owner;
		struct sp_page *fp = pfn_to_page(pool, b->f0 + i);

		t->nodes[sid].kpfn = (uint32_t)(b->f0 + i);
		if (rekey)
			t->nodes[sid].node = pool->sections[pfn_to_section(pool, b->f0 + i)].node;
		fp->owner = sid;
		fp->mapcount = t->nodes[sid].nr;
		atomic_fetch_or(&fp->flags, PG_ksm);
		atomic_fetch_and(&pfn_to_page(pool, b->k0 + i)->flags, ~(uint32_t)PG_ksm);
	}
	for (size_t i = 0; i < b->nr_copied; i++)
		ksm_sharer_copied(pool, pfn_to_page(pool, b->f0 + b->copied[i].i)->owner,
				  b->copied[i].rid, b->copied[i].idx);
	for (unsigned i = 0; i < b->n; i++)
		ksm_settle(pool, pfn_to_page(pool, b->f0 + i)->owner);
}

/*
 * KSM frames k0..k0+n (locked) to f0..f0+n (fresh). KSM mutex and rt.lock
 * held. 0: all moved, the old frames are the caller's to free. -1: none
 * moved: the old frames are still KSM's (their nodes may have settled them
 * onto a last sharer, or freed them), and the new ones the caller's to free,
 * except those stuck[] says a page still maps.
 */
static int move_ksm_batch(struct sp_pool *pool, unsigned long k0, unsigned long f0, unsigned n,
			  bool *stuck)
{
	struct batch b = { .k0 = k0, .f0 = f0, .n = n };
	struct stable_tree *t = &pool->ksm.stable;
	struct batch_ent *e;
	size_t nr = 0, i = 0;

	for (unsigned j = 0; j < n; j++) {
		uint32_t sid = pfn_to_page(pool, k0 + j)->owner;

		if (sid >= t->nr_ids || !t->nodes[sid].live || t->nodes[sid].kpfn != k0 + j) {
			errno = EAGAIN;
			return -1;
		}
	}
	e = batch_entries(pool, k0, n, &nr);
	b.copied = malloc((nr ? nr : 1) * sizeof(*b.copied));
	if (!e || !b.copied) {
		free(e);
		free(b.copied);
		errno = ENOMEM;
		return -1;
	}
	copy_frames(pool, k0, f0, n);
	while (i < nr && !b.failed) {
		size_t len = stretch_len(&e[i], nr - i);
		struct sp_region *w = region_by_id(pool, e[i].rid);

		/* A lost sharer (PTE_LOST) fails this: the frame moves alone, below. */
		for (size_t j = 0; w && j < len; j++)
			if (atomic_load(&w->pte[e[i + j].idx]) !=
			    mk_pte(PTE_KSM, k0 + e[i + j].i, PTE_MERGEABLE))
				w = NULL;
		if (w)
			batch_stretch(pool, &b, w, &e[i], len);
		else
			b.failed = true; /* an rmap that does not match its page table */
		i += len;
	}
	if (b.failed)
		batch_fail(pool, &b, e, nr, stuck);
	else
		batch_commit(pool, &b);
	free(e);
	free(b.copied);
	errno = EBUSY;
	return b.failed ? -1 : 0;
}

/*
 * How many of pfns[i..] are consecutive KSM frames we could lock, at most
 * KSM_BATCH. rt.lock held (read): nobody waits for it holding frame locks.
 */
static unsigned lock_ksm_run(struct sp_pool *pool, const unsigned long *pfns, unsigned long i,
			     unsigned long nr)
{
	unsigned n = 0;

	while (i + n < nr && n < KSM_BATCH && (!n || pfns[i + n] == pfns[i] + n) &&
	       (atomic_load(&pfn_to_page(pool, pfns[i + n])->flags) & PG_ksm) &&
	       frame_trylock(pool, pfns[i + n]))
		n++;
	return n;
}

static void unlock_ksm_run(struct sp_pool *pool, const unsigned long *ks, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		frame_unlock(pool, ks[i]);
}

/*
 * Offlining: a run of KSM frames, locked (lock_ksm_run), moves in batches,
 * one per run of new frames; they are unlocked here, whatever happens. How
 * many of ks moved: the batches before the first that failed. Each batch's
 * outcome is its own (move_ksm_batch), never read back from the frames,
 * which a failed batch may have settled or freed: what moved gives its old
 * frames back; what did not gives back the new frames it allocated, but for
 * any a page still maps. rt.lock held (read).
 */
static unsigned migrate_ksm_run(struct sp_pool *pool, const unsigned long *ks, unsigned n)
{
	int node = pool->sections[pfn_to_section(pool, ks[0])].node;
	unsigned nr_runs, r, done = 0, moved;
	struct sp_run *runs;
	bool *stuck;

	stuck = calloc(n, sizeof(*stuck));
	if (!stuck || frames_alloc(pool, node, n, &runs, &nr_runs)) {
		free(stuck);
		unlock_ksm_run(pool, ks, n);
		return 0;
	}
	for (r = 0; r < nr_runs; done += (unsigned)runs[r++].nr)
		if (move_ksm_batch(pool, ks[done], runs[r].pfn, (unsigned)runs[r].nr, stuck + done))
			break;
	moved = done;
	unlock_ksm_run(pool, ks, n);
	for (done = 0, r = 0; r < nr_runs; done += (unsigned)runs[r++].nr) {
		if (done < moved) {
			frames_free_run(pool, ks[done], runs[r].nr);
			atomic_fetch_add(&pool->pages_migrated, (long)runs[r].nr);
			continue;
		}
		for (unsigned i = 0; i < runs[r].nr; i++) {
			if (!stuck[done + i]) {
				frames_free_run(pool, runs[r].pfn + i, 1);
				continue;
			}
			sp_log(SP_LOG_ERR,
			       "frame %lu kept: a page still maps it after a failed move",
			       runs[r].pfn + i);
		}
	}
	free(runs);
	free(stuck);
	return moved;
}

/*
 * Offlining: the consecutive KSM frames from pfns[i] move as one run. How
 * many moved, the first of them; *locked: how many were in the run (fewer
 * than two: none moved, each is moved alone). The region table lock comes
 * before the frames': whoever holds it may wait for a frame, never the
 * other way round.
 */
static unsigned migrate_ksm_frames(struct sp_pool *pool, const unsigned long *pfns, unsigned long i,
				   unsigned long nr, unsigned *locked)
{
	unsigned n, moved = 0;

	rwlock_rdlock(&pool->rt.lock);
	n = lock_ksm_run(pool, pfns, i, nr);
	if (n > 1)
		moved = migrate_ksm_run(pool, &pfns[i], n);
	else
		unlock_ksm_run(pool, &pfns[i], n);
	rwlock_unlock(&pool->rt.lock);
	*locked = n;
	return moved;
}

long migrate_pages(struct sp_pool *pool, const unsigned long *pfns, unsigned long nr,
		   migrate_new_fn get_new, void *priv, enum migrate_reason reason,
		   struct migrate_result *res)
{
	long failed = 0;

	memset(res, 0, sizeof(*res));
	for (unsigned long i = 0; i < nr; i++) {
		unsigned n = 0, moved = 0;

		if (reason == MR_OFFLINING)
			moved = migrate_ksm_frames(pool, pfns, i, nr, &n);
		if (moved) {
			res->moved += moved;
			i += moved;
			if (moved == n) {
				i--;
				continue;
			}
		}
		/* One at a time: a single frame, or a run that could not move as one. */
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
