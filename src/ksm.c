/* SPDX-License-Identifier: MIT */
/*
 * KSM: the merging engine (ksmd, the scan, merge, copy-on-write bookkeeping,
 * unmerge).
 *
 * Locking (the order is in lock.h). The KSM mutex (ksm.mutex,
 * ksm_thread_mutex in the kernel) guards all of KSM's metadata: stable nodes
 * and their rmap, the unstable index, per-page ksm_items, the scan cursor and
 * the counters' sources. Who takes it: the scanner (per chunk, so that
 * others get in between chunks),
 * unmerging (run=2, SP_MADV_UNMERGEABLE, sp_set_merge_domain), sp_free of a
 * region that KSM has seen, memory hot-remove for the whole offline,
 * sp_swap_out, and the swap-in worker bringing a swapped KSM frame back
 * (before the region table lock, as everyone). The fault thread never takes
 * it, nor any lock here; reclaim only tries it.
 *
 * Frame locks: a merge try-locks the frames it touches (the page's, the
 * candidate's, the KSM frame) and leaves the page for the next scan when one
 * is busy, so the scanner never sleeps on a frame lock and cannot deadlock
 * with anyone who holds one. Unmerging takes the KSM frame's lock blocking:
 * nobody holding a frame lock waits for the KSM mutex.
 *
 * Merging page v (private frame a) into KSM frame k follows DESIGN.md: lock,
 * write-protect v (the window), compare a and k through the direct map, map v
 * MAP_PRIVATE onto k, move v's rmap under k's stable node, close the window,
 * free a. Consecutive pages are merged as one run: one window, one protect
 * and one wake for the run, one mapping call per stretch of consecutive KSM
 * frames, one punch per stretch of consecutive freed frames.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "gup.h"
#include "log.h"
#include "pool.h"

#define CHUNK_PAGES 256 /* pages per hold of the KSM mutex */
#define RUN_MAX 32 /* pages merged under one window */
#define RUN_SPAN 128 /* pages one window may cover */

/* ---- small helpers ---------------------------------------------------- */

static long knob(struct sp_pool *pool, int k)
{
	return atomic_load(&pool->ksm.knob[k]);
}

static int frame_node(struct sp_pool *pool, unsigned long pfn)
{
	return pool->sections[pfn_to_section(pool, pfn)].node;
}

/* The node part of a content's key: -1 when merging across nodes. */
static int key_node(struct sp_pool *pool, unsigned long pfn)
{
	return knob(pool, KSM_MERGE_ACROSS_NODES) ? -1 : frame_node(pool, pfn);
}

static uint32_t page_hash(const void *p)
{
	return (uint32_t)XXH3_64bits(p, PAGE_SIZE);
}

static bool same_page(struct sp_pool *pool, unsigned long a, unsigned long b)
{
	return !memcmp(pfn_to_virt(pool, a), pfn_to_virt(pool, b), PAGE_SIZE);
}

static bool zero_page(const void *p)
{
	const uint64_t *w = p;

	for (int i = 0; i < (int)(PAGE_SIZE / 8); i++)
		if (w[i])
			return false;
	return true;
}

static struct ksm_item *region_items(struct sp_pool *pool, struct sp_region *r)
{
	if (!r->items) {
		r->items = calloc(r->npages, sizeof(*r->items));
		if (r->items)
			pool->ksm.items_bytes += r->npages * sizeof(*r->items);
	}
	return r->items;
}

/*
 * The kernel's rmap_item life, per page: a page is tracked from the
 * scanner's visit (counted in pages_volatile unless it is in a tree), and
 * in the unstable tree from its insertion until its next visit, its merge,
 * or its untracking (counted in pages_unshared). KSM mutex held.
 */
static void item_track(struct sp_ksm *ksm, struct ksm_item *it)
{
	if (!(it->flags & ITEM_TRACKED)) {
		it->flags |= ITEM_TRACKED;
		ksm->tracked++;
	}
}

static void item_unstable_leave(struct sp_ksm *ksm, struct ksm_item *it)
{
	if (it->flags & ITEM_UNSTABLE) {
		it->flags &= ~ITEM_UNSTABLE;
		ksm->unshared--;
	}
}

/* Not tracked any more (not present, unmergeable, freed); its history stays. */
static void item_untrack(struct sp_ksm *ksm, struct ksm_item *it)
{
	item_unstable_leave(ksm, it);
	if (it->flags & ITEM_TRACKED) {
		it->flags &= ~ITEM_TRACKED;
		ksm->tracked--;
	}
}

/* Pages [first, first+nr) of r forget KSM entirely: run=2, unmergeable, freed. */
static void items_drop(struct sp_ksm *ksm, struct sp_region *r, unsigned long first,
		       unsigned long nr)
{
	for (unsigned long i = first; r->items && i < first + nr; i++) {
		item_untrack(ksm, &r->items[i]);
		r->items[i] = (struct ksm_item){ 0 };
	}
}

/* Freed frames wait for the end of the chunk: one punch per run of them. */
static void defer_free(struct sp_pool *pool, unsigned long pfn)
{
	struct sp_ksm *ksm = &pool->ksm;

	if (ksm->nr_freed == ksm->cap_freed) {
		unsigned long cap = ksm->cap_freed ? ksm->cap_freed * 2 : 512;
		unsigned long *n = realloc(ksm->freed, cap * sizeof(*n));

		if (!n) {
			frames_free_run(pool, pfn, 1);
			return;
		}
		ksm->freed = n;
		ksm->cap_freed = cap;
	}
	ksm->freed[ksm->nr_freed++] = pfn;
}

static void flush_freed(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;

	if (ksm->nr_freed)
		frames_free_pfns(pool, ksm->freed, ksm->nr_freed);
	ksm->nr_freed = 0;
}

static void update_counters(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;
	long shared = ksm->stable.nr_live, sharing = ksm->sharers - shared;
	long meta = (long)(ksm->items_bytes + ksm->unstable.size * sizeof(uint64_t) +
			   stable_bytes(&ksm->stable));
	/* As the kernel computes it: tracked pages in neither tree. */
	long volatile_pages = ksm->tracked - ksm->unshared - ksm->sharers;

	atomic_store(&ksm->counter[KSM_PAGES_SHARED], shared);
	atomic_store(&ksm->counter[KSM_PAGES_SHARING], sharing);
	atomic_store(&ksm->counter[KSM_PAGES_UNSHARED], ksm->unshared);
	atomic_store(&ksm->counter[KSM_PAGES_VOLATILE], volatile_pages > 0 ? volatile_pages : 0);
	atomic_store(&ksm->counter[KSM_STABLE_NODE_CHAINS], ksm->stable.chains);
	atomic_store(&ksm->counter[KSM_STABLE_NODE_DUPS], ksm->stable.dups);
	atomic_store(&ksm->counter[KSM_KSM_ZERO_PAGES], ksm->zero_pages);
	atomic_store(&ksm->counter[KSM_GENERAL_PROFIT],
		     (sharing + ksm->zero_pages) * (long)PAGE_SIZE - meta);
}

/* ---- the rmap: a sharer leaves a KSM frame ---------------------------- */

static void page_make_private_owner(struct sp_pool *pool, unsigned long pfn,
				    const struct sp_region *r, unsigned long idx)
{
	struct sp_page *page = pfn_to_page(pool, pfn);

	atomic_fetch_and(&page->flags, ~(uint32_t)PG_ksm);
	page->owner = r->id;
	page->index = (uint32_t)idx;
	page->mapcount = 1;
}

enum revert { REVERT_FAILED, REVERT_KEPT, REVERT_COPIED };

/*
 * The last sharer of KSM frame k (page idx of w) would keep k, but k is on
 * a node its memory policy does not want: a frame of its own where the
 * policy says, with k's content (the kernel gives every unmerged page a new
 * page by its policy). -1: keep k, there is nowhere better to go.
 */
static long policy_copy(struct sp_pool *pool, const struct sp_region *w, unsigned long idx,
			unsigned long k)
{
	long f;

	if (!policy_misplaced(w, idx, frame_node(pool, k)))
		return -1;
	f = policy_frame_alloc(pool, w, idx);
	if (f < 0)
		return -1;
	/* PREFERRED falls back to any node: no better than k then. */
	if (policy_misplaced(w, idx, frame_node(pool, (unsigned long)f))) {
		frames_free_run(pool, (unsigned long)f, 1);
		return -1;
	}
	memcpy(pfn_to_virt(pool, (unsigned long)f), pfn_to_virt(pool, k), PAGE_SIZE);
	return f;
}

/*
 * The last sharer of KSM frame k gets k back as its private frame, without a
 * copy: remapped MAP_SHARED, unless the kernel has copied it meanwhile (then
 * k is left with no sharer), or its memory policy wants it on another node
 * (then it gets a copy there, and k is left with no sharer). k is locked by
 * the caller.
 */
static enum revert revert_last_sharer(struct sp_pool *pool, uint32_t sid)
{
	struct stable_node *s = &pool->ksm.stable.nodes[sid];
	struct sp_region *w = region_by_id(pool, s->rmap[0].rid);
	unsigned long idx = s->rmap[0].idx;
	enum revert ret = REVERT_KEPT;
	struct sp_window win;
	uint64_t pte, pm;

	if (!w || idx >= w->npages)
		return REVERT_FAILED; /* its region is going away too */
	pte = atomic_load(&w->pte[idx]);
	if (pte_type(pte) != PTE_KSM || pte_val(pte) != s->kpfn)
		return REVERT_FAILED;
	if ((pte & PTE_LOST) || wp_window_open(pool, &win, page_addr(w, idx), PAGE_SIZE)) {
		if (!(pte & PTE_LOST) && !region_mark_lost(pool, w, idx, 1))
			return REVERT_FAILED;
		/* Unmapped by the program: it maps no frame of ours any more. */
		atomic_store(&w->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
		stable_remove_rmap(&pool->ksm.stable, sid, s->rmap[0].rid, s->rmap[0].idx);
		pool->ksm.sharers--;
		return REVERT_COPIED;
	}
	/* Protected first, so that no copy-on-write can complete after the look. */
	if (fault_pagemap(pool, page_addr(w, idx), 1, &pm)) {
		wp_window_close(pool, &win);
		return REVERT_FAILED;
	}
	if (pm_copied(pm)) {
		/* Its mapping stays: it must be writable again. */
		atomic_store(&w->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE));
		atomic_fetch_add(&pool->faults_cow, 1);
		wp_window_close(pool, &win);
		ret = REVERT_COPIED;
	} else {
		long f = policy_copy(pool, w, idx, s->kpfn);
		unsigned long to = f >= 0 ? (unsigned long)f : s->kpfn;

		if (fault_map(pool, page_addr(w, idx), PAGE_SIZE, to, true)) {
			wp_window_close(pool, &win);
			if (f >= 0)
				frames_free_run(pool, to, 1);
			return REVERT_FAILED; /* a KSM frame of one sharer, tried again later */
		}
		page_make_private_owner(pool, to, w, idx);
		atomic_store(&w->pte[idx], mk_pte(PTE_PRIVATE, to, pte & PTE_MERGEABLE));
		wp_window_close(pool, &win);
		if (f >= 0)
			ret = REVERT_COPIED; /* k goes */
	}
	stable_remove_rmap(&pool->ksm.stable, sid, s->rmap[0].rid, s->rmap[0].idx);
	pool->ksm.sharers--;
	return ret;
}

