/* SPDX-License-Identifier: MIT */
/*
 * Swap: frames out to a file of slots and back on access.
 *
 * A swapped frame keeps its number (PG_swapped, its slot in the descriptor)
 * but not its memory: the memfd range is punched. Every mapping of it then
 * reads a hole, so the pages that map it carry userfaultfd missing mode, and
 * the fault thread brings the frame back (read the slot, check its XXH3,
 * write it through the direct map) before it wakes the faulting thread. A
 * KSM frame swaps as one slot: its sharers keep their MAP_PRIVATE mappings
 * of the frame, and the first one to touch it brings it back for all.
 *
 * Invariant: nobody reads or writes a swapped frame through the direct map
 * (that would fill the hole with zeros). Every path that would (merge
 * planning, migration, unmerge, giving a KSM frame back to its last sharer)
 * either skips swapped frames or calls swap_in_frame() first, under the
 * frame lock.
 *
 * Locks: swap.lock guards the slot map only and is a leaf (taken under the
 * pool lock when a swapped frame is freed). sp_swap_out takes the KSM mutex
 * (no merge or unmerge meanwhile), the region table lock (read) and each
 * frame's lock; the fault path takes the region table lock (read) and the
 * frame lock, never the KSM mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "pool.h"

/*
 * Pages a missing fault brings back with it, at most (256 measured no
 * faster: the time is in the per-page work, not in the faults).
 */
#define READAHEAD 64

int swap_init(struct sp_pool *pool, const char *path, size_t size)
{
	struct sp_swap *sw = &pool->swap;

	memset(sw, 0, sizeof(*sw));
	sw->fd = -1;
	pthread_mutex_init(&sw->lock, NULL);
	if (!path)
		return 0;
	sw->nr_slots = size / PAGE_SIZE;
	sw->map = calloc((sw->nr_slots + 63) / 64, sizeof(*sw->map));
	sw->sum = calloc(sw->nr_slots, sizeof(*sw->sum));
	sw->path = strdup(path);
	sw->readahead = malloc(READAHEAD * PAGE_SIZE);
	if (!sw->map || !sw->sum || !sw->path || !sw->readahead)
		goto out_nomem;
	/* Never someone else's file: a swap file is ours from creation to removal. */
	sw->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sw->fd < 0)
		goto out_free;
	if (ftruncate(sw->fd, (off_t)size)) {
		int err = errno;

		close(sw->fd);
		unlink(path);
		sw->fd = -1;
		errno = err;
		goto out_free;
	}
	return 0;

out_nomem:
	errno = ENOMEM;
out_free:
	free(sw->readahead);
	sw->readahead = NULL;
	free(sw->map);
	free(sw->sum);
	free(sw->path);
	sw->map = NULL;
	sw->sum = NULL;
	sw->path = NULL;
	return -1;
}

void swap_exit(struct sp_pool *pool)
{
	struct sp_swap *sw = &pool->swap;

	if (sw->fd >= 0) {
		close(sw->fd);
		unlink(sw->path);
	}
	free(sw->map);
	free(sw->sum);
	free(sw->path);
	free(sw->readahead);
	pthread_mutex_destroy(&sw->lock);
}

static bool slot_used(const struct sp_swap *sw, unsigned long i)
{
	return sw->map[i / 64] >> (i % 64) & 1;
}

/* Up to want consecutive free slots (at least one): how many, first in *slot. */
static unsigned long slots_alloc(struct sp_swap *sw, unsigned long want, unsigned long *slot)
{
	unsigned long best = 0, best_at = 0;

	pthread_mutex_lock(&sw->lock);
	for (unsigned long i = 0; i < sw->nr_slots && best < want;) {
		unsigned long n = 0;

		while (i + n < sw->nr_slots && n < want && !slot_used(sw, i + n))
			n++;
		if (n > best) {
			best = n;
			best_at = i;
		}
		i += n + 1;
	}
	for (unsigned long i = 0; i < best; i++)
		sw->map[(best_at + i) / 64] |= 1ull << ((best_at + i) % 64);
	sw->used += best;
	pthread_mutex_unlock(&sw->lock);
	*slot = best_at;
	if (!best)
		errno = ENOSPC;
	return best;
}

static long slot_alloc(struct sp_swap *sw)
{
	long slot = -1;

	pthread_mutex_lock(&sw->lock);
	for (unsigned long n = 0; n < sw->nr_slots && slot < 0; n++) {
		unsigned long i = (sw->hint + n) % sw->nr_slots;

		if (!(sw->map[i / 64] >> (i % 64) & 1)) {
			sw->map[i / 64] |= 1ull << (i % 64);
			sw->used++;
			sw->hint = i + 1;
			slot = (long)i;
		}
	}
	pthread_mutex_unlock(&sw->lock);
	if (slot < 0)
		errno = ENOSPC;
	return slot;
}

