/* SPDX-License-Identifier: MIT */
/*
 * The pool: one memfd holds every frame; frame pfn is the 4 KiB at offset
 * pfn * 4096. Sections are the unit of online/offline; nodes own sections
 * round-robin.
 *
 * Locking: the order of every lock is in lock.h.
 *
 * - pool->lock (this file) guards the free maps, section states and the frame
 *   totals. Only leaves are taken under it, and no system call that can
 *   sleep for long (punching, mapping) runs under it.
 * - The frame lock is PG_locked in sp_page.flags, the PG_locked analogue. It
 *   serialises merge, migration, swap-out and swap-in of one frame. Taken
 *   with the region table lock held (read) so that the owner it names cannot
 *   be freed under it; how several nest is in lock.h. Copy-on-write is the
 *   kernel's and takes no lock of ours.
 * - A frame's memory goes back to the OS (punched) while the frame is still
 *   marked used, and only then becomes free: a frame on a free map is always
 *   a hole, so a new owner always reads zeros.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

#define DEFAULT_SECTION_SIZE (64ul << 20)
#define DEFAULT_NR_SECTIONS 16
#define DEFAULT_SWAP_SIZE (1ul << 30)
#define MAX_NODES 64 /* a nodemask is an unsigned long */
#define POOL_FLAGS (SP_POOL_NO_KSMD | SP_POOL_SIGSEGV)

struct sp_page *pfn_to_page(struct sp_pool *pool, unsigned long pfn)
{
	unsigned s = pfn_to_section(pool, pfn);

	if (s >= pool->max_sections || !pool->sections[s].pages)
		return NULL;
	return &pool->sections[s].pages[pfn % pool->section_pages];
}

/* ---- frame lock ------------------------------------------------------- */

bool frame_trylock_at(struct sp_pool *pool, unsigned long pfn, const char *func)
{
	struct sp_page *page = pfn_to_page(pool, pfn);

	if (atomic_fetch_or(&page->flags, PG_locked) & PG_locked)
		return false;
	lock_frame_acquired(pfn);
	lock_acquired(page, LOCK_FRAME, func, true);
	return true;
}

void frame_lock_at(struct sp_pool *pool, unsigned long pfn, const char *func)
{
	struct sp_page *page = pfn_to_page(pool, pfn);
	uint32_t old;

	lock_check_order(page, LOCK_FRAME, func);
	lock_frame_order(pfn, func);
	for (;;) {
		old = atomic_fetch_or(&page->flags, PG_locked);
		if (!(old & PG_locked)) {
			lock_frame_acquired(pfn);
			lock_acquired(page, LOCK_FRAME, func, true);
			return;
		}
		old = atomic_fetch_or(&page->flags, PG_waiters) | PG_waiters;
		if (old & PG_locked)
			os_futex_wait(&page->flags, old);
	}
}

void frame_unlock_at(struct sp_pool *pool, unsigned long pfn, const char *func)
{
	struct sp_page *page = pfn_to_page(pool, pfn);
	uint32_t old;

	lock_releasing(page, LOCK_FRAME, func, true);
	old = atomic_fetch_and(&page->flags, ~(PG_locked | PG_waiters));
	if (old & PG_waiters)
		os_futex_wake(&page->flags, INT_MAX);
}

/* ---- free maps -------------------------------------------------------- */