/*
 * Stable node sid has lost sharers: with one left, that sharer gets the
 * frame back; with none, the frame is freed. The KSM frame is locked by the
 * caller (or unknown to anyone else, during its migration).
 */
/*
 * A swapped node with one sharer left gives it the slot (a private page in
 * swap, as if it had never merged); with none, the slot goes.
 */
static void settle_swapped(struct sp_pool *pool, uint32_t sid)
{
	struct stable_node *s = &pool->ksm.stable.nodes[sid];

	if (s->nr == 1) {
		struct sp_region *w = region_by_id(pool, s->rmap[0].rid);
		uint64_t pte;

		/* Its region is being freed: its release drops it, and then the slot goes. */
		if (!w)
			return;
		pte = atomic_load(&w->pte[s->rmap[0].idx]);

		atomic_store(&w->pte[s->rmap[0].idx],
			     mk_pte(PTE_SWAP, s->slot, pte & (PTE_MERGEABLE | PTE_LOST)));
		stable_remove_rmap(&pool->ksm.stable, sid, s->rmap[0].rid, s->rmap[0].idx);
		pool->ksm.sharers--;
	} else {
		swap_slot_free(pool, s->slot);
	}
	stable_delete(&pool->ksm.stable, sid);
}

void ksm_settle(struct sp_pool *pool, uint32_t sid)
{
	struct sp_ksm *ksm = &pool->ksm;
	unsigned long k = ksm->stable.nodes[sid].kpfn;
	enum revert rv = REVERT_COPIED;

	if (ksm->stable.nodes[sid].nr > 1)
		return;
	if (ksm->stable.nodes[sid].swapped)
		return settle_swapped(pool, sid);
	if (ksm->stable.nodes[sid].nr == 1) {
		rv = revert_last_sharer(pool, sid);
		if (rv == REVERT_FAILED)
			return;
	}
	stable_delete(&ksm->stable, sid);
	if (rv != REVERT_KEPT) {
		atomic_fetch_and(&pfn_to_page(pool, k)->flags, ~(uint32_t)PG_ksm);
		defer_free(pool, k);
	}
}

/* Page (rid, idx) no longer maps stable node sid's frame. */
static void drop_sharer(struct sp_pool *pool, uint32_t sid, uint32_t rid, uint32_t idx)
{
	stable_remove_rmap(&pool->ksm.stable, sid, rid, idx);
	pool->ksm.sharers--;
	if (!pool->ksm.stable.nodes[sid].swapped)
		pfn_to_page(pool, pool->ksm.stable.nodes[sid].kpfn)->mapcount--;
	ksm_settle(pool, sid);
}

void ksm_sharer_copied(struct sp_pool *pool, uint32_t sid, uint32_t rid, uint32_t idx)
{
	stable_remove_rmap(&pool->ksm.stable, sid, rid, idx);
	pool->ksm.sharers--;
	atomic_fetch_add(&pool->faults_cow, 1);
}

void ksm_flush(struct sp_pool *pool)
{
	flush_freed(pool);
	update_counters(pool);
}

/* The kernel copied page idx of r on a write: it leaves its KSM frame. */
static void page_copied(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	unsigned long k = pte_val(pte);
	uint32_t sid;

	if (!frame_trylock(pool, k))
		return; /* noticed again next visit */
	if (atomic_load(&r->pte[idx]) != pte)
		goto out_unlock;
	sid = pfn_to_page(pool, k)->owner;
	atomic_store(&r->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE));
	atomic_fetch_add(&pool->faults_cow, 1);
	drop_sharer(pool, sid, r->id, (uint32_t)idx);
out_unlock:
	frame_unlock(pool, k);
}

/* ---- unmerge: a page becomes private again ----------------------------- */

/* A lost page leaves the KSM frame it was sharing, if any. */
static int drop_lost(struct sp_pool *pool, struct sp_region *r, unsigned long idx, uint64_t pte)
{
	unsigned long k = pte_val(pte);

	if (pte_type(pte) == PTE_KSM) {
		frame_lock(pool, k);
		if (atomic_load(&r->pte[idx]) == pte) {
			atomic_store(&r->pte[idx],
				     mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
			drop_sharer(pool, pfn_to_page(pool, k)->owner, r->id, (uint32_t)idx);
		}
		frame_unlock(pool, k);
	} else if (pte_type(pte) == PTE_ZERO) {
		atomic_store(&r->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
		pool->ksm.zero_pages--;
	} else if (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP)) {
		atomic_store(&r->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
		drop_sharer(pool, (uint32_t)pte_val(pte), r->id, (uint32_t)idx);
	}
	return 0;
}

static int sharer_map_one(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			  uint32_t sid);

/*
 * A sharer of a swapped node leaves it (unmerge): a page of its own in swap,
 * a copy of the slot. No frame needed. A sharer left in missing mode when
 * its node came back (see ksm_swap_in) is mapped first, and then unmerged as
 * any KSM page (EAGAIN: the caller tries again).
 */
static int swapped_sharer_unshare(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
				  uint64_t pte)
{
	uint32_t sid = (uint32_t)pte_val(pte);
	long copy;

	if (!pool->ksm.stable.nodes[sid].swapped) {
		errno = sharer_map_one(pool, r, idx, sid) ? ENOMEM : EAGAIN;
		return -1;
	}
	/* A failed copy (EIO) is tried again; a full swap area is no room (ENOMEM). */
	for (int tries = 0; (copy = swap_copy(pool, pool->ksm.stable.nodes[sid].slot)) < 0;)
		if (errno != EIO || ++tries == 3) {
			errno = ENOMEM;
			return -1;
		}
	atomic_store(&r->pte[idx], mk_pte(PTE_SWAP, (unsigned long)copy, pte & PTE_MERGEABLE));
	drop_sharer(pool, sid, r->id, (uint32_t)idx);
	return 0;
}

/*
 * Give page idx of r a private frame holding what the program sees there
 * (the KSM frame, the zero page, or the kernel's copy), read inside the
 * window. 0 if it is private now; -1 with ENOMEM if no frame is free, EAGAIN
 * if the page changed under us; the page is then as it was.
 */
/*
 * A new frame for page idx of r: the frame next to a private neighbour's,
 * on the side that keeps page order, when it is free and the page's policy
 * allows its node, so that the page's mapping joins the neighbour's into
 * one vma (gVisor chose memfd offsets the same way for the same limit);
 * often the very frame the page had before it merged. Else by its policy,
 * from the top of free space: the low free frames are those merging freed
 * among the region's, the homes of pages unmerged after this one.
 */
static long frame_near(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	unsigned long mask;
	int node;

	policy_nodes(r, idx, &mask, &node);
	for (int side = -1; side <= 1; side += 2) {
		unsigned long j = idx + (unsigned long)(long)side, want;
		uint64_t pte;
		long f;

		if ((side < 0 && !idx) || j >= r->npages)
			continue;
		pte = atomic_load(&r->pte[j]);
		if (pte_type(pte) != PTE_PRIVATE || (side > 0 && !pte_val(pte)))
			continue;
		want = pte_val(pte) - (unsigned long)(long)side;
		f = frame_alloc_at(pool, want);
		if (f < 0)
			continue;
		/* Where its policy would put it: INTERLEAVE names one node per page. */
		if (!policy_misplaced(r, idx, frame_node(pool, want)) &&
		    (node < 0 || frame_node(pool, want) == node))
			return f;
		frames_free_run(pool, want, 1);
	}
	return policy_frame_alloc_far(pool, r, idx);
}

static int unshare_page(struct sp_pool *pool, struct sp_region *r, unsigned long idx, bool near)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	enum sp_pte_type type = pte_type(pte);
	char *addr = page_addr(r, idx);
	unsigned long k = pte_val(pte);
	struct sp_window win;
	int err = EAGAIN;
	long f;

	if (pte & PTE_LOST) /* unmapped by the program: nothing to give a frame to */
		return drop_lost(pool, r, idx, pte);
	if (type == PTE_SWAP && (pte & PTE_KSMSWAP))
		return swapped_sharer_unshare(pool, r, idx, pte);
	if (type != PTE_KSM && type != PTE_ZERO && type != PTE_COPIED)
		return 0;
	/* A new frame honours the page's policy; an unmerge gives back the mappings merging took. */
	f = near ? frame_near(pool, r, idx) : policy_frame_alloc(pool, r, idx);
	if (f < 0)
		return -1;
	if (type == PTE_KSM)
		frame_lock(pool, k);
	move_begin(pool); /* before the pin check (gup.c) */
	if (atomic_load(&r->pte[idx]) != pte)
		goto out_unlock;
	/* The kernel's own copy, pinned, is written by reference: it stays. */
	if (type == PTE_COPIED && page_pinned(r, idx)) {
		err = EBUSY;
		goto out_unlock;
	}
	if (wp_window_open(pool, &win, addr, PAGE_SIZE)) {
		err = errno;
		goto out_unlock;
	}
	/*
	 * The program's view is the content, whatever backs it; reads are
	 * allowed. A zero-page mapping too: the program may have written it
	 * since the scanner last looked, and then it holds a page of its own.
	 * One that still reads zeros leaves the new frame a hole.
	 */
	if (type != PTE_ZERO || !zero_page(addr))
		memcpy(pfn_to_virt(pool, (unsigned long)f), addr, PAGE_SIZE);
	if (fault_map(pool, addr, PAGE_SIZE, (unsigned long)f, true)) {
		err = errno;
		wp_window_close(pool, &win);
		goto out_unlock;
	}
	page_make_private_owner(pool, (unsigned long)f, r, idx);
	atomic_store(&r->pte[idx], mk_pte(PTE_PRIVATE, (unsigned long)f, pte & PTE_MERGEABLE));
	if (type == PTE_KSM)
		drop_sharer(pool, pfn_to_page(pool, k)->owner, r->id, (uint32_t)idx);
	else if (type == PTE_ZERO)
		pool->ksm.zero_pages--;
	wp_window_close(pool, &win);
	if (type == PTE_KSM)
		frame_unlock(pool, k);
	move_end(pool);
	return 0;

out_unlock:
	if (type == PTE_KSM)
		frame_unlock(pool, k);
	move_end(pool);
	frames_free_run(pool, (unsigned long)f, 1);
	errno = err;
	return -1;
}

int ksm_unshare(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	return unshare_page(pool, r, idx, false);
}

/* Frames an unmerge of these pages needs: all but one per KSM frame left empty. */
static long unmerge_need(struct sp_pool *pool, struct sp_region *r, unsigned long first,
			 unsigned long nr, uint32_t *seen)
{
	long need = 0;

	for (unsigned long i = first; i < first + nr; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);

		if (pte_type(pte) == PTE_ZERO) {
			need++;
		} else if (pte_type(pte) == PTE_KSM ||
			   (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP) &&
			    !pool->ksm.stable.nodes[pte_val(pte)].swapped)) {
			/* (A sharer waiting for its touch to map a resident frame counts too.) */
			uint32_t sid = pte_type(pte) == PTE_KSM ?
					       pfn_to_page(pool, pte_val(pte))->owner :
					       (uint32_t)pte_val(pte);

			const struct stable_node *s = &pool->ksm.stable.nodes[sid];

			/* The last of a frame's sharers to leave takes the frame, if its policy lets it. */
			need += ++seen[sid] < s->nr ||
				policy_misplaced(r, i, frame_node(pool, s->kpfn));
		}
	}
	return need;
}