void swap_slot_free(struct sp_pool *pool, unsigned long slot)
{
	struct sp_swap *sw = &pool->swap;

	pthread_mutex_lock(&sw->lock);
	if (slot < sw->nr_slots && (sw->map[slot / 64] >> (slot % 64) & 1)) {
		sw->map[slot / 64] &= ~(1ull << (slot % 64));
		sw->used--;
	}
	pthread_mutex_unlock(&sw->lock);
}

long swap_slots_used(struct sp_pool *pool)
{
	long n;

	pthread_mutex_lock(&pool->swap.lock);
	n = (long)pool->swap.used;
	pthread_mutex_unlock(&pool->swap.lock);
	return n;
}

/* Frame pfn (locked, swapped) back from its slot. -1 with EIO: the slot is bad. */
int swap_in_frame(struct sp_pool *pool, unsigned long pfn)
{
	struct sp_page *page = pfn_to_page(pool, pfn);
	struct sp_swap *sw = &pool->swap;
	unsigned long slot = page->slot;
	uint64_t buf[PAGE_SIZE / 8];

	if (!(atomic_load(&page->flags) & PG_swapped))
		return 0;
	if (pread(sw->fd, buf, PAGE_SIZE, (off_t)(slot * PAGE_SIZE)) != (ssize_t)PAGE_SIZE ||
	    XXH3_64bits(buf, PAGE_SIZE) != sw->sum[slot]) {
		atomic_fetch_add(&sw->errors, 1);
		sp_log(SP_LOG_ERR, "swap slot %lu of frame %lu is damaged: the page is lost", slot,
		       pfn);
		errno = EIO;
		return -1;
	}
	/* Written to the memfd, not through the direct map: no fault, no zeroing first. */
	if (pwrite(pool->memfd, buf, PAGE_SIZE, (off_t)(pfn << PAGE_SHIFT)) != (ssize_t)PAGE_SIZE) {
		errno = ENOMEM;
		return -1;
	}
	atomic_fetch_and(&page->flags, ~(uint32_t)PG_swapped);
	swap_slot_free(pool, slot);
	atomic_fetch_add(&pool->faults_swapin, 1);
	return 0;
}

/* Frame pfn (locked, resident) out to a new slot; its mappers are registered already. */
static int swap_out_frame(struct sp_pool *pool, unsigned long pfn)
{
	struct sp_page *page = pfn_to_page(pool, pfn);
	struct sp_swap *sw = &pool->swap;
	const void *src = pfn_to_virt(pool, pfn);
	long slot = slot_alloc(sw);

	if (slot < 0)
		return -1;
	if (pwrite(sw->fd, src, PAGE_SIZE, (off_t)((unsigned long)slot * PAGE_SIZE)) !=
	    (ssize_t)PAGE_SIZE) {
		swap_slot_free(pool, (unsigned long)slot);
		errno = EIO;
		return -1;
	}
	sw->sum[slot] = XXH3_64bits(src, PAGE_SIZE);
	page->slot = (uint32_t)slot;
	atomic_fetch_or(&page->flags, PG_swapped);
	/* Punching also unmaps it everywhere: the next touch is a missing fault. */
	fallocate(pool->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)(pfn << PAGE_SHIFT), (off_t)PAGE_SIZE);
	return 0;
}

/* A private page: protected while its frame is written out and punched. */
static int swap_out_private(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	uint64_t pte = atomic_load(&r->pte[idx]);
	unsigned long pfn = pte_val(pte);
	char *addr = page_addr(r, idx);
	struct sp_window win;
	int ret = 0;

	frame_lock(pool, pfn);
	if (atomic_load(&r->pte[idx]) != pte ||
	    (atomic_load(&pfn_to_page(pool, pfn)->flags) & PG_swapped) || frame_is_hole(pool, pfn))
		goto out_unlock; /* changed, swapped already, or nothing to swap */
	ret = wp_window_open(pool, &win, addr, PAGE_SIZE);
	if (ret)
		goto out_unlock;
	ret = fault_register_missing(pool, addr, PAGE_SIZE);
	if (!ret)
		ret = swap_out_frame(pool, pfn);
	wp_window_close(pool, &win);
out_unlock:
	frame_unlock(pool, pfn);
	return ret;
}

/*
 * A KSM frame, once for all its sharers: nobody writes it, so no window;
 * every sharer gets missing mode before the punch, and a sharer that copies
 * before then has its own page anyway.
 */