static bool map_test(const uint64_t *map, unsigned long i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void map_set_range(uint64_t *map, unsigned long i, unsigned long n, bool free)
{
	for (; n; i++, n--) {
		if (free)
			map[i / 64] |= 1ull << (i % 64);
		else
			map[i / 64] &= ~(1ull << (i % 64));
	}
}

/* First free frame at or after i; npages if none. */
static unsigned long map_next_free(const uint64_t *map, unsigned long i, unsigned long npages)
{
	while (i < npages) {
		uint64_t w = map[i / 64] >> (i % 64);

		if (w)
			return i + (unsigned long)__builtin_ctzll(w) < npages ?
				       i + (unsigned long)__builtin_ctzll(w) :
				       npages;
		i = (i / 64 + 1) * 64;
	}
	return npages;
}

static bool section_allocatable(const struct sp_section *sec)
{
	return sec->state == SECTION_ONLINE && !sec->isolated && sec->nr_free;
}

/*
 * Take up to want frames from sec as one run, the first free run at least
 * min long (shorter when want is); pool->lock held. 0 if none is.
 */
static unsigned long section_take_run(struct sp_pool *pool, unsigned s, unsigned long want,
				      unsigned long min, unsigned long *pfn)
{
	struct sp_section *sec = &pool->sections[s];
	unsigned long n = pool->section_pages, i, first, len = 0;

	/* First fit: low frames first keeps free space in long runs. */
	first = i = map_next_free(sec->free_map, sec->hint, n);
	while (i < n) {
		for (len = 0; len < want && i + len < n && map_test(sec->free_map, i + len); len++)
			;
		if (len >= min || len == want)
			break;
		i = map_next_free(sec->free_map, i + len, n);
	}
	if (i == n)
		return 0;
	map_set_range(sec->free_map, i, len, false);
	/* The lock bits stay: a stale locker of a freed frame still owns them. */
	for (unsigned long k = 0; k < len; k++)
		atomic_fetch_or(&sec->pages[i + k].flags, PG_used);
	sec->nr_free -= len;
	if (i == first) /* no free frame skipped below it */
		sec->hint = i + len;
	pool->frames_free -= len;
	*pfn = (unsigned long)s * n + i;
	return len;
}

/* Sections in allocation order: the preferred node's first, then the rest. */
static unsigned section_order(struct sp_pool *pool, int node, unsigned k)
{
	unsigned nr_pref = 0, s;

	if (node < 0 || (unsigned)node >= pool->nr_nodes)
		return k;
	for (s = node; s < pool->max_sections; s += pool->nr_nodes)
		if (nr_pref++ == k)
			return s;
	k -= nr_pref;
	for (s = 0; s < pool->max_sections; s++)
		if (pool->sections[s].node != node && k-- == 0)
			return s;
	return pool->max_sections;
}

static int runs_push(struct sp_run **runs, unsigned *nr, unsigned *cap, unsigned long pfn,
		     unsigned long len)
{
	if (*nr && (*runs)[*nr - 1].pfn + (*runs)[*nr - 1].nr == pfn) {
		(*runs)[*nr - 1].nr += len;
		return 0;
	}
	if (*nr == *cap) {
		unsigned ncap = *cap ? *cap * 2 : 8;
		struct sp_run *n = realloc(*runs, ncap * sizeof(**runs));

		if (!n)
			return -1;
		*runs = n;
		*cap = ncap;
	}
	(*runs)[(*nr)++] = (struct sp_run){ pfn, len };
	return 0;
}

static void frames_unlocked_release(struct sp_pool *pool, unsigned long pfn, unsigned long nr);

/*
 * Frames of sections on a node of mask, prefer's sections first; movable
 * sections (ZONE_MOVABLE) before unmovable ones, and pinned frames only
 * from unmovable ones. For a region (LONG_RUN pages or more), runs of
 * LONG_RUN first, then first fit. Every run is a mapping, and a vma while
 * its neighbours are not consecutive frames: a region laid over the single
 * frames merging freed would cost a mapping per page (vm.max_map_count).
 * Smaller requests (swap-in blocks) keep first fit.
 */
#define LONG_RUN 256ul

static int frames_alloc_zone(struct sp_pool *pool, unsigned long mask, int prefer, unsigned long nr,
			     struct sp_run **runs, unsigned *nr_runs, bool pinned)
{
	unsigned cap = 0, k, s;
	unsigned long got = 0;
	bool low;

	*runs = NULL;
	*nr_runs = 0;
	mutex_lock(&pool->lock);
	if (pool->frames_free < nr)
		goto out_nomem;
	for (int turn = pinned; turn < 2 && got < nr; turn++)
		for (int pass = nr >= LONG_RUN ? 0 : 1; pass < 2 && got < nr; pass++)
			for (k = 0;
			     got < nr && (s = section_order(pool, prefer, k)) < pool->max_sections;
			     k++) {
				if (!(mask >> pool->sections[s].node & 1) ||
				    pool->sections[s].unmovable != turn)
					continue;
				while (got < nr && section_allocatable(&pool->sections[s])) {
					unsigned long pfn = 0, len, min = pass ? 1 : LONG_RUN;

					len = section_take_run(pool, s, nr - got, min, &pfn);
					if (!len)
						break;
					if (runs_push(runs, nr_runs, &cap, pfn, len)) {
						frames_unlocked_release(pool, pfn, len);
						goto out_undo;
					}
					got += len;
				}
			}
	if (got < nr)
		goto out_undo;
	low = pool->frames_free < reclaim_low(pool);
	mutex_unlock(&pool->lock);
	if (low)
		reclaim_kick(pool);
	return 0;

out_undo:
	for (unsigned i = 0; i < *nr_runs; i++)
		frames_unlocked_release(pool, (*runs)[i].pfn, (*runs)[i].nr);
	free(*runs);
	*runs = NULL;
	*nr_runs = 0;
out_nomem:
	low = pool->frames_free < reclaim_low(pool);
	mutex_unlock(&pool->lock);
	if (low)
		reclaim_kick(pool);
	errno = ENOMEM;
	return -1;
}

/* Frames of sections on a node of mask: first fit, prefer's sections first. */
int frames_alloc_mask(struct sp_pool *pool, unsigned long mask, int prefer, unsigned long nr,
		      struct sp_run **runs, unsigned *nr_runs)
{
	return frames_alloc_zone(pool, mask, prefer, nr, runs, nr_runs, false);
}

int frames_alloc_pinned(struct sp_pool *pool, unsigned long nr, struct sp_run **runs,
			unsigned *nr_runs)
{
	return frames_alloc_zone(pool, NODES_ALL, -1, nr, runs, nr_runs, true);
}

int frames_alloc(struct sp_pool *pool, int node, unsigned long nr, struct sp_run **runs,
		 unsigned *nr_runs)
{
	return frames_alloc_mask(pool, NODES_ALL, node, nr, runs, nr_runs);
}

long frame_alloc(struct sp_pool *pool, int node)
{
	struct sp_run *runs;
	unsigned nr;
	long pfn;

	if (frames_alloc(pool, node, 1, &runs, &nr))
		return -1;
	pfn = (long)runs[0].pfn;
	free(runs);
	return pfn;
}

bool nodes_have_memory(struct sp_pool *pool, unsigned long mask)
{
	bool any = false;

	mutex_lock(&pool->lock);
	for (unsigned s = 0; s < pool->max_sections && !any; s++)
		any = (mask >> pool->sections[s].node & 1) &&
		      pool->sections[s].state == SECTION_ONLINE && !pool->sections[s].isolated;
	mutex_unlock(&pool->lock);
	return any;
}

/*
 * A single frame's allocation ends (pool->lock held): the lock goes, reclaim
 * wakes if free frames ran low. pfn, or -1 ENOMEM.
 */
#define frame_taken(pool, pfn)                                       \
	({                                                           \
		bool low_ = (pool)->frames_free < reclaim_low(pool); \
                                                                     \
		mutex_unlock(&(pool)->lock);                         \
		frame_kick((pool), (pfn), low_);                     \
	})

static long frame_kick(struct sp_pool *pool, long pfn, bool low)
{
	if (low)
		reclaim_kick(pool);
	if (pfn < 0)
		errno = ENOMEM;
	return pfn;
}

/* Frame i of section s, free; pool->lock held. */
static void section_take_at(struct sp_pool *pool, unsigned s, unsigned long i)
{
	struct sp_section *sec = &pool->sections[s];

	map_set_range(sec->free_map, i, 1, false);
	atomic_fetch_or(&sec->pages[i].flags, PG_used);
	sec->nr_free--;
	pool->frames_free--;
}

long frame_alloc_at(struct sp_pool *pool, unsigned long pfn)
{
	unsigned s = pfn_to_section(pool, pfn);
	unsigned long i = pfn % pool->section_pages;

	if (s >= pool->max_sections) {
		errno = ENOMEM;
		return -1;
	}
	mutex_lock(&pool->lock);
	if (!section_allocatable(&pool->sections[s]) || !map_test(pool->sections[s].free_map, i))
		return frame_taken(pool, -1);
	section_take_at(pool, s, i);
	return frame_taken(pool, (long)pfn);
}

/* The highest free frame of a section, or n if none. */
static unsigned long map_last_free(const uint64_t *map, unsigned long n)
{
	for (unsigned long i = n; i;) {
		unsigned long w = (i - 1) / 64, valid = i - w * 64;
		uint64_t bits = map[w] & (valid < 64 ? (1ull << valid) - 1 : ~0ull);

		if (bits)
			return w * 64 + 63 - (unsigned long)__builtin_clzll(bits);
		i = w * 64;
	}
	return n;
}

long frame_alloc_far(struct sp_pool *pool, unsigned long mask, int prefer)
{
	long pfn = -1;

	mutex_lock(&pool->lock);
	for (int pass = 0; pass < 2 && pfn < 0; pass++) {
		for (unsigned s = pool->max_sections; s-- > 0 && pfn < 0;) {
			struct sp_section *sec = &pool->sections[s];
			unsigned long i;

			if (!(mask >> sec->node & 1) || (sec->node == prefer) != !pass ||
			    !section_allocatable(sec))
				continue;
			i = map_last_free(sec->free_map, pool->section_pages);
			if (i == pool->section_pages)
				continue;
			section_take_at(pool, s, i);
			pfn = (long)(s * pool->section_pages + i);
		}
	}
	return frame_taken(pool, pfn);
}

/* Back onto the free map, for frames that are holes already; pool->lock held. */
static void frames_unlocked_release(struct sp_pool *pool, unsigned long pfn, unsigned long nr)
{
	while (nr) {
		unsigned s = pfn_to_section(pool, pfn);
		struct sp_section *sec = &pool->sections[s];
		unsigned long i = pfn % pool->section_pages;
		unsigned long len = pool->section_pages - i < nr ? pool->section_pages - i : nr;

		for (unsigned long k = 0; k < len; k++)
			atomic_fetch_and(&sec->pages[i + k].flags, PG_locked | PG_waiters);
		map_set_range(sec->free_map, i, len, true);
		if (i < sec->hint)
			sec->hint = i;
		sec->nr_free += len;
		if (!sec->isolated)
			pool->frames_free += len;
		pfn += len;
		nr -= len;
	}
}

/*
 * A free frame must read zeros: the next sp_alloc hands it out as a new,
 * zero-filled page (the kernel's __GFP_ZERO). A punch that fails (EINTR, or
 * EIO) is tried again, and then the frames are zeroed by writing zeros,
 * which holds memory but never hands one program's bytes to another.
 */
static void frames_clear(struct sp_pool *pool, unsigned long pfn, unsigned long nr)
{
	static const char zero[PAGE_SIZE];
	int err;

	for (int tries = 0; tries < 3; tries++)
		if (!os_memfd_punch(pool->memfd, (off_t)(pfn << PAGE_SHIFT), nr << PAGE_SHIFT))
			return;
	err = errno;
	for (unsigned long i = 0; i < nr; i++)
		for (int tries = 0;
		     os_memfd_fill(pool->memfd, (off_t)((pfn + i) << PAGE_SHIFT), zero, PAGE_SIZE);)
			if (++tries == 100) {
				sp_log(SP_LOG_ERR, "clearing frame %lu: %s (punch: %s)", pfn + i,
				       strerror(errno), strerror(err));
				break;
			}
}

void frames_free_run(struct sp_pool *pool, unsigned long pfn, unsigned long nr)
{
	if (!nr)
		return;
	frames_clear(pool, pfn, nr);
	mutex_lock(&pool->lock);
	frames_unlocked_release(pool, pfn, nr);
	mutex_unlock(&pool->lock);
}

static int cmp_ulong(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

/*
 * Free scattered frames with one punch per run of consecutive pfns. A punch
 * must unmap the page from the direct map first, a TLB flush each; one
 * MADV_DONTNEED over their span (which only drops the direct map's page
 * table entries: other frames in it refault when read) flushes once for all.
 */
void frames_free_pfns(struct sp_pool *pool, unsigned long *pfns, unsigned long nr)
{
	unsigned long i = 0, j;

	if (!nr)
		return;
	qsort(pfns, nr, sizeof(*pfns), cmp_ulong);
	if (nr > 1 && pfns[nr - 1] - pfns[0] < 64 * nr)
		os_dontneed(pfn_to_virt(pool, pfns[0]), (pfns[nr - 1] - pfns[0] + 1) << PAGE_SHIFT);
	while (i < nr) {
		for (j = i + 1; j < nr && pfns[j] == pfns[j - 1] + 1 &&
				pfn_to_section(pool, pfns[j]) == pfn_to_section(pool, pfns[i]);
		     j++)
			;
		frames_free_run(pool, pfns[i], j - i);
		i = j;
	}
}

long pool_bytes_resident(struct sp_pool *pool)
{
	return os_memfd_resident(pool->memfd);
}

/* Asked of the memfd, not of the direct map: touching a hole through the map would fill it. */
bool frame_is_hole(struct sp_pool *pool, unsigned long pfn)
{
	return os_memfd_is_hole(pool->memfd, (off_t)(pfn << PAGE_SHIFT));
}

/* ---- sections --------------------------------------------------------- */

static int section_bring_online(struct sp_pool *pool, unsigned s)
{
	struct sp_section *sec = &pool->sections[s];
	unsigned long n = pool->section_pages, words = (n + 63) / 64;

	sec->pages = calloc(n, sizeof(*sec->pages));
	sec->free_map = calloc(words, sizeof(uint64_t));
	if (!sec->pages || !sec->free_map)
		goto out_nomem;
	map_set_range(sec->free_map, 0, n, true);
	sec->nr_free = n;
	sec->hint = 0;
	sec->isolated = false;
	sec->state = SECTION_ONLINE;
	pool->frames_total += n;
	pool->frames_free += n;
	pool->sections_online++;
	return 0;

out_nomem:
	free(sec->pages);
	free(sec->free_map);
	sec->pages = NULL;
	sec->free_map = NULL;
	errno = ENOMEM;
	return -1;
}

static void section_free(struct sp_section *sec)
{
	free(sec->pages);
	free(sec->free_map);
	sec->pages = NULL;
	sec->free_map = NULL;
}

/* Where the machine has the nodes, a section's frames live on its node. */
static void section_bind(struct sp_pool *pool, unsigned s)
{
	if (!pool->real_numa)
		return;
	if (os_memfd_bind(pool->dmap + s * pool->section_size, pool->section_size,
			  pool->sections[s].node))
		sp_log(SP_LOG_WARN, "binding section %u to node %d: %s", s, pool->sections[s].node,
		       strerror(errno));
}

static int section_online_zone(struct sp_pool *pool, unsigned s, bool unmovable)
{
	int ret;

	mutex_lock(&pool->lock);
	ret = section_bring_online(pool, s);
	pool->sections[s].unmovable = !ret && unmovable;
	mutex_unlock(&pool->lock);
	if (!ret)
		section_bind(pool, s);
	return ret;
}

int section_online(struct sp_pool *pool, unsigned s)
{
	return section_online_zone(pool, s, false);
}

int section_online_unmovable(struct sp_pool *pool, unsigned s)
{
	return section_online_zone(pool, s, true);
}

/* ---- strict overcommit ------------------------------------------------ */

/*
 * Where pages can be without frames (swapped out, or lazily allocated), the
 * pool promises every page of every region a frame or a swap slot when it is
 * touched: the pages of all regions fit in the frames that stay online plus
 * the swap slots (the kernel's strict overcommit), less COMMIT_SLACK. The
 * slack is for pages in flight: a swap-in holds its page's slot until the
 * new frame is mapped, a policy move holds the old frame until its copy is
 * done; with nothing left over, the last swap-in would find neither a free
 * frame nor a free slot to reclaim a frame into. Without swap every page
 * holds its frame (or shares one, or is the kernel's copy), nothing can
 * fault for lack of a frame, and what merging saves may be handed out.
 * pool->lock held.
 */
static bool commit_fits(struct sp_pool *pool, long pages, unsigned long frames)
{
	if (pool->swap.fd < 0 || !fault_can_swap(pool))
		return true;
	return pages <= 0 || pages + COMMIT_SLACK <= (long)(frames + pool->swap.nr_slots);
}

int commit_charge(struct sp_pool *pool, unsigned long npages)
{
	int ret = 0;

	mutex_lock(&pool->lock);
	if (commit_fits(pool, atomic_load(&pool->rt.committed) + (long)npages,
			pool->frames_total - pool->frames_leaving))
		atomic_fetch_add(&pool->rt.committed, (long)npages);
	else
		ret = -1;
	mutex_unlock(&pool->lock);
	if (ret)
		errno = ENOMEM;
	return ret;
}

void commit_uncharge(struct sp_pool *pool, unsigned long npages)
{
	atomic_fetch_sub(&pool->rt.committed, (long)npages);
}

int section_isolate(struct sp_pool *pool, unsigned s, bool isolate)
{
	struct sp_section *sec = &pool->sections[s];
	int ret = 0;

	mutex_lock(&pool->lock);
	if (sec->isolated == isolate)
		goto out_unlock;
	/* Going: what is committed must fit without its frames, from now on. */
	if (isolate &&
	    !commit_fits(pool, atomic_load(&pool->rt.committed),
			 pool->frames_total - pool->frames_leaving - pool->section_pages)) {
		ret = -1;
		goto out_unlock;
	}
	sec->isolated = isolate;
	sec->state = isolate ? SECTION_GOING_OFFLINE : SECTION_ONLINE;
	if (isolate) {
		pool->frames_free -= sec->nr_free;
		pool->frames_leaving += pool->section_pages;
	} else {
		pool->frames_free += sec->nr_free;
		pool->frames_leaving -= pool->section_pages;
	}
out_unlock:
	mutex_unlock(&pool->lock);
	if (ret)
		errno = ENOMEM;
	return ret;
}

unsigned long section_used(struct sp_pool *pool, unsigned s, unsigned long *pfns)
{
	struct sp_section *sec = &pool->sections[s];
	unsigned long n = 0, base = (unsigned long)s * pool->section_pages;

	for (unsigned long i = 0; i < pool->section_pages; i++)
		if (atomic_load(&sec->pages[i].flags) & PG_used)
			pfns[n++] = base + i;
	return n;
}

/*
 * Every frame is free (and so a hole): give the range back to the OS for
 * good and drop the descriptors. -1 with EBUSY if a frame is in use.
 */
int section_remove(struct sp_pool *pool, unsigned s)
{
	struct sp_section *sec = &pool->sections[s];

	/*
	 * A barrier: whoever read a pfn of this section from a page table
	 * before its frames moved did so under the region table lock, and is
	 * done with it once we get the lock for writing; after that, no page
	 * table names a frame here, and the descriptors can go.
	 */
	rwlock_wrlock(&pool->rt.lock);
	rwlock_unlock(&pool->rt.lock);
	mutex_lock(&pool->lock);
	if (sec->nr_free != pool->section_pages) {
		mutex_unlock(&pool->lock);
		errno = EBUSY;
		return -1;
	}
	sec->state = SECTION_OFFLINE;
	sec->isolated = false;
	pool->frames_total -= pool->section_pages;
	pool->frames_leaving -= pool->section_pages;
	pool->sections_online--;
	section_free(sec);
	mutex_unlock(&pool->lock);
	/* Only gives memory back: its free frames were cleared when freed. */
	os_memfd_punch(pool->memfd, (off_t)((unsigned long)s * pool->section_size),
		       pool->section_size);
	return 0;
}

/* ---- creation --------------------------------------------------------- */

static int config_resolve(const struct sp_pool_config *in, struct sp_pool_config *cfg)
{
	*cfg = in ? *in : (struct sp_pool_config){ 0 };
	if (!cfg->section_size)
		cfg->section_size = DEFAULT_SECTION_SIZE;
	if (!cfg->nr_sections)
		cfg->nr_sections = DEFAULT_NR_SECTIONS;
	if (!cfg->max_sections)
		cfg->max_sections = cfg->nr_sections;
	if (!cfg->nr_nodes)
		cfg->nr_nodes = (unsigned)os_nr_nodes();
	if (cfg->swap_path && !cfg->swap_size)
		cfg->swap_size = DEFAULT_SWAP_SIZE;

	if (cfg->section_size % PAGE_SIZE || cfg->max_sections < cfg->nr_sections ||
	    cfg->nr_nodes > MAX_NODES || (cfg->flags & ~POOL_FLAGS) ||
	    cfg->max_sections > MAX_POOL_BYTES / cfg->section_size ||
	    cfg->section_size > MAX_POOL_BYTES || cfg->swap_size % PAGE_SIZE ||
	    (!cfg->swap_path && cfg->swap_size) || (cfg->swap_path && !cfg->swap_path[0]))
		goto out_inval;
	return 0;

out_inval:
	errno = EINVAL;
	return -1;
}

/*
 * Every separately mapped page costs the kernel one vma. Say once, clearly,
 * how much of the pool can fragment into single-page mappings before mmap
 * fails, and how to raise the limit.
 */
/*
 * The worst case is a mapping per page: pages merged one by one, or swapped
 * out and back in one by one. With swap, regions can hold as many pages as
 * frames and slots together.
 */
static void check_max_map_count(struct sp_pool *pool)
{
	unsigned long pages = pool->max_sections * pool->section_pages + pool->swap.nr_slots;
	unsigned long want = pages + 2 * pool->max_sections + 4096;
	long max = os_max_map_count();

	pool->max_map_count = max;
	if (max < 0 || (unsigned long)max >= want)
		return;
	/* The pool's one line about the limit: merging that stops short of it says no more. */
	pool->map_warned = true;
	sp_log(SP_LOG_WARN,
	       "vm.max_map_count is %ld: at most %ld of the pool's %lu pages (%lu of %lu MiB%s) "
	       "can be mapped one by one after merging or swapping, and merging stops short of "
	       "it (merges_deferred counts what waits); raise it with 'sysctl -w "
	       "vm.max_map_count=%lu'",
	       max, max > 4096 ? max - 4096 : 0, pages,
	       (unsigned long)(max > 4096 ? max - 4096 : 0) * PAGE_SIZE >> 20,
	       pages * PAGE_SIZE >> 20, pool->swap.nr_slots ? ", swap included" : "", want);
}

static int pool_map(struct sp_pool *pool)
{
	pool->memfd = os_memfd_create("samepage", pool->dmap_len);
	if (pool->memfd < 0)
		return -1;
	pool->dmap = os_memfd_map(pool->memfd, pool->dmap_len);
	if (!pool->dmap)
		return -1;
	pool->pagemap = os_pagemap_open();
	if (pool->pagemap < 0)
		sp_log(SP_LOG_WARN,
		       "no /proc/self/pagemap (%s): copy-on-write goes unnoticed, and reclaim "
		       "finds every page cold",
		       strerror(errno));
	return 0;
}

static void pool_release(struct sp_pool *pool)
{
	int err = errno;

	if (pool->sections)
		for (unsigned s = 0; s < pool->max_sections; s++)
			section_free(&pool->sections[s]);
	free(pool->sections);
	if (pool->dmap)
		os_unmap(pool->dmap, pool->dmap_len);
	if (pool->memfd >= 0)
		close(pool->memfd);
	if (pool->pagemap >= 0)
		close(pool->pagemap);
	mutex_destroy(&pool->lock);
	mutex_destroy(&pool->mpol_lock);
	free(pool);
	errno = err;
}

/* SAMEPAGE_FAIL (os.h): fault injection for tests and soaks, said once so nobody wonders. */
static void fail_from_env(void)
{
	const char *spec = NULL, *bad = NULL;
	int ret = os_fail_from_env(&spec, &bad);

	if (ret > 0)
		sp_log(SP_LOG_WARN, "fault injection on: SAMEPAGE_FAIL=%s", spec);
	else if (ret < 0)
		sp_log(SP_LOG_ERR,
		       "SAMEPAGE_FAIL=%s: not understood from '%s'; injection stays off", spec,
		       bad ? bad : "");
}

static sp_pool *pool_create(const struct sp_pool_config *in)
{
	struct sp_pool_config cfg;
	struct sp_pool *pool;
	unsigned s;

	fail_from_env();
	if (config_resolve(in, &cfg))
		return NULL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->memfd = pool->pagemap = -1;
	pool->swap.fd = -1;
	mutex_init(&pool->lock, LOCK_POOL);
	mutex_init(&pool->mpol_lock, LOCK_MPOL);
	export_init(pool);
	pool->flags = cfg.flags;
	pool->section_size = cfg.section_size;
	pool->section_pages = cfg.section_size / PAGE_SIZE;
	pool->max_sections = cfg.max_sections;
	pool->nr_nodes = cfg.nr_nodes;
	pool->real_numa = cfg.nr_nodes > 1 && os_nr_nodes() >= (int)cfg.nr_nodes;
	pool->dmap_len = cfg.section_size * cfg.max_sections;
	pool->sections = calloc(cfg.max_sections, sizeof(*pool->sections));
	if (!pool->sections || pool_map(pool))
		goto out_release;
	for (s = 0; s < cfg.max_sections; s++)
		pool->sections[s].node = (int)(s % cfg.nr_nodes);
	for (s = 0; s < cfg.nr_sections; s++) {
		if (section_bring_online(pool, s))
			goto out_release;
		section_bind(pool, s);
	}
	if (swap_init(pool, cfg.swap_path, cfg.swap_size))
		goto out_release;
	check_max_map_count(pool);
	if (reclaim_init(pool))
		goto out_reclaim;
	if (region_table_init(pool))
		goto out_reclaim;
	if (ksm_init(pool))
		goto out_regions;
	if (hotplug_init(pool))
		goto out_ksm;
	if (fault_init(pool))
		goto out_ksm;
	if (ksm_start(pool))
		goto out_fault;
	if (reclaim_start(pool))
		goto out_ksmd;
	return pool;

out_ksmd:
	ksm_stop(pool);
out_fault:
	fault_exit(pool);
out_ksm:
	hotplug_exit(pool);
	ksm_exit(pool);
out_regions:
	region_table_exit(pool);
out_reclaim:
	reclaim_exit(pool);
	swap_exit(pool);
out_release:
	pool_release(pool);
	return NULL;
}

/* The lines it logged arrive before it returns, whether it made a pool or not. */
sp_pool *sp_pool_create(const struct sp_pool_config *in)
{
	sp_pool *pool = pool_create(in);
	int err = errno;

	log_flush();
	errno = err;
	return pool;
}

void sp_pool_destroy(sp_pool *pool)
{
	if (!pool)
		return;
	log_flush(); /* the pool's lines reach the hook while it is whole */
	export_exit(pool); /* no client sees a pool half gone */
	/*
	 * ksmd, then the reclaim thread: both use the fault machinery. Either
	 * still kicks or calls into reclaim, so reclaim's buffers and locks
	 * stay until reclaim_exit, after the last of them (the swap-in worker).
	 */
	ksm_stop(pool);
	reclaim_stop(pool);
	/* A thread still touching a region faults from here on: never wrong bytes. */
	region_table_close(pool);
	fault_exit(pool);
	reclaim_exit(pool); /* the swap-in worker reclaimed for itself until now */
	hotplug_exit(pool);
	ksm_exit(pool);
	region_table_exit(pool);
	swap_exit(pool);
	pool_release(pool);
	log_flush();
}