static int unmerge_pages(struct sp_pool *pool, struct sp_region *r, unsigned long first,
			 unsigned long nr)
{
	for (unsigned long i = first; i < first + nr; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);
		enum sp_pte_type t = pte_type(pte);

		/* Copied pages are private memory already. */
		if (t != PTE_KSM && t != PTE_ZERO && !(t == PTE_SWAP && (pte & PTE_KSMSWAP)))
			continue;
		for (int tries = 0; unshare_page(pool, r, i, true); tries++) {
			if (errno != EAGAIN || tries > 100)
				return -1;
			sched_yield();
		}
	}
	return 0;
}

int ksm_unmerge_range(struct sp_pool *pool, struct sp_region *r, unsigned long first,
		      unsigned long nr)
{
	uint32_t *seen = calloc(pool->ksm.stable.nr_ids + 1, sizeof(*seen));
	long need, free_frames;
	int ret;

	if (!seen)
		return -1;
	need = unmerge_need(pool, r, first, nr, seen);
	free(seen);
	sp_stat(pool, "frames_free", &free_frames);
	if (need > free_frames) {
		errno = ENOMEM;
		return -1;
	}
	ret = unmerge_pages(pool, r, first, nr);
	/* As after MADV_UNMERGEABLE: the pages are KSM's no more (a domain change re-tracks them). */
	if (!ret)
		items_drop(&pool->ksm, r, first, nr);
	flush_freed(pool);
	update_counters(pool);
	return ret;
}

/*
 * run=2 done: the kernel's unmerge_and_remove_all_rmap_items frees every
 * rmap_item and resets the scan, full_scans included. The next scan starts
 * a pass with nothing known.
 */
static void ksm_forget_all(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;

	for (unsigned i = 0; i < pool->rt.nr; i++) {
		struct sp_region *r = pool->rt.sorted[i];

		if (!r->items)
			continue;
		items_drop(ksm, r, 0, r->npages);
		free(r->items);
		r->items = NULL;
		ksm->items_bytes -= r->npages * sizeof(*r->items);
	}
	unstable_reset(&ksm->unstable, 0);
	ksm->cursor = 0;
	ksm->pass_pages = 0;
	atomic_store(&ksm->counter[KSM_FULL_SCANS], 0);
}

int ksm_unmerge_all(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;
	uint32_t *seen;
	long need = 0, free_frames;
	int ret = 0;

	mutex_lock(&ksm->mutex);
	rwlock_rdlock(&pool->rt.lock);
	seen = calloc(ksm->stable.nr_ids + 1, sizeof(*seen));
	if (!seen) {
		ret = -1;
		goto out_unlock;
	}
	for (unsigned i = 0; i < pool->rt.nr; i++) {
		struct sp_region *r = pool->rt.sorted[i];

		need += unmerge_need(pool, r, 0, r->npages, seen);
	}
	free(seen);
	sp_stat(pool, "frames_free", &free_frames);
	if (need > free_frames) {
		errno = ENOMEM;
		ret = -1;
		goto out_unlock;
	}
	for (unsigned i = 0; i < pool->rt.nr && !ret; i++)
		ret = unmerge_pages(pool, pool->rt.sorted[i], 0, pool->rt.sorted[i]->npages);
	/* Under the KSM mutex: every scan step checks run under it, so none merges after this. */
	if (!ret) {
		ksm_forget_all(pool);
		atomic_store(&ksm->knob[KSM_RUN], 2);
	}
out_unlock:
	flush_freed(pool);
	update_counters(pool);
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&ksm->mutex);
	return ret;
}

void ksm_region_release(struct sp_pool *pool, struct sp_region *r)
{
	if (!r->items)
		return;
	for (unsigned long i = 0; i < r->npages; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);
		unsigned long k = pte_val(pte);

		if (pte_type(pte) == PTE_ZERO)
			pool->ksm.zero_pages--;
		if (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP)) {
			drop_sharer(pool, (uint32_t)k, r->id, (uint32_t)i);
			atomic_store(&r->pte[i], mk_pte(PTE_NONE, 0, 0));
			continue;
		}
		if (pte_type(pte) != PTE_KSM)
			continue;
		frame_lock(pool, k);
		drop_sharer(pool, pfn_to_page(pool, k)->owner, r->id, (uint32_t)i);
		frame_unlock(pool, k);
		atomic_store(&r->pte[i], mk_pte(PTE_NONE, 0, 0));
	}
	if (r->items) {
		items_drop(&pool->ksm, r, 0, r->npages); /* its tracking goes with it */
		pool->ksm.items_bytes -= r->npages * sizeof(*r->items);
	}
	flush_freed(pool);
	update_counters(pool);
}

/* ---- swap: a KSM frame out as one slot, back for all its sharers ------- */

/*
 * Sharer i of node sid leaves frame k for the node's slot: its page is moved
 * to missing mode under a window, unless the kernel has copied it (or the
 * program unmapped it): then it leaves the node instead. 1 moved, 0 left,
 * -1 error (the page is as it was).
 */