static int swap_out_ksm(struct sp_pool *pool, unsigned long k)
{
	struct stable_tree *t = &pool->ksm.stable;
	uint32_t sid;
	int ret = 0;

	frame_lock(pool, k);
	sid = pfn_to_page(pool, k)->owner;
	if ((atomic_load(&pfn_to_page(pool, k)->flags) & PG_swapped) || sid >= t->nr_ids ||
	    !t->nodes[sid].live || t->nodes[sid].kpfn != k)
		goto out_unlock;
	for (uint32_t i = 0; i < t->nodes[sid].nr && !ret; i++) {
		struct sp_region *w = region_by_id(pool, t->nodes[sid].rmap[i].rid);

		if (w && !(atomic_load(&w->pte[t->nodes[sid].rmap[i].idx]) & PTE_LOST))
			ret = fault_register_missing(pool, page_addr(w, t->nodes[sid].rmap[i].idx),
						     PAGE_SIZE);
	}
	if (!ret)
		ret = swap_out_frame(pool, k);
out_unlock:
	frame_unlock(pool, k);
	return ret;
}

#define SWAP_BATCH 256

/*
 * Consecutive private pages on consecutive resident frames, from idx: locked
 * and checked. How many (0: idx is not such a page; the caller goes on).
 */
static unsigned long lock_private_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
				      unsigned long nr)
{
	uint64_t pte0 = atomic_load(&r->pte[idx]);
	unsigned long n = 0, f0 = pte_val(pte0);

	while (n < nr && n < SWAP_BATCH) {
		uint64_t pte = atomic_load(&r->pte[idx + n]);
		unsigned long f = pte_val(pte);

		if (pte_type(pte) != PTE_PRIVATE || (pte & PTE_LOST) || f != f0 + n ||
		    pfn_to_section(pool, f) != pfn_to_section(pool, f0))
			break;
		frame_lock(pool, f);
		if (atomic_load(&r->pte[idx + n]) != pte || frame_swapped(pool, f) ||
		    frame_is_hole(pool, f)) {
			frame_unlock(pool, f);
			break;
		}
		n++;
	}
	return n;
}

/*
 * A run of private pages: one window, one registration, one write to
 * consecutive slots, one punch. 0 done; 1 only the first part was done (the
 * swap area is fragmented or short); -1 nothing was. Frames locked by the
 * caller.
 */
static int swap_out_private_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
				unsigned long n, unsigned long *done)
{
	struct sp_swap *sw = &pool->swap;
	unsigned long f0 = pte_val(atomic_load(&r->pte[idx])), slot, got;
	char *addr = page_addr(r, idx);
	const char *src = pfn_to_virt(pool, f0);
	struct sp_window win;
	int ret;

	*done = 0;
	got = slots_alloc(sw, n, &slot);
	if (!got)
		return -1;
	ret = wp_window_open(pool, &win, addr, got << PAGE_SHIFT);
	if (ret)
		goto out_slots;
	ret = fault_register_missing(pool, addr, got << PAGE_SHIFT);
	if (!ret && pwrite(sw->fd, src, got << PAGE_SHIFT, (off_t)(slot * PAGE_SIZE)) !=
			    (ssize_t)(got << PAGE_SHIFT)) {
		errno = EIO;
		ret = -1;
	}
	if (!ret) {
		for (unsigned long i = 0; i < got; i++) {
			struct sp_page *page = pfn_to_page(pool, f0 + i);

			sw->sum[slot + i] = XXH3_64bits(src + (i << PAGE_SHIFT), PAGE_SIZE);
			page->slot = (uint32_t)(slot + i);
			atomic_fetch_or(&page->flags, PG_swapped);
		}
		fallocate(pool->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(f0 << PAGE_SHIFT), (off_t)(got << PAGE_SHIFT));
	}
	wp_window_close(pool, &win);
	if (!ret) {
		*done = got;
		return got < n ? 1 : 0;
	}
out_slots:
	for (unsigned long i = 0; i < got; i++)
		swap_slot_free(pool, slot + i);
	return -1;
}

static int swap_out_page(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	uint64_t pte = atomic_load(&r->pte[idx]);

	if (pte & PTE_LOST)
		return 0;
	switch (pte_type(pte)) {
	case PTE_PRIVATE:
		return swap_out_private(pool, r, idx);
	case PTE_KSM:
		return swap_out_ksm(pool, pte_val(pte));
	case PTE_COPIED:
		/* The kernel's copy comes back into a pool frame first, then goes. */
		if (ksm_unshare(pool, r, idx))
			return -1;
		return swap_out_private(pool, r, idx);
	default:
		return 0; /* the zero page: nothing to swap */
	}
}

