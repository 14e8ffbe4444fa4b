/* SPDX-License-Identifier: MIT */
/*
 * Declared pins: sp_pin and sp_unpin, the user-space FOLL_PIN.
 *
 * The kernel never moves, merges or swaps out a page with references its
 * mappings do not explain. samepage cannot see references: a device or the
 * kernel writing a page by reference (O_DIRECT, io_uring fixed buffers)
 * goes on writing the old frame after a move, and the write is lost. So the
 * program says which pages are pinned, and every mover leaves them alone.
 *
 * Counts: one byte per page, eight pages to an atomic 64-bit word, so that
 * pinning a 64 KiB buffer is two compare-and-swaps (at most 255 pins of one
 * page at a time: EOVERFLOW beyond). Each word changes as a whole, so a range
 * is checked (no count would wrap, none would go below zero) and changed in
 * one step per word, and undone word by word if a later word fails.
 *
 * A pin racing a move (Dekker): the mover takes the page's frame lock, raises
 * pool->moving, then reads the count; the pinner raises the count, then reads
 * pool->moving. All seq_cst: at least one sees the other. A mover that sees
 * the pin leaves the page. A pinner that sees a mover waits for any move of
 * its pages to finish: for a private page, by taking and dropping the frame
 * lock of the frame its entry names until the entry stays the same across it
 * (a mover holds that lock from before its check until its entry names the
 * new frame); for anything else, until no move is under way. When sp_pin
 * returns, the pages are where they stay.
 *
 * Locks: sp_pin and sp_unpin take rt.lock (read) only; the slow path takes
 * frame locks under it, as movers do.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "gup.h"
#include "pool.h"

#define LANES 8 /* pages per word */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

int pins_init(struct sp_region *r)
{
	r->pins = calloc((r->npages + LANES - 1) / LANES, sizeof(*r->pins));
	return r->pins ? 0 : -1;
}

void move_begin(struct sp_pool *pool)
{
	atomic_fetch_add(&pool->moving, 1);
}

void move_end(struct sp_pool *pool)
{
	atomic_fetch_sub(&pool->moving, 1);
}

bool page_pinned(const struct sp_region *r, unsigned long idx)
{
	uint64_t w = atomic_load(&r->pins[idx / LANES]);

	return (r->flags & SP_PINNED) || ((w >> (idx % LANES * 8)) & 0xff);
}

unsigned long pages_unpinned(const struct sp_region *r, unsigned long idx, unsigned long n)
{
	unsigned long k = 0;

	while (k < n && !page_pinned(r, idx + k))
		k++;
	return k;
}

static bool has_zero_byte(uint64_t v)
{
	return (v - ONES) & ~v & HIGHS;
}

/* The lanes of word w that pages first..first+nr cover, as 0xff bytes. */
static uint64_t lanes(unsigned long w, unsigned long first, unsigned long nr)
{
	unsigned long lo = w * LANES < first ? first - w * LANES : 0;
	unsigned long end = first + nr - w * LANES;
	unsigned long hi = end < LANES ? end : LANES;
	uint64_t top = hi == LANES ? ~0ull : (1ull << (hi * 8)) - 1;

	return top & ~((1ull << (lo * 8)) - 1);
}

/* Add (up) or take (!up) one pin to each lane of m in word p: false if one would wrap. */
static bool word_change(_Atomic uint64_t *p, uint64_t m, bool up)
{
	uint64_t one = ONES & m, old = atomic_load(p);

	do {
		/* Up: no lane at 0xff. Down: no lane at 0. Lanes outside m count as fine. */
		if (has_zero_byte(up ? (~old & m) | ~m : (old & m) | ~m))
			return false;
	} while (!atomic_compare_exchange_weak(p, &old, up ? old + one : old - one));
	return true;
}

/* Pages first..first+nr of r, one pin more or less each; nothing changed on failure. */
static int pins_change(struct sp_region *r, unsigned long first, unsigned long nr, bool up)
{
	unsigned long w0 = first / LANES, w1 = (first + nr - 1) / LANES, w;

	for (w = w0; w <= w1; w++)
		if (!word_change(&r->pins[w], lanes(w, first, nr), up))
			break;
	if (w > w1)
		return 0;
	while (w-- > w0)
		word_change(&r->pins[w], lanes(w, first, nr), !up);
	errno = up ? EOVERFLOW : EINVAL;
	return -1;
}

/* Until no move of page idx is under way (see the top). */
static void move_wait(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	for (;;) {
		uint64_t pte = atomic_load(&r->pte[idx]);

		if (pte_type(pte) != PTE_PRIVATE) {
			while (atomic_load(&pool->moving))
				sched_yield();
			return;
		}
		frame_lock(pool, pte_val(pte));
		frame_unlock(pool, pte_val(pte));
		if (atomic_load(&r->pte[idx]) == pte)
			return;
	}
}

/* The region holding [addr, addr+len), or NULL (ENOMEM); rt.lock held (read). */
static struct sp_region *pin_range(sp_pool *pool, void *addr, size_t len, unsigned long *first,
				   unsigned long *nr)
{
	uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(PAGE_SIZE - 1);

	return region_range(pool, (void *)a, len + ((uintptr_t)addr - a), first, nr);
}

/* One pin more (up) or less on each page of the range; a pin waits out moves under way. */
static int pin_call(sp_pool *pool, void *addr, size_t len, bool up)
{
	unsigned long first, nr;
	struct sp_region *r;
	int ret = -1;

	if (!pool || !len || len > SIZE_MAX - PAGE_SIZE) {
		errno = EINVAL;
		return -1;
	}
	rwlock_rdlock(&pool->rt.lock);
	r = pin_range(pool, addr, len, &first, &nr);
	if (!r)
		goto out_unlock;
	ret = pins_change(r, first, nr, up);
	if (up && !ret && atomic_load(&pool->moving))
		for (unsigned long i = first; i < first + nr; i++)
			move_wait(pool, r, i);
out_unlock:
	rwlock_unlock(&pool->rt.lock);
	return ret;
}

int sp_pin(sp_pool *pool, void *addr, size_t len)
{
	return pin_call(pool, addr, len, true);
}

int sp_unpin(sp_pool *pool, void *addr, size_t len)
{
	return pin_call(pool, addr, len, false);
}