static int sharer_out(struct sp_pool *pool, uint32_t sid, uint32_t i, unsigned long k)
{
	struct ksm_rmap m = pool->ksm.stable.nodes[sid].rmap[i];
	struct sp_region *w = region_by_id(pool, m.rid);
	uint64_t pte = atomic_load(&w->pte[m.idx]), pm;
	char *addr = page_addr(w, m.idx);
	struct sp_window win;

	if (!(pte & PTE_LOST) && wp_window_open(pool, &win, addr, PAGE_SIZE)) {
		if (!region_mark_lost(pool, w, m.idx, 1))
			return -1;
		pte |= PTE_LOST;
	}
	if (pte & PTE_LOST) {
		atomic_store(&w->pte[m.idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
		stable_remove_rmap(&pool->ksm.stable, sid, m.rid, m.idx);
		pool->ksm.sharers--;
		return 0;
	}
	/* Protected first, so that no copy-on-write can complete after the look. */
	if (fault_pagemap(pool, addr, 1, &pm)) {
		wp_window_close(pool, &win);
		return -1;
	}
	if (pm_copied(pm)) {
		atomic_store(&w->pte[m.idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE));
		ksm_sharer_copied(pool, sid, m.rid, m.idx);
		wp_window_close(pool, &win);
		return 0;
	}
	if (fault_remap_missing(pool, addr, PAGE_SIZE)) {
		int err = errno;

		fault_restore(pool, addr, PAGE_SIZE, k, false, "a KSM sharer");
		wp_window_close(pool, &win);
		errno = err;
		return -1;
	}
	atomic_store(&w->pte[m.idx], mk_pte(PTE_SWAP, sid, PTE_KSMSWAP | (pte & PTE_MERGEABLE)));
	wp_window_close(pool, &win);
	return 1;
}

/*
 * Sharer i of node sid maps frame k (again): a missing-mode page nobody can
 * be in but the worker, which waits on the KSM mutex we hold; no window.
 */
static int sharer_in(struct sp_pool *pool, uint32_t sid, uint32_t i, unsigned long k)
{
	struct ksm_rmap m = pool->ksm.stable.nodes[sid].rmap[i];
	struct sp_region *w = region_by_id(pool, m.rid);
	uint64_t pte = atomic_load(&w->pte[m.idx]);

	if (pte & PTE_LOST) { /* the program unmapped it: nothing to map there */
		atomic_store(&w->pte[m.idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE) | PTE_LOST);
		stable_remove_rmap(&pool->ksm.stable, sid, m.rid, m.idx);
		pool->ksm.sharers--;
		return 0;
	}
	/* Asked again while it fails: else it waits, in missing mode, for its next touch. */
	if (fault_restore(pool, page_addr(w, m.idx), PAGE_SIZE, k, false, "a KSM sharer"))
		return -1;
	atomic_store(&w->pte[m.idx], mk_pte(PTE_KSM, k, pte & PTE_MERGEABLE));
	return 0;
}

/* Every sharer in place to move: regions alive, page tables pointing at k. */
static bool sharers_at(struct sp_pool *pool, uint32_t sid, uint64_t want)
{
	const struct stable_node *s = &pool->ksm.stable.nodes[sid];

	for (uint32_t i = 0; i < s->nr; i++) {
		struct sp_region *w = region_by_id(pool, s->rmap[i].rid);
		uint64_t pte = w ? atomic_load(&w->pte[s->rmap[i].idx]) : 0;

		/* (A region without an id is being freed: its release needs the node as is.) */
		if (!w || (pte & ~(PTE_MERGEABLE | PTE_LOST)) != want)
			return false;
	}
	return true;
}

/*
 * KSM frame k out to one slot for all its sharers, and the frame freed: each
 * sharer's page goes to missing mode and points at the node (PTE_SWAP with
 * PTE_KSMSWAP, the node's id), which keeps the slot. try: the frame lock is
 * only tried (reclaim). 1 done, 0 nothing to do, -1 error with nothing
 * changed. KSM mutex and rt.lock (read) held.
 */
int ksm_swap_out(struct sp_pool *pool, unsigned long k, bool try)
{
	struct stable_tree *t = &pool->ksm.stable;
	uint32_t sid, i;
	long slot;
	int ret = 0, err = 0;

	if (try ? !frame_trylock(pool, k) : (frame_lock(pool, k), false))
		return 0;
	sid = pfn_to_page(pool, k)->owner;
	if (sid >= t->nr_ids || !t->nodes[sid].live || t->nodes[sid].swapped ||
	    t->nodes[sid].kpfn != k || !sharers_at(pool, sid, mk_pte(PTE_KSM, k, 0)))
		goto out_unlock;
	slot = swap_write(pool, pfn_to_virt(pool, k));
	if (slot < 0) {
		err = errno;
		ret = -1;
		goto out_unlock;
	}
	/* From the end: a sharer that leaves takes the last one's place, done already. */
	for (i = t->nodes[sid].nr; i--;) {
		if (sharer_out(pool, sid, i, k) >= 0)
			continue;
		err = errno; /* the putting back opens windows of its own */
		/* Back onto k; one that cannot be mapped now is at its next touch (ksm_fault). */
		while (++i < t->nodes[sid].nr)
			if (sharer_in(pool, sid, i, k))
				sp_log(SP_LOG_ERR, "a sharer of frame %lu waits for its next touch",
				       k);
		swap_slot_free(pool, (unsigned long)slot);
		ksm_settle(pool, sid); /* sharers may have left meanwhile */
		ret = -1;
		goto out_unlock;
	}
	t->nodes[sid].kpfn = KPFN_NONE;
	t->nodes[sid].slot = (uint32_t)slot;
	t->nodes[sid].swapped = true;
	atomic_fetch_and(&pfn_to_page(pool, k)->flags, ~(uint32_t)PG_ksm);
	ksm_settle(pool, sid); /* every sharer may have been copied meanwhile */
	defer_free(pool, k);
	ret = 1;
out_unlock:
	frame_unlock(pool, k);
	if (ret) {
		flush_freed(pool);
		update_counters(pool);
	}
	if (ret < 0)
		errno = err;
	return ret;
}

/*
 * Node sid's slot back into a new frame (on the node's NUMA node when it has
 * one), mapped by all its sharers: one read for all, and the node re-keyed
 * to the new frame. A sharer that cannot be mapped now (no mapping left
 * under vm.max_map_count) stays in missing mode and is mapped at its next
 * touch (ksm_fault): the node is resident from here on either way, so no
 * page is left pointing at a freed slot or frame. 0, -1 damaged slot (each
 * sharer gets SIGBUS at its own touch), -2 no memory now. KSM mutex and
 * rt.lock (read) held.
 */
static int ksm_swap_in(struct sp_pool *pool, uint32_t sid)
{
	struct stable_node *s = &pool->ksm.stable.nodes[sid];
	uint64_t buf[PAGE_SIZE / 8];
	unsigned failed = 0;
	uint32_t i;
	long k;

	if (swap_read(pool, s->slot, buf))
		return -1;
	k = frame_alloc_page(pool, NODES_ALL, s->node); /* its node first, reclaiming if need be */
	if (k < 0)
		return -2;
	if (os_memfd_fill(pool->memfd, (off_t)((unsigned long)k << PAGE_SHIFT), buf, PAGE_SIZE)) {
		frames_free_run(pool, (unsigned long)k, 1);
		return -2;
	}
	frame_lock(pool, (unsigned long)k);
	atomic_fetch_or(&pfn_to_page(pool, (unsigned long)k)->flags, PG_ksm);
	pfn_to_page(pool, (unsigned long)k)->owner = sid;
	pfn_to_page(pool, (unsigned long)k)->mapcount = s->nr;
	swap_slot_free(pool, s->slot);
	s->swapped = false;
	s->kpfn = (uint32_t)k;
	for (i = s->nr; i--;) /* from the end: one that leaves takes a done one's place */
		failed += sharer_in(pool, sid, i, (unsigned long)k) != 0;
	if (failed)
		sp_log(SP_LOG_ERR, "%u sharers of a KSM frame are mapped at their next touch",
		       failed);
	ksm_settle(pool, sid); /* sharers the program unmapped have left */
	frame_unlock(pool, (unsigned long)k);
	flush_freed(pool);
	update_counters(pool);
	atomic_fetch_add(&pool->faults_swapin, 1);
	return 0;
}

/*
 * Page idx of r is a sharer of node sid, resident, but in missing mode (its
 * mapping failed when the node came back): map it. 0, or -2 (not now).
 */
static int sharer_map_one(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			  uint32_t sid)
{
	struct stable_node *s = &pool->ksm.stable.nodes[sid];
	unsigned long k = s->kpfn;
	int ret = -2;

	frame_lock(pool, k);
	for (uint32_t i = 0; i < s->nr && s->kpfn == k; i++)
		if (s->rmap[i].rid == r->id && s->rmap[i].idx == idx) {
			ret = sharer_in(pool, sid, i, k) ? -2 : 0;
			break;
		}
	frame_unlock(pool, k);
	return ret;
}

/*
 * The reclaim clock at page idx of r, a sharer of a KSM frame: the frame is
 * looked at once a turn, from its first sharer. Referenced (some sharer maps
 * it: the pagemap says present, and not copied): every present sharer's
 * access is taken away, under a window so that no copy-on-write can happen
 * in between (MADV_DONTNEED would drop a copy). Else, or forced, it goes to
 * swap. Frames freed (0 or 1). rt.lock (read) and reclaim.lock held: the KSM
 * mutex and the frame lock are only tried.
 */
long ksm_reclaim(struct sp_pool *pool, struct sp_region *r, unsigned long idx, bool force)
{
	struct stable_tree *t = &pool->ksm.stable;
	uint64_t pte = atomic_load(&r->pte[idx]);
	unsigned long k = pte_val(pte);
	bool hot = false;
	long freed = 0;
	uint32_t sid;

	if (!mutex_trylock(&pool->ksm.mutex))
		return 0;
	/* Under the KSM mutex, a KSM frame's owner and sharers stay as they are. */
	sid = pfn_to_page(pool, k)->owner;
	if (atomic_load(&r->pte[idx]) != pte || sid >= t->nr_ids || !t->nodes[sid].live ||
	    t->nodes[sid].kpfn != k || t->nodes[sid].rmap[0].rid != r->id ||
	    t->nodes[sid].rmap[0].idx != idx)
		goto out_unlock;
	for (uint32_t i = 0; i < t->nodes[sid].nr && !force; i++) {
		struct ksm_rmap m = t->nodes[sid].rmap[i];
		struct sp_region *w = region_by_id(pool, m.rid);
		char *addr = page_addr(w, m.idx);
		struct sp_window win;
		uint64_t pm;

		/* Not known: hot, as a page that stays is never wrong. */
		if (!fault_pagemap(pool, addr, 1, &pm) &&
		    (!pm_present(pm) || pm_copied(pm) || (atomic_load(&w->pte[m.idx]) & PTE_LOST)))
			continue;
		hot = true;
		if (wp_window_open(pool, &win, addr, PAGE_SIZE))
			continue;
		/* Dropped only when surely not the program's own copy. */
		if (!fault_pagemap(pool, addr, 1, &pm) && !pm_copied(pm))
			os_dontneed(addr, PAGE_SIZE);
		wp_window_close(pool, &win);
	}
	if (!hot)
		freed = ksm_swap_out(pool, k, true) > 0;
out_unlock:
	mutex_unlock(&pool->ksm.mutex);
	return freed;
}

/* The swap-in worker met a swapped KSM page at addr: as swap_fault returns. */
int ksm_fault(struct sp_pool *pool, uintptr_t addr)
{
	struct stable_tree *t = &pool->ksm.stable;
	struct sp_region *r;
	uint64_t pte = 0;
	int ret = KSM_FAULT_AGAIN;

	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	r = region_find(pool, (void *)addr);
	if (r)
		pte = atomic_load(&r->pte[region_index(r, (void *)addr)]);
	/* Still a sharer in swap: then nobody else can be changing its node. */
	if (r && pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP)) {
		uint32_t sid = (uint32_t)pte_val(pte);

		if (sid >= t->nr_ids || !t->nodes[sid].live) {
			sp_log(SP_LOG_ERR, "the page at %p names no KSM frame", (void *)addr);
			ret = -2;
		} else if (t->nodes[sid].swapped) {
			ret = ksm_swap_in(pool, sid);
		} else {
			ret = sharer_map_one(pool, r, region_index(r, (void *)addr), sid);
		}
	}
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&pool->ksm.mutex);
	return ret;
}

/* ---- the scan: planning merges ---------------------------------------- */

enum plan_kind { PLAN_NONE, PLAN_STABLE, PLAN_PROMOTE, PLAN_JOIN, PLAN_ZERO };

/*
 * What to do with page v: map it onto an existing KSM frame (STABLE), make
 * an unstable candidate's frame a KSM frame and map both onto it (PROMOTE),
 * join a frame promoted earlier in the same run (JOIN), or map the zero page.
 */
struct plan {
	enum plan_kind kind;
	unsigned long idx; /* v's index in the run's region */
	unsigned long a; /* v's frame */
	uint32_t hash, domain;
	int node;
	unsigned long target; /* the frame v will map (not for ZERO) */
	uint32_t sid; /* STABLE, and PROMOTE once its node exists */
	struct sp_region *ur; /* PROMOTE: the candidate page */
	unsigned long uidx;
	int lead; /* JOIN: the PROMOTE entry it joins */
	bool ok; /* locked, checked and verified */
	bool u_mapped; /* PROMOTE: the candidate now maps its frame as a KSM frame */
	bool mapped; /* v now maps its target */
};

/*
 * Pages of one region close together, merged under one window. Pages in
 * between that are not merging are protected and released with them: they
 * wait at most for the run, and every window call is paid once per run.
 */
struct run {
	struct sp_region *r;
	int n;
	struct plan e[RUN_MAX];
	unsigned long locked[3 * RUN_MAX];
	int nr_locked;
	struct sp_window win[RUN_MAX + 1];
	int nr_win;
};

static int run_count(const struct run *run, enum plan_kind kind, uint32_t sid, int lead)
{
	int n = 0;

	for (int j = 0; j < run->n; j++)
		n += run->e[j].kind == kind &&
		     (kind == PLAN_STABLE ? run->e[j].sid == sid : run->e[j].lead == lead);
	return n;
}

/* Is page j of ur already part of this run, as a page or as a candidate? */
static bool run_has(const struct run *run, const struct sp_region *ur, unsigned long j)
{
	for (int k = 0; k < run->n; k++) {
		const struct plan *e = &run->e[k];

		if ((ur == run->r && e->idx == j) ||
		    (e->kind == PLAN_PROMOTE && e->ur == ur && e->uidx == j))
			return true;
	}
	return false;
}

static bool plan_stable(struct sp_pool *pool, struct run *run, struct plan *p)
{
	struct stable_tree *t = &pool->ksm.stable;
	long max = knob(pool, KSM_MAX_PAGE_SHARING);

	for (uint32_t id = stable_first(t, p->hash); id != STABLE_NONE; id = t->nodes[id].next) {
		struct stable_node *s = &t->nodes[id];

		if (s->swapped || s->hash != p->hash || s->domain != p->domain ||
		    s->node != p->node || s->kpfn == p->a ||
		    s->nr + run_count(run, PLAN_STABLE, id, 0) >= max)
			continue;
		p->kind = PLAN_STABLE;
		p->sid = id;
		p->target = s->kpfn;
		return true;
	}
	return false;
}

static bool plan_join(struct sp_pool *pool, struct run *run, struct plan *p)
{
	long max = knob(pool, KSM_MAX_PAGE_SHARING);

	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];

		if (e->kind != PLAN_PROMOTE || e->hash != p->hash || e->domain != p->domain ||
		    e->node != p->node || run_count(run, PLAN_JOIN, 0, j) + 2 >= max)
			continue;
		p->kind = PLAN_JOIN;
		p->lead = j;
		p->target = e->target;
		return true;
	}
	return false;
}