int sp_swap_out(sp_pool *pool, void *addr, size_t len)
{
	unsigned long first, nr;
	struct sp_region *r;
	int ret = 0;

	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	if (pool->swap.fd < 0 || pool->fault.mode != SP_FAULT_UFFD) {
		/* No swap area; or no missing faults to bring pages back (SIGSEGV mode). */
		errno = pool->swap.fd < 0 ? ENOSPC : ENOTSUP;
		return -1;
	}
	pthread_mutex_lock(&pool->ksm.mutex);
	pthread_rwlock_rdlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	if (!r)
		ret = -1;
	for (unsigned long i = first; r && !ret && i < first + nr;) {
		unsigned long f0 = pte_val(atomic_load(&r->pte[i])), done;
		unsigned long n = lock_private_run(pool, r, i, first + nr - i);

		if (!n) {
			ret = swap_out_page(pool, r, i++); /* KSM, or one at a time */
			continue;
		}
		ret = swap_out_private_run(pool, r, i, n, &done);
		for (unsigned long k = 0; k < n; k++)
			frame_unlock(pool, f0 + k);
		if (ret > 0) /* the rest of the run goes on from where it stopped */
			ret = 0;
		i += done;
		if (!ret && !done) /* nothing moved and no error: go page by page */
			ret = swap_out_page(pool, r, i++);
	}
	pthread_rwlock_unlock(&pool->rt.lock);
	pthread_mutex_unlock(&pool->ksm.mutex);
	return ret;
}

/*
 * After page idx's frame came back: its neighbours that were swapped out
 * with it (consecutive frames in consecutive slots) come back in one read,
 * so that a sequential reader takes one fault in READAHEAD, not one each.
 * Frames that are busy or damaged are left for their own fault.
 */
static void swap_readahead(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			   unsigned long f, unsigned long slot)
{
	struct sp_swap *sw = &pool->swap;
	char *buf = sw->readahead; /* only the fault thread reads ahead */
	unsigned long n = 0;

	if (!buf)
		return;
	while (n < READAHEAD && idx + 1 + n < r->npages) {
		uint64_t pte = atomic_load(&r->pte[idx + 1 + n]);
		unsigned long g = f + 1 + n;

		if (pte_type(pte) != PTE_PRIVATE || pte_val(pte) != g ||
		    pfn_to_section(pool, g) != pfn_to_section(pool, f) || !frame_trylock(pool, g))
			break;
		if (!frame_swapped(pool, g) || pfn_to_page(pool, g)->slot != slot + 1 + n) {
			frame_unlock(pool, g);
			break;
		}
		n++;
	}
	if (n && pread(sw->fd, buf, n * PAGE_SIZE, (off_t)((slot + 1) * PAGE_SIZE)) !=
			 (ssize_t)(n * PAGE_SIZE))
		n = 0; /* leave them all to their own faults */
	for (unsigned long i = 0; i < n; i++) {
		struct sp_page *page = pfn_to_page(pool, f + 1 + i);

		if (XXH3_64bits(buf + i * PAGE_SIZE, PAGE_SIZE) == sw->sum[slot + 1 + i] &&
		    pwrite(pool->memfd, buf + i * PAGE_SIZE, PAGE_SIZE,
			   (off_t)((f + 1 + i) << PAGE_SHIFT)) == (ssize_t)PAGE_SIZE) {
			atomic_fetch_and(&page->flags, ~(uint32_t)PG_swapped);
			swap_slot_free(pool, slot + 1 + i);
			atomic_fetch_add(&pool->faults_swapin, 1);
		}
	}
	while (n--)
		frame_unlock(pool, f + 1 + n);
}

/*
 * A missing fault at addr (fault thread): bring the frame back, or give a
 * hole its zeros. 0 to wake the thread; 1 to map the zero page there; -1
 * when the page is lost (damaged slot): the caller poisons it, and the
 * thread gets SIGBUS.
 */
int swap_fault(struct sp_pool *pool, uintptr_t addr)
{
	struct sp_region *r;
	uint64_t pte;
	int ret = 0;

	pthread_rwlock_rdlock(&pool->rt.lock);
	r = region_find(pool, (void *)addr);
	pte = r ? atomic_load(&r->pte[region_index(r, (void *)addr)]) : 0;
	if (r && (pte_type(pte) == PTE_PRIVATE || pte_type(pte) == PTE_KSM)) {
		unsigned long pfn = pte_val(pte);

		frame_lock(pool, pfn);
		if (atomic_load(&pfn_to_page(pool, pfn)->flags) & PG_swapped) {
			unsigned long slot = pfn_to_page(pool, pfn)->slot;

			ret = swap_in_frame(pool, pfn);
			if (!ret && pte_type(pte) == PTE_PRIVATE)
				swap_readahead(pool, r, region_index(r, (void *)addr), pfn, slot);
		} else if (frame_is_hole(pool, pfn))
			(void)*(volatile char *)pfn_to_virt(pool, pfn); /* a page of zeros */
		frame_unlock(pool, pfn);
	} else if (r && pte_type(pte) == PTE_ZERO) {
		ret = 1; /* merged with the zero page: map it */
	}
	pthread_rwlock_unlock(&pool->rt.lock);
	return ret;
}
