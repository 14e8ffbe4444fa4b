/* SPDX-License-Identifier: MIT */
/*
 * Migration: give a page a new frame while the program runs. The frame lock
 * of the old frame serialises it against merge, swap and other migrations of
 * the same frame; the write-protect window makes the copy atomic with
 * respect to the program's writers; the remap is the last step inside the
 * window, so a write either happened before the copy or lands in the new
 * frame. Lock order as in pool.c: rt.lock (read, held by the caller) ->
 * frame lock of the old frame -> pool lock (inside frame allocation).
 */
#include <errno.h>
#include <string.h>

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

int migrate_private_page(struct sp_pool *pool, struct sp_region *r, unsigned long idx, int node)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	void *addr = r->start + (idx << PAGE_SHIFT);
	unsigned long old = pte_val(pte);
	struct sp_window w;
	long new;
	int err;

	if (pte_type(pte) != PTE_PRIVATE)
		goto out_again;
	new = frame_alloc(pool, node);
	if (new < 0)
		return -1;
	frame_lock(pool, old);
	if (atomic_load(&r->pte[idx]) != pte)
		goto out_raced;
	if (wp_window_open(pool, &w, addr, PAGE_SIZE))
		goto out_unlock;
	/* A hole stays a hole: copying it would allocate two pages of zeros. */
	if (!frame_is_hole(pool, old))
		memcpy(pfn_to_virt(pool, (unsigned long)new), pfn_to_virt(pool, old), PAGE_SIZE);
	if (fault_map(pool, addr, PAGE_SIZE, (unsigned long)new, true)) {
		err = errno;
		wp_window_close(pool, &w);
		errno = err;
		goto out_unlock;
	}
	frame_take_owner(pool, (unsigned long)new, r, idx);
	atomic_store(&r->pte[idx], mk_pte(PTE_PRIVATE, (unsigned long)new, pte & PTE_MERGEABLE));
	wp_window_close(pool, &w);
	frame_unlock(pool, old);
	frames_free_run(pool, old, 1);
	atomic_fetch_add(&pool->pages_migrated, 1);
	return 0;

out_raced:
	errno = EAGAIN;
out_unlock:
	err = errno;
	frame_unlock(pool, old);
	frames_free_run(pool, (unsigned long)new, 1);
	errno = err;
	return -1;
out_again:
	errno = EAGAIN;
	return -1;
}