static bool plan_unstable(struct sp_pool *pool, struct run *run, struct plan *p)
{
	size_t pos = 0;
	uint64_t ref;

	while ((ref = unstable_next(&pool->ksm.unstable, p->hash, &pos))) {
		struct sp_region *ur = region_by_id(pool, (uint32_t)(ref >> 32) - 1);
		unsigned long j = (uint32_t)ref, b;
		uint64_t upte;

		/* Left over from before its page's latest visit, merge or untracking: stale. */
		if (!ur || j >= ur->npages || !ur->items || ur->items[j].hash != p->hash ||
		    !(ur->items[j].flags & ITEM_UNSTABLE))
			continue;
		upte = atomic_load(&ur->pte[j]);
		b = pte_val(upte);
		if (pte_type(upte) != PTE_PRIVATE || !(upte & PTE_MERGEABLE) || b == p->a ||
		    region_domain(ur, j) != p->domain || key_node(pool, b) != p->node ||
		    run_has(run, ur, j))
			continue;
		p->kind = PLAN_PROMOTE;
		p->ur = ur;
		p->uidx = j;
		p->target = b;
		return true;
	}
	return false;
}

/*
 * Look v up: zero page, stable index, this run's new frames, unstable index.
 * A checksum match is enough to plan; the full compare is done once, under
 * the window (run_verify), and a collision only costs that compare.
 */
static struct plan plan_page(struct sp_pool *pool, struct run *run, unsigned long idx,
			     unsigned long a, uint32_t hash)
{
	struct plan p = { .kind = PLAN_NONE,
			  .idx = idx,
			  .a = a,
			  .hash = hash,
			  .domain = region_domain(run->r, idx),
			  .node = key_node(pool, a) };

	if (knob(pool, KSM_USE_ZERO_PAGES) && hash == pool->ksm.zero_hash &&
	    zero_page(pfn_to_virt(pool, a))) {
		p.kind = PLAN_ZERO;
		return p;
	}
	if (!plan_stable(pool, run, &p) && !plan_join(pool, run, &p))
		plan_unstable(pool, run, &p);
	return p;
}

/* ---- the scan: carrying a run out ------------------------------------- */

static bool run_trylock(struct sp_pool *pool, struct run *run, unsigned long pfn)
{
	for (int i = 0; i < run->nr_locked; i++)
		if (run->locked[i] == pfn)
			return true;
	if (!frame_trylock(pool, pfn))
		return false;
	run->locked[run->nr_locked++] = pfn;
	return true;
}

/* Lock what each entry touches and check that nothing changed since planning. */
static void run_lock(struct sp_pool *pool, struct run *run)
{
	struct stable_tree *t = &pool->ksm.stable;

	move_begin(pool); /* pins are read under the frame locks, after this (gup.c) */
	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];

		e->ok = run_trylock(pool, run, e->a) &&
			atomic_load(&run->r->pte[e->idx]) ==
				mk_pte(PTE_PRIVATE, e->a, PTE_MERGEABLE) &&
			!page_pinned(run->r, e->idx);
		/* A node swapped out meanwhile has kpfn KPFN_NONE. */
		if (e->ok && e->kind == PLAN_STABLE)
			e->ok = run_trylock(pool, run, e->target) && t->nodes[e->sid].live &&
				t->nodes[e->sid].kpfn == e->target;
		else if (e->ok && e->kind == PLAN_PROMOTE)
			e->ok = run_trylock(pool, run, e->target) &&
				atomic_load(&e->ur->pte[e->uidx]) ==
					mk_pte(PTE_PRIVATE, e->target, PTE_MERGEABLE) &&
				!page_pinned(e->ur, e->uidx);
	}
}

static void run_unlock(struct sp_pool *pool, struct run *run)
{
	for (int i = 0; i < run->nr_locked; i++)
		frame_unlock(pool, run->locked[i]);
	run->nr_locked = 0;
	move_end(pool);
}

/* The last of the PROMOTE entries from j whose candidates are consecutive. */
static int candidate_stretch(const struct run *run, int j)
{
	int k = j;

	while (k + 1 < run->n && run->e[k + 1].kind == PLAN_PROMOTE && run->e[k + 1].ok &&
	       run->e[k + 1].ur == run->e[j].ur && run->e[k + 1].uidx == run->e[k].uidx + 1 &&
	       run->e[k + 1].target == run->e[k].target + 1)
		k++;
	return k;
}

/* One window over the run's pages, one per stretch of consecutive candidates. */
static void run_protect(struct sp_pool *pool, struct run *run)
{
	struct plan *first = &run->e[0], *last = &run->e[run->n - 1];

	run->nr_win = 0;
	if (wp_window_open(pool, &run->win[0], page_addr(run->r, first->idx),
			   (last->idx - first->idx + 1) << PAGE_SHIFT)) {
		region_mark_lost(pool, run->r, first->idx, last->idx - first->idx + 1);
		for (int j = 0; j < run->n; j++)
			run->e[j].ok = false;
		return;
	}
	run->nr_win = 1;
	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];
		int k;

		if (e->kind != PLAN_PROMOTE || !e->ok)
			continue;
		k = candidate_stretch(run, j);
		if (wp_window_open(pool, &run->win[run->nr_win], page_addr(e->ur, e->uidx),
				   (unsigned long)(k - j + 1) << PAGE_SHIFT)) {
			region_mark_lost(pool, e->ur, e->uidx, (unsigned long)(k - j + 1));
			for (int i = j; i <= k; i++)
				run->e[i].ok = false;
		} else {
			run->nr_win++;
		}
		j = k;
	}
}

/*
 * Compare under the windows: this is the check that makes a merge safe.
 * Then make every stable node and rmap slot the run needs, so that nothing
 * can fail once pages are remapped.
 */
static void run_verify(struct sp_pool *pool, struct run *run)
{
	struct stable_tree *t = &pool->ksm.stable;

	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];

		if (e->ok)
			e->ok = e->kind == PLAN_ZERO ? zero_page(pfn_to_virt(pool, e->a)) :
						       same_page(pool, e->a, e->target);
		if (!e->ok || e->kind == PLAN_JOIN || e->kind == PLAN_ZERO)
			continue;
		if (e->kind == PLAN_PROMOTE) {
			e->sid = stable_new(t, e->hash, (uint32_t)e->target, e->domain, e->node);
			if (e->sid == STABLE_NONE) {
				e->ok = false;
				continue;
			}
		}
		if (stable_reserve(t, e->sid, 2 + (uint32_t)run->n))
			e->ok = false;
	}
}

/* May v of entry e be mapped onto its target now? */
static bool v_ready(const struct run *run, const struct plan *e)
{
	if (!e->ok)
		return false;
	if (e->kind == PLAN_PROMOTE)
		return e->u_mapped;
	if (e->kind == PLAN_JOIN)
		return run->e[e->lead].u_mapped;
	return true;
}

static bool v_stretch_continues(const struct run *run, const struct plan *e, const struct plan *n)
{
	if (!v_ready(run, n) || n->idx != e->idx + 1 ||
	    (n->kind == PLAN_ZERO) != (e->kind == PLAN_ZERO))
		return false;
	return e->kind == PLAN_ZERO || n->target == e->target + 1;
}

static int map_v(struct sp_pool *pool, struct run *run, int j, int k)
{
	struct plan *e = &run->e[j];
	size_t len = (size_t)(k - j + 1) << PAGE_SHIFT;

	if (e->kind == PLAN_ZERO)
		return fault_remap_zero(pool, page_addr(run->r, e->idx), len);
	return fault_remap(pool, page_addr(run->r, e->idx), len, e->target, false);
}

/* A failed remap: map the page's own frame back; it still holds the page. */
static void map_back(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
		     unsigned long pfn)
{
	fault_restore(pool, page_addr(r, idx), PAGE_SIZE, pfn, true, "a page after a failed merge");
}

/* Candidates first (each maps its own frame, now a KSM frame), then the run. */
static void run_remap(struct sp_pool *pool, struct run *run)
{
	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];
		int k;

		if (e->kind != PLAN_PROMOTE || !e->ok)
			continue;
		k = candidate_stretch(run, j);
		if (fault_remap(pool, page_addr(e->ur, e->uidx), (size_t)(k - j + 1) << PAGE_SHIFT,
				e->target, false)) {
			for (int i = j; i <= k; i++)
				map_back(pool, e->ur, run->e[i].uidx, run->e[i].target);
		} else {
			for (int i = j; i <= k; i++)
				run->e[i].u_mapped = true;
		}
		j = k;
	}
	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];
		int k = j;

		if (!v_ready(run, e))
			continue;
		while (k + 1 < run->n && v_stretch_continues(run, &run->e[k], &run->e[k + 1]))
			k++;
		if (map_v(pool, run, j, k)) {
			if (errno != ENOMEM)
				sp_log(SP_LOG_ERR, "merging %d pages at %p: %s", k - j + 1,
				       (void *)page_addr(run->r, e->idx), strerror(errno));
			for (int i = j; i <= k; i++)
				map_back(pool, run->r, run->e[i].idx, run->e[i].a);
		} else {
			for (int i = j; i <= k; i++)
				run->e[i].mapped = true;
		}
		j = k;
	}
}

static void add_sharer(struct sp_pool *pool, uint32_t sid, struct sp_region *r, unsigned long idx,
		       unsigned long k)
{
	struct ksm_item *it = &r->items[idx];

	stable_add_rmap(&pool->ksm.stable, sid, r->id, (uint32_t)idx); /* reserved */
	pool->ksm.sharers++;
	pfn_to_page(pool, k)->mapcount++;
	atomic_store(&r->pte[idx], mk_pte(PTE_KSM, k, PTE_MERGEABLE));
	/* Out of the unstable tree (a candidate), into the stable one. */
	item_unstable_leave(&pool->ksm, it);
	item_track(&pool->ksm, it);
	it->age = 0; /* not unique any more: smart_scan starts over */
}

static void run_commit(struct sp_pool *pool, struct run *run)
{
	struct stable_tree *t = &pool->ksm.stable;

	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];
		struct sp_page *kp;

		if (e->kind != PLAN_PROMOTE || e->sid == STABLE_NONE)
			continue;
		if (!e->u_mapped) {
			stable_delete(t, e->sid); /* the candidate kept its frame */
			continue;
		}
		kp = pfn_to_page(pool, e->target);
		atomic_fetch_or(&kp->flags, PG_ksm);
		kp->owner = e->sid;
		kp->mapcount = 0;
		add_sharer(pool, e->sid, e->ur, e->uidx, e->target);
	}
	for (int j = 0; j < run->n; j++) {
		struct plan *e = &run->e[j];

		if (!e->mapped)
			continue;
		if (e->kind == PLAN_ZERO) {
			struct ksm_item *it = &run->r->items[e->idx];

			atomic_store(&run->r->pte[e->idx], mk_pte(PTE_ZERO, 0, PTE_MERGEABLE));
			/* As in the kernel: the zero page is no anonymous page; ksm_zero_pages counts it. */
			item_untrack(&pool->ksm, it);
			pool->ksm.zero_pages++;
		} else {
			uint32_t sid = e->kind == PLAN_JOIN ? run->e[e->lead].sid : e->sid;

			add_sharer(pool, sid, run->r, e->idx, e->target);
		}
		defer_free(pool, e->a);
	}
}

/*
 * The run's own window spans pages that are not in the run: registering the
 * whole span would turn a swapped page's missing mode off (a registration
 * replaces the modes). Only what was remapped, in stretches.
 */
static int run_register(struct sp_pool *pool, struct run *run)
{
	for (int j = 0; j < run->n; j++) {
		int k = j;

		if (!run->e[j].mapped)
			continue;
		while (k + 1 < run->n && run->e[k + 1].mapped &&
		       run->e[k + 1].idx == run->e[k].idx + 1)
			k++;
		if (fault_register(pool, page_addr(run->r, run->e[j].idx),
				   (size_t)(k - j + 1) << PAGE_SHIFT))
			return -1;
		j = k;
	}
	return 0;
}

/* Does planned entry n continue the stretch of v mappings that e is in? */
static bool plan_v_continues(const struct plan *e, const struct plan *n)
{
	if (n->idx != e->idx + 1 || (n->kind == PLAN_ZERO) != (e->kind == PLAN_ZERO))
		return false;
	return e->kind == PLAN_ZERO || n->target == e->target + 1;
}

static bool plan_u_continues(const struct plan *e, const struct plan *n)
{
	return n->kind == PLAN_PROMOTE && e->kind == PLAN_PROMOTE && n->ur == e->ur &&
	       n->uidx == e->uidx + 1 && n->target == e->target + 1;
}

/*
 * The mappings a run may cost: each stretch it maps (its pages, and its
 * candidates) splits a vma at most in three. A run saves a frame per
 * entry: one that saves two or more per mapping it costs (pages of a copied
 * image, merged onto consecutive frames) may go further into the budget
 * than isolated merges, which cost about two mappings each.
 */
static bool run_budget(struct sp_pool *pool, struct run *run)
{
	long stretches = 0;

	for (int j = 0; j < run->n; j++) {
		stretches += !j || !plan_v_continues(&run->e[j - 1], &run->e[j]);
		stretches += run->e[j].kind == PLAN_PROMOTE &&
			     (!j || !plan_u_continues(&run->e[j - 1], &run->e[j]));
	}
	return maps_room(pool, 2 * stretches, run->n >= 4 * stretches, run->n);
}

static void run_flush(struct sp_pool *pool, struct run *run)
{
	if (!run->n)
		return;
	if (!run_budget(pool, run)) {
		run->n = 0; /* its pages are looked up again next visit */
		return;
	}
	for (int j = 0; j < run->n; j++) {
		run->e[j].mapped = run->e[j].u_mapped = false;
		if (run->e[j].kind == PLAN_PROMOTE)
			run->e[j].sid = STABLE_NONE;
	}
	run_lock(pool, run);
	run_protect(pool, run);
	run_verify(pool, run);
	run_remap(pool, run);
	run_commit(pool, run);
	/* One registration per window for every remap inside it. */
	for (int i = run->nr_win - 1; i >= 0; i--) {
		if (i ? fault_register(pool, run->win[i].addr, run->win[i].len) :
			run_register(pool, run))
			sp_log(SP_LOG_ERR, "registering %p+%zu: %s", run->win[i].addr,
			       run->win[i].len, strerror(errno));
		wp_window_close(pool, &run->win[i]);
	}
	run_unlock(pool, run);
	run->n = 0;
}

/* ---- the scan: chunks and passes -------------------------------------- */

/* Which frames hold memory: an untouched frame is a hole, and reading it would fill it. */
static void chunk_resident(struct sp_pool *pool, struct sp_region *r, unsigned long first,
			   unsigned long n, unsigned char *res)
{
	unsigned long lo = ~0ul, hi = 0;
	unsigned char vec[4 * CHUNK_PAGES];

	for (unsigned long i = 0; i < n; i++) {
		uint64_t pte = atomic_load(&r->pte[first + i]);

		res[i] = 0;
		if (pte_type(pte) != PTE_PRIVATE)
			continue;
		lo = pte_val(pte) < lo ? pte_val(pte) : lo;
		hi = pte_val(pte) > hi ? pte_val(pte) : hi;
	}
	if (lo > hi)
		return;
	if (hi - lo < sizeof(vec) &&
	    !os_mincore(pfn_to_virt(pool, lo), (hi - lo + 1) << PAGE_SHIFT, vec)) {
		for (unsigned long i = 0; i < n; i++) {
			uint64_t pte = atomic_load(&r->pte[first + i]);

			/* A migration may have moved it since: then it is not a candidate now. */
			if (pte_type(pte) == PTE_PRIVATE && pte_val(pte) >= lo &&
			    pte_val(pte) <= hi)
				res[i] = vec[pte_val(pte) - lo] & 1;
		}
		return;
	}
	for (unsigned long i = 0; i < n; i++) {
		uint64_t pte = atomic_load(&r->pte[first + i]);

		if (pte_type(pte) == PTE_PRIVATE &&
		    !os_mincore(pfn_to_virt(pool, pte_val(pte)), PAGE_SIZE, vec))
			res[i] = vec[0] & 1;
	}
}

/* The checksum of an unstable entry's page, kept in its ksm_item. */
static uint32_t ref_hash(void *ctx, uint64_t ref)
{
	struct sp_region *r = region_by_id(ctx, (uint32_t)(ref >> 32) - 1);
	uint32_t idx = (uint32_t)ref;

	return r && r->items && idx < r->npages ? r->items[idx].hash : 0;
}

/* Page idx of r into the unstable tree under checksum h (no room: not a candidate now). */
static void unstable_add(struct sp_pool *pool, struct sp_region *r, unsigned long idx, uint32_t h)
{
	struct sp_ksm *ksm = &pool->ksm;

	if (unstable_insert(&ksm->unstable, h, r->id, (uint32_t)idx) &&
	    (unstable_grow(&ksm->unstable, ref_hash, pool) ||
	     unstable_insert(&ksm->unstable, h, r->id, (uint32_t)idx)))
		return;
	r->items[idx].flags |= ITEM_UNSTABLE;
	ksm->unshared++;
}

/*
 * A private page whose frame is resident: 1 scanned, 0 skipped (smart_scan).
 *
 * Every visit may merge it: with a KSM frame (as the kernel), with a page
 * of the unstable tree, or put it there. The kernel first waits for its
 * checksum to stay unchanged from one visit to the next, which protects
 * its unstable tree from pages that churn and costs a full scan before
 * anything merges; here every merge is compared in full under the window,
 * so a page that changed since its insertion costs one failed compare.
 * Holding churning pages back, as this code once did, would let a merge
 * slip past the second full scan after a write (API.md's promise) whenever
 * the write lands just after the page's visit.
 */
static int scan_private(struct sp_pool *pool, struct run *run, unsigned long idx, unsigned long a)
{
	struct sp_ksm *ksm = &pool->ksm;
	struct ksm_item *it = &run->r->items[idx];
	unsigned long fs = (unsigned long)atomic_load(&ksm->counter[KSM_FULL_SCANS]);
	bool fresh = !(it->flags & ITEM_TRACKED);
	/*
	 * smart_scan: a page unique with the same checksum for three visits
	 * is not read on every other pass; its last checksum stands in. It is
	 * still looked up and stays in the unstable tree under that checksum
	 * (any match is compared in full): a twin that appeared before it in
	 * this pass, or comes after it, still finds it, so skipping never
	 * delays a merge past two scans.
	 */
	bool skip = !fresh && knob(pool, KSM_SMART_SCAN) && it->age >= 3 && ((fs + idx) & 1);
	uint32_t h = skip ? it->hash : page_hash(pfn_to_virt(pool, a));
	struct plan p;

	item_track(ksm, it);
	if (skip) {
		atomic_fetch_add(&ksm->counter[KSM_PAGES_SKIPPED], 1);
	} else {
		it->age = fresh || h != it->hash ? 0 : (uint8_t)(it->age < 255 ? it->age + 1 : 255);
		it->hash = h;
	}
	p = plan_page(pool, run, idx, a, h);
	if (run->n && p.kind != PLAN_NONE &&
	    (p.idx - run->e[0].idx >= RUN_SPAN || run->n == RUN_MAX)) {
		run_flush(pool, run);
		p = plan_page(pool, run, idx, a, h);
	}
	if (p.kind != PLAN_NONE)
		run->e[run->n++] = p;
	else
		unstable_add(pool, run->r, idx, h);
	return !skip;
}

/*
 * A page the kernel gave a page of its own (copied on write, or a written
 * zero page) comes back into a frame of the pool and is scanned as any
 * private page, in the same visit. 1 scanned, 0 skipped.
 */
static int bring_back(struct sp_pool *pool, struct run *run, unsigned long idx)
{
	struct sp_region *r = run->r;
	uint64_t pte;

	item_track(&pool->ksm, &r->items[idx]);
	if (unshare_page(pool, r, idx, false))
		return 1; /* no frame now: it stays the kernel's until the next visit */
	pte = atomic_load(&r->pte[idx]);
	/* A page of zeros stays a hole, and reading a hole would fill it: nothing to hash. */
	if (pte_type(pte) != PTE_PRIVATE || frame_is_hole(pool, pte_val(pte)))
		return 1;
	return scan_private(pool, run, idx, pte_val(pte));
}

/* A page that is not private: notice copies, bring copied pages back in. 1 scanned, 0 skipped. */
static int scan_other(struct sp_pool *pool, struct run *run, unsigned long idx, uint64_t pte,
		      uint64_t pm)
{
	struct sp_region *r = run->r;

	switch (pte_type(pte)) {
	case PTE_KSM:
		if (!pm_copied(pm))
			return 1; /* a sharer, in the stable tree */
		page_copied(pool, r, idx);
		if (pte_type(atomic_load(&r->pte[idx])) != PTE_COPIED)
			return 1; /* its frame was busy: noticed again next visit */
		return bring_back(pool, run, idx);
	case PTE_ZERO:
		if (!pm_written(pm))
			return 1; /* counted in ksm_zero_pages, tracked by no tree */
		atomic_store(&r->pte[idx], mk_pte(PTE_COPIED, 0, pte & PTE_MERGEABLE));
		atomic_fetch_add(&pool->faults_cow, 1);
		pool->ksm.zero_pages--;
		return bring_back(pool, run, idx);
	case PTE_COPIED:
		return bring_back(pool, run, idx);
	case PTE_SWAP:
		if (pte & PTE_KSMSWAP)
			return 1; /* a sharer, in swap */
		/* fall through */
	default:
		/* No page there (swapped out, no frame yet): the kernel frees its rmap_item. */
		item_untrack(&pool->ksm, &r->items[idx]);
		return 1;
	}
}

static bool pte_sharer(uint64_t pte)
{
	return pte_type(pte) == PTE_KSM || (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP));
}

/*
 * Scan up to budget mergeable pages of r from first (pages smart_scan skips
 * do not count); where it stopped in *next, mergeable pages visited in
 * *visited.
 */
static unsigned long scan_chunk(struct sp_pool *pool, struct sp_region *r, unsigned long first,
				unsigned long budget, unsigned long *next, unsigned long *visited)
{
	unsigned long n = r->npages - first < CHUNK_PAGES ? r->npages - first : CHUNK_PAGES;
	unsigned char res[CHUNK_PAGES];
	uint64_t pm[CHUNK_PAGES];
	struct run *run = calloc(1, sizeof(*run));
	unsigned long scanned = 0, i;
	bool have_pm = false;

	if (!run || !region_items(pool, r)) {
		free(run);
		*next = first + n; /* no memory for its metadata: not a candidate now */
		return 0;
	}
	run->r = r;
	chunk_resident(pool, r, first, n, res);
	for (i = first; i < first + n && scanned < budget; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);
		struct ksm_item *it = &r->items[i];

		if (!(pte & PTE_MERGEABLE))
			continue;
		/* Revisited: out of the previous pass's unstable tree, as in the kernel. */
		item_unstable_leave(&pool->ksm, it);
		if (pte & PTE_LOST) {
			/* Unmapped by the program: left alone (a sharer leaves when unmerged). */
			if (!pte_sharer(pte))
				item_untrack(&pool->ksm, it);
			continue;
		}
		(*visited)++;
		if (page_pinned(r, i))
			continue; /* as the kernel's KSM leaves a page with extra references */
		if (pte_type(pte) == PTE_PRIVATE) {
			if (res[i - first]) {
				scanned += (unsigned long)scan_private(pool, run, i, pte_val(pte));
			} else {
				item_untrack(&pool->ksm, it); /* never touched: nothing there yet */
				scanned++;
			}
			continue;
		}
		run_flush(pool, run);
		if (!have_pm && pte_type(pte) != PTE_COPIED) {
			os_pagemap_read(pool->pagemap, page_addr(r, first), n, pm);
			have_pm = true;
		}
		scanned +=
			(unsigned long)scan_other(pool, run, i, pte, have_pm ? pm[i - first] : 0);
	}
	run_flush(pool, run);
	free(run);
	*next = i;
	return scanned;
}

/* Candidates are the pages that are not merged: size the index for them, grow it if need be. */
static void pass_begin(struct sp_pool *pool)
{
	size_t pages = 0;

	for (unsigned i = 0; i < pool->rt.nr; i++)
		pages += pool->rt.sorted[i]->npages;
	pages -= (size_t)pool->ksm.sharers < pages ? (size_t)pool->ksm.sharers : pages;
	if (unstable_reset(&pool->ksm.unstable, pages))
		sp_log(SP_LOG_WARN, "no memory for the unstable index of %zu pages", pages);
	pool->ksm.pass_pages = 0;
}

/* ---- the scan-time advisor (the kernel's, 6.8) --------------------------- */

#define ADVISOR_MIN_CPU 10 /* percent: the kernel's KSM_ADVISOR_MIN_CPU */
#define EWMA_WEIGHT 30 /* percent of the newest change in the smoothed one */

static long long clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* KSM mutex held; by ksmd only: it is ksmd's CPU time that is measured. */
static void advisor_start_scan(struct sp_pool *pool, bool ksmd)
{
	struct ksm_advisor *a = &pool->ksm.advisor;

	a->start_ns = 0;
	if (!ksmd || knob(pool, KSM_ADVISOR_MODE) != KSM_ADVISOR_SCAN_TIME)
		return;
	a->start_ns = clock_ns(CLOCK_MONOTONIC);
	a->start_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/*
 * The kernel's scan_time_advisor, after a full scan: the next pages_to_scan
 * is the current one scaled by how far the scan's time was from the target,
 * times a smoothed factor of how the scan time changed from the last scan
 * (EWMA, starting from 0 as the kernel's does), then held between the
 * batches that would have cost ADVISOR_MIN_CPU and advisor_max_cpu percent
 * of a CPU in the scan just done, and at most advisor_max_pages_to_scan.
 * The kernel measures the scan time in whole seconds; here milliseconds,
 * so that scans shorter than a few seconds are judged too.
 */
static void scan_time_advisor(struct sp_pool *pool)
{
	struct ksm_advisor *a = &pool->ksm.advisor;
	unsigned long scan_ms, cpu_ms, cpu_percent, last, factor, change, per_page_cost, pages;
	unsigned long ptc = (unsigned long)knob(pool, KSM_PAGES_TO_SCAN);
	unsigned long target_ms = (unsigned long)knob(pool, KSM_ADVISOR_TARGET_SCAN_TIME) * 1000;

	scan_ms = (unsigned long)((clock_ns(CLOCK_MONOTONIC) - a->start_ns) / 1000000);
	scan_ms = scan_ms ? scan_ms : 1;
	cpu_ms = (unsigned long)((clock_ns(CLOCK_THREAD_CPUTIME_ID) - a->start_cpu_ns) / 1000000);
	cpu_percent = cpu_ms * 100 / scan_ms;
	cpu_percent = cpu_percent ? cpu_percent : 1;
	last = a->last_scan_ms ? (unsigned long)a->last_scan_ms : scan_ms;

	factor = target_ms * 100 / scan_ms;
	factor = factor ? factor : 1;
	change = scan_ms * 100 / last;
	change = change ? change : 1;
	change = ((100 - EWMA_WEIGHT) * (unsigned long)a->change + EWMA_WEIGHT * change) / 100;

	pages = ptc * 100 / factor;
	pages = pages * change / 100;
	per_page_cost = ptc / cpu_percent; /* pages per batch per percent of CPU */
	per_page_cost = per_page_cost ? per_page_cost : 1;
	if (pages > per_page_cost * (unsigned long)knob(pool, KSM_ADVISOR_MAX_CPU))
		pages = per_page_cost * (unsigned long)knob(pool, KSM_ADVISOR_MAX_CPU);
	if (pages < per_page_cost * ADVISOR_MIN_CPU)
		pages = per_page_cost * ADVISOR_MIN_CPU;
	if (pages > (unsigned long)knob(pool, KSM_ADVISOR_MAX_PAGES_TO_SCAN))
		pages = (unsigned long)knob(pool, KSM_ADVISOR_MAX_PAGES_TO_SCAN);

	a->change = (long)change;
	a->last_scan_ms = (long)scan_ms;
	atomic_store(&pool->ksm.knob[KSM_PAGES_TO_SCAN], (long)pages);
}

static void advisor_stop_scan(struct sp_pool *pool, bool ksmd)
{
	if (ksmd && pool->ksm.advisor.start_ns &&
	    knob(pool, KSM_ADVISOR_MODE) == KSM_ADVISOR_SCAN_TIME)
		scan_time_advisor(pool);
	pool->ksm.advisor.start_ns = 0;
}

/*
 * The kernel's set_advisor_defaults: back to the default pages_to_scan, or
 * a fresh advisor from advisor_min_pages_to_scan. The scan under way is not
 * judged (it began before).
 */
void ksm_advisor_reset(struct sp_pool *pool, long mode)
{
	struct sp_ksm *ksm = &pool->ksm;

	ksm->advisor = (struct ksm_advisor){ 0 };
	atomic_store(&ksm->knob[KSM_PAGES_TO_SCAN],
		     mode == KSM_ADVISOR_NONE ? ksm_knob_default(KSM_PAGES_TO_SCAN) :
						knob(pool, KSM_ADVISOR_MIN_PAGES_TO_SCAN));
}

#define SCAN_EMPTY (-1) /* a whole pass found nothing mergeable */
#define SCAN_STOPPED (-2) /* run says no: see scan_step */

/*
 * One chunk under the KSM mutex: mergeable pages scanned, or SCAN_EMPTY,
 * or SCAN_STOPPED when run forbids it: run=2 for everyone (nothing merges
 * between run=2 and run=1, not even through sp_ksm_scan), run=0 for ksmd.
 * run is read under the mutex, which run=2 holds while it unmerges: no
 * chunk that began before the unmerge can merge after it.
 */
static long scan_step(struct sp_pool *pool, unsigned long budget, bool ksmd)
{
	struct sp_ksm *ksm = &pool->ksm;
	unsigned long first = 0, next, got = 0, visited = 0;
	struct sp_region *r;
	long ret, run;

	mutex_lock(&ksm->mutex);
	run = knob(pool, KSM_RUN);
	if (run == 2 || (ksmd && run != 1)) {
		mutex_unlock(&ksm->mutex);
		return SCAN_STOPPED;
	}
	rwlock_rdlock(&pool->rt.lock);
	if (!ksm->cursor) {
		pass_begin(pool);
		advisor_start_scan(pool, ksmd);
	}
	r = region_next(pool, ksm->cursor);
	if (r) {
		if (ksm->cursor > (uintptr_t)r->start)
			first = (ksm->cursor - (uintptr_t)r->start) >> PAGE_SHIFT;
		got = scan_chunk(pool, r, first, budget, &next, &visited);
		ksm->cursor = (uintptr_t)page_addr(r, next);
		/* Skipped pages count here: a pass of them is not an empty one. */
		ksm->pass_pages += visited;
		ret = (long)got;
	} else {
		/* The end of a pass. */
		ret = ksm->pass_pages ? 0 : SCAN_EMPTY;
		if (ksm->pass_pages) {
			atomic_fetch_add(&ksm->counter[KSM_FULL_SCANS], 1);
			advisor_stop_scan(pool, ksmd);
		}
		ksm->cursor = 0;
		ksm->pass_pages = 0;
	}
	rwlock_unlock(&pool->rt.lock);
	flush_freed(pool);
	atomic_fetch_add(&ksm->counter[KSM_PAGES_SCANNED], (long)got);
	update_counters(pool);
	mutex_unlock(&ksm->mutex);
	return ret;
}

static long ksm_scan(struct sp_pool *pool, unsigned long nr, bool ksmd)
{
	unsigned long scanned = 0;

	while (scanned < nr) {
		long got = scan_step(pool, nr - scanned, ksmd);

		if (got < 0)
			break;
		scanned += (unsigned long)got;
	}
	return (long)scanned;
}

long sp_ksm_scan(sp_pool *pool, unsigned long nr_pages)
{
	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	return ksm_scan(pool, nr_pages, false);
}

/* ---- ksmd ------------------------------------------------------------- */

static void wait_ms(struct sp_ksm *ksm, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	cond_timedwait(&ksm->wait, &ksm->wait_lock, &ts);
}

static void *ksmd(void *arg)
{
	struct sp_pool *pool = arg;
	struct sp_ksm *ksm = &pool->ksm;

	mutex_lock(&ksm->wait_lock);
	while (!ksm->stop) {
		long scanned, ms;

		if (knob(pool, KSM_RUN) != 1) {
			cond_wait(&ksm->wait, &ksm->wait_lock);
			continue;
		}
		mutex_unlock(&ksm->wait_lock);
		scanned = ksm_scan(pool, (unsigned long)knob(pool, KSM_PAGES_TO_SCAN), true);
		ms = knob(pool, KSM_SLEEP_MILLISECS);
		mutex_lock(&ksm->wait_lock);
		if (ksm->stop)
			break;
		if (!scanned)
			ms = ms > 200 ? ms : 200; /* nothing mergeable: idle until kicked */
		if (ms)
			wait_ms(ksm, ms);
	}
	mutex_unlock(&ksm->wait_lock);
	return NULL;
}

void ksm_kick(struct sp_pool *pool)
{
	mutex_lock(&pool->ksm.wait_lock);
	pthread_cond_broadcast(&pool->ksm.wait);
	mutex_unlock(&pool->ksm.wait_lock);
}

int ksm_init(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;
	static const char zeros[SP_PAGE_SIZE];

	memset(ksm, 0, sizeof(*ksm));
	for (int i = 0; i < KSM_NR_KNOBS; i++)
		atomic_store(&ksm->knob[i], ksm_knob_default(i));
	ksm->zero_hash = page_hash(zeros);
	if (stable_init(&ksm->stable))
		return -1;
	mutex_init(&ksm->mutex, LOCK_KSM);
	mutex_init(&ksm->wait_lock, LOCK_KSM_WAIT);
	pthread_cond_init(&ksm->wait, NULL);
	return 0;
}

int ksm_start(struct sp_pool *pool)
{
	if (pool->flags & SP_POOL_NO_KSMD)
		return 0;
	errno = pthread_create(&pool->ksm.thread, NULL, ksmd, pool);
	if (errno)
		return -1;
	pthread_setname_np(pool->ksm.thread, "sp-ksmd"); /* for top(1) and benchmarks */
	pool->ksm.thread_started = true;
	return 0;
}

void ksm_stop(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;

	if (!ksm->thread_started)
		return;
	mutex_lock(&ksm->wait_lock);
	ksm->stop = true;
	pthread_cond_broadcast(&ksm->wait);
	mutex_unlock(&ksm->wait_lock);
	pthread_join(ksm->thread, NULL);
	ksm->thread_started = false;
}

void ksm_exit(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;

	ksm_stop(pool);
	stable_exit(&ksm->stable);
	unstable_exit(&ksm->unstable);
	free(ksm->freed);
	pthread_cond_destroy(&ksm->wait);
	mutex_destroy(&ksm->wait_lock);
	mutex_destroy(&ksm->mutex);
}

/* ---- memory hotplug (the seed) ----------------------------------------- */

/*
 * A stable node names its frame by pfn, so that one left pointing into a
 * section that went away can be found by range and dropped: nothing
 * dereferences the section's descriptors, which are gone.
 */
static void prune_range(struct sp_pool *pool, unsigned long start, unsigned long nr)
{
	struct stable_tree *t = &pool->ksm.stable;

	for (uint32_t id = 0; id < t->nr_ids; id++) {
		struct stable_node *s = &t->nodes[id];

		if (!s->live || s->kpfn < start || s->kpfn >= start + nr)
			continue;
		sp_log(SP_LOG_WARN, "pruning stable node %u: frame %u went offline with %u sharers",
		       id, s->kpfn, s->nr);
		pool->ksm.sharers -= s->nr;
		stable_delete(t, id);
	}
	update_counters(pool);
}

/*
 * No merge, unmerge or scan while a section goes offline: the mutex is held
 * from GOING_OFFLINE to OFFLINE or CANCEL_OFFLINE (the offline itself moves
 * KSM frames, under it). Writers are never held: only windows stop them.
 */
int ksm_memory_callback(sp_pool *pool, enum sp_mem_action action,
			const struct sp_memory_notify *arg, void *priv)
{
	(void)priv;
	switch (action) {
	case SP_MEM_GOING_OFFLINE:
		mutex_lock(&pool->ksm.mutex);
		break;
	case SP_MEM_OFFLINE:
		prune_range(pool, arg->start_pfn, arg->nr_pages);
		mutex_unlock(&pool->ksm.mutex);
		break;
	case SP_MEM_CANCEL_OFFLINE:
		mutex_unlock(&pool->ksm.mutex);
		break;
	default:
		break;
	}
	return 0;
}

/* ---- merge domains ---------------------------------------------------- */

int sp_set_merge_domain(sp_pool *pool, void *addr, size_t len, unsigned domain)
{
	unsigned long first, nr;
	struct sp_region *r;
	int ret = -1;

	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	if (!r)
		goto out_unlock;
	if (!r->domain && domain) {
		r->domain = calloc(r->npages, sizeof(*r->domain));
		if (!r->domain)
			goto out_unlock;
	}
	/* A page leaving its domain leaves the frames it shares there first. */
	for (unsigned long i = first; i < first + nr; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);

		/* Merged in swap too: its frame comes back shared. */
		if (region_domain(r, i) != domain &&
		    (pte_type(pte) == PTE_KSM || pte_type(pte) == PTE_ZERO ||
		     (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP)))) {
			if (ksm_unmerge_range(pool, r, first, nr))
				goto out_unlock;
			break;
		}
	}
	for (unsigned long i = first; r->domain && i < first + nr; i++)
		r->domain[i] = domain;
	ret = 0;
out_unlock:
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&pool->ksm.mutex);
	return ret;
}

/* ---- per-domain figures (the kernel's /proc/PID/ksm_stat) -------------- */

static const char *const domain_names[DOM_NR] = {
	[DOM_RMAP_ITEMS] = "ksm_rmap_items",
	[DOM_ZERO_PAGES] = "ksm_zero_pages",
	[DOM_MERGING_PAGES] = "ksm_merging_pages",
	[DOM_PROFIT] = "ksm_process_profit",
};

const char *sp_domain_stat_name(unsigned i)
{
	return i < DOM_NR ? domain_names[i] : NULL;
}

/* One page's part in its domain's figures; r->items is there. KSM mutex and rt.lock held. */
static void domain_count(const struct sp_region *r, unsigned long i, long v[DOM_NR])
{
	uint64_t pte = atomic_load(&r->pte[i]);

	if (r->items[i].flags & ITEM_TRACKED)
		v[DOM_RMAP_ITEMS]++;
	if (pte_type(pte) == PTE_ZERO)
		v[DOM_ZERO_PAGES]++;
	else if (pte_sharer(pte))
		v[DOM_MERGING_PAGES]++;
}

/*
 * The kernel's ksm_process_profit, with samepage's metadata in place of its
 * 64-byte ksm_rmap_item: a tracked page's ksm_item, and a merged page's
 * entry in its stable node's rmap (8 bytes each).
 */
static void domain_profit(long v[DOM_NR])
{
	v[DOM_PROFIT] = (v[DOM_MERGING_PAGES] + v[DOM_ZERO_PAGES]) * (long)PAGE_SIZE -
			v[DOM_RMAP_ITEMS] * (long)sizeof(struct ksm_item) -
			v[DOM_MERGING_PAGES] * (long)sizeof(struct ksm_rmap);
}

void ksm_domain_figures(struct sp_pool *pool, unsigned domain, long v[DOM_NR])
{
	memset(v, 0, sizeof(long) * DOM_NR);
	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	for (unsigned k = 0; k < pool->rt.nr; k++) {
		const struct sp_region *r = pool->rt.sorted[k];

		/* Never scanned: none of its pages is tracked or merged. */
		for (unsigned long i = 0; r->items && i < r->npages; i++)
			if (region_domain(r, i) == domain)
				domain_count(r, i, v);
	}
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&pool->ksm.mutex);
	domain_profit(v);
}

/* The entry of domain d in the ascending array, added if new; NULL: ENOMEM. */
static struct ksm_domain_fig *domain_slot(struct ksm_domain_fig **all, size_t *nr, size_t *cap,
					  unsigned d)
{
	size_t lo = 0, hi = *nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if ((*all)[mid].domain < d)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < *nr && (*all)[lo].domain == d)
		return &(*all)[lo];
	if (*nr == *cap) {
		size_t cap2 = *cap ? *cap * 2 : 8;
		struct ksm_domain_fig *p = realloc(*all, cap2 * sizeof(*p));

		if (!p)
			return NULL;
		*all = p;
		*cap = cap2;
	}
	memmove(&(*all)[lo + 1], &(*all)[lo], (*nr - lo) * sizeof(**all));
	(*nr)++;
	(*all)[lo] = (struct ksm_domain_fig){ .domain = d };
	return &(*all)[lo];
}

/* Every domain's figures in one walk; pages KSM has nothing of cost a compare. */
static int domain_walk(struct sp_pool *pool, struct ksm_domain_fig **all, size_t *nr)
{
	struct ksm_domain_fig *f = NULL;
	size_t cap = 0;

	for (unsigned k = 0; k < pool->rt.nr; k++) {
		const struct sp_region *r = pool->rt.sorted[k];

		for (unsigned long i = 0; r->items && i < r->npages; i++) {
			long v[DOM_NR] = { 0 };
			unsigned d = region_domain(r, i);

			domain_count(r, i, v);
			if (!v[DOM_RMAP_ITEMS] && !v[DOM_ZERO_PAGES] && !v[DOM_MERGING_PAGES])
				continue;
			if (!f || f->domain != d) {
				f = domain_slot(all, nr, &cap, d);
				if (!f)
					return -1;
			}
			for (int j = 0; j < DOM_PROFIT; j++)
				f->v[j] += v[j];
		}
	}
	return 0;
}

struct ksm_domain_fig *ksm_domain_all(struct sp_pool *pool, size_t *nr)
{
	struct ksm_domain_fig *all = NULL;
	int ret;

	*nr = 0;
	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	ret = domain_walk(pool, &all, nr);
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&pool->ksm.mutex);
	if (ret) {
		free(all);
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < *nr; i++)
		domain_profit(all[i].v);
	if (!all) /* none: still a valid, empty answer */
		all = malloc(sizeof(*all));
	return all;
}

int sp_domain_stat(sp_pool *pool, unsigned domain, const char *name, long *value)
{
	long v[DOM_NR];

	if (!pool || !name || !value) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < DOM_NR; i++) {
		if (strcmp(name, domain_names[i]))
			continue;
		ksm_domain_figures(pool, domain, v);
		*value = v[i];
		return 0;
	}
	errno = EINVAL;
	return -1;
}

long sp_domain_list(sp_pool *pool, unsigned *domains, size_t max)
{
	struct ksm_domain_fig *all;
	size_t nr;

	if (!pool || (max && !domains)) {
		errno = EINVAL;
		return -1;
	}
	all = ksm_domain_all(pool, &nr);
	if (!all)
		return -1;
	for (size_t i = 0; i < nr && i < max; i++)
		domains[i] = all[i].domain;
	free(all);
	return (long)nr;
}
