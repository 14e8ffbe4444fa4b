/* SPDX-License-Identifier: MIT */
/*
 * Regions: what sp_alloc returns. A region is a run of address space whose
 * pages are mapped from pool frames, with a page table saying what backs
 * each page.
 *
 * Locking: rt.lock (a rwlock) is the mmap_lock analogue. Readers: anything
 * that follows an address or a frame owner to a region and works on its pages
 * (lookups, the scanner, migration) holds it for read across the whole page
 * operation, so a region cannot be freed under it. Writers: sp_alloc and
 * sp_free, only to insert or unlink; the slow work (mapping, punching) runs
 * outside it. Its place in the lock order: lock.h.
 *
 * Page table entries change only under the frame lock of the frame they name
 * (or, for a region not yet published or already unlinked, by its owner
 * alone), and are read with atomic loads.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gup.h"
#include "log.h"
#include "pool.h"

/* ---- the mapping budget ----------------------------------------------- */

/*
 * The kernel counts vmas per process and fails a mapping past
 * vm.max_map_count; every mapping the pool makes or removes goes through
 * os.c, which counts the growth high (os_map_growth). The budget is the
 * kernel's count at the last look plus that growth, so it errs towards no.
 * Counting /proc/self/maps costs milliseconds at 65,530 vmas: merging looks
 * again only when the estimate says no and it grew by MAPS_RESYNC_GROWTH or
 * MAPS_RESYNC_MS went by since the last look; sp_stat always looks.
 *
 * Merging stops MAPS_RESERVE short of the limit (twice that for merges
 * that save less than two pages per mapping), so that unmerge, restoring a
 * page, swap-in, migration and sp_alloc find mappings when they need them:
 * each of those maps over vmas merging made, or maps runs.
 */
#define MAPS_RESYNC_GROWTH 256
#define MAPS_RESYNC_MS 1000
#define MAPS_RESERVE(max) ((max) / 32 > 1024 ? (max) / 32 : 1024)

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Take the kernel's count: of the process, and of the n ranges. m->lock held. */
static void maps_sync(struct sp_maps *m, const struct os_range *r, size_t n)
{
	long growth = os_map_growth(), in = 0, total = os_maps_count(r, n, &in);

	if (total < 0)
		return;
	m->total = total;
	m->growth = growth;
	if (n)
		m->pool = in;
	m->synced_ms = now_ms();
}

static void maps_init(struct sp_pool *pool)
{
	struct sp_maps *m = &pool->rt.maps;

	mutex_init(&m->lock, LOCK_MAPS);
	m->max = pool->max_map_count;
	m->reserve = m->max > 0 ? MAPS_RESERVE(m->max) : 0;
	/* Said at creation already: deferred merges are what that warning told of. */
	if (pool->map_warned)
		m->logged = 1u << MAPS_DEFERRED;
	maps_sync(m, NULL, 0);
}

/* Say it once per pool and cause; the counters say how often. */
static bool maps_once(struct sp_maps *m, enum maps_cause cause)
{
	unsigned bit = 1u << cause;

	return !(atomic_fetch_or(&m->logged, bit) & bit);
}

bool maps_room(struct sp_pool *pool, long need, bool priority, long nr)
{
	struct sp_maps *m = &pool->rt.maps;
	long cap = m->max - m->reserve * (priority ? 1 : 2), grown;
	bool ok;

	if (m->max <= 0)
		return true;
	mutex_lock(&m->lock);
	grown = os_map_growth() - m->growth;
	ok = m->total + grown + need <= cap;
	if (!ok && (grown >= MAPS_RESYNC_GROWTH || now_ms() - m->synced_ms >= MAPS_RESYNC_MS)) {
		maps_sync(m, NULL, 0);
		ok = m->total + need <= cap;
	}
	mutex_unlock(&m->lock);
	if (ok)
		return true;
	atomic_fetch_add(&m->deferred, nr);
	if (maps_once(m, MAPS_DEFERRED))
		sp_log(SP_LOG_WARN,
		       "merging stops %ld mappings short of vm.max_map_count (%ld), kept for "
		       "unmerging, swap and sp_alloc: merges wait (merges_deferred counts them); "
		       "raise it with 'sysctl -w vm.max_map_count=N'",
		       m->reserve, m->max);
	return false;
}

void maps_failed(struct sp_pool *pool, enum maps_cause cause)
{
	struct sp_maps *m = &pool->rt.maps;

	atomic_fetch_add(&m->failures, 1);
	if (maps_once(m, cause))
		sp_log(SP_LOG_ERR,
		       "out of mappings: vm.max_map_count is %ld; what needed one was undone "
		       "or waits (map_failures counts them); raise it with 'sysctl -w "
		       "vm.max_map_count=N'",
		       m->max);
}

static int range_cmp(const void *a, const void *b)
{
	const struct os_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

long maps_count(struct sp_pool *pool, long *limit)
{
	struct sp_maps *m = &pool->rt.maps;
	struct os_range *r;
	size_t n = 0;
	long ret = -1;

	rwlock_rdlock(&pool->rt.lock);
	r = malloc((pool->rt.nr + 1) * sizeof(*r));
	if (!r)
		goto out_unlock;
	r[n++] = (struct os_range){ (uintptr_t)pool->dmap, (uintptr_t)pool->dmap + pool->dmap_len };
	for (unsigned i = 0; i < pool->rt.nr; i++, n++)
		r[n] = (struct os_range){ (uintptr_t)pool->rt.sorted[i]->start,
					  (uintptr_t)pool->rt.sorted[i]->start +
						  pool->rt.sorted[i]->len };
	qsort(r, n, sizeof(*r), range_cmp);
	mutex_lock(&m->lock);
	m->pool = -1;
	maps_sync(m, r, n);
	ret = m->pool;
	if (limit)
		*limit = m->max > 0 && ret >= 0 ? m->max - (m->total - ret) - m->reserve : -1;
	mutex_unlock(&m->lock);
	free(r);
out_unlock:
	rwlock_unlock(&pool->rt.lock);
	return ret;
}

int region_table_init(struct sp_pool *pool)
{
	struct sp_region_table *rt = &pool->rt;

	pthread_rwlockattr_t attr;
	int err;

	memset(rt, 0, sizeof(*rt));
	/*
	 * Writers first: the scanner and migrations read-lock it back to back,
	 * and sp_alloc/sp_free must not starve behind them. Nobody read-locks
	 * it twice, which writer preference would turn into a deadlock.
	 */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	err = rwlock_init(&rt->lock, LOCK_REGIONS, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (err)
		return -1;
	maps_init(pool);
	return 0;
}

static void region_destroy(struct sp_region *r)
{
	free((void *)r->pte);
	free(r->domain);
	free(r->items);
	free(r->policies);
	free((void *)r->pins);
	free(r);
}

void region_table_exit(struct sp_pool *pool)
{
	struct sp_region_table *rt = &pool->rt;

	for (unsigned i = 0; i < rt->nr; i++) {
		os_unmap(rt->sorted[i]->start, rt->sorted[i]->len);
		region_destroy(rt->sorted[i]);
	}
	free(rt->sorted);
	free(rt->by_id);
	rwlock_destroy(&rt->lock);
	mutex_destroy(&rt->maps.lock);
}

/* Index of the first region that starts above addr. */
static unsigned upper_bound(struct sp_region_table *rt, const void *addr)
{
	unsigned lo = 0, hi = rt->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if ((const char *)addr < rt->sorted[mid]->start)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/*
 * The pool is going (sp_pool_destroy): before the fault machinery stops,
 * every region becomes an inaccessible reservation, and no lookup finds a
 * region any more, so that no fault still being served maps a frame back.
 * A thread that touches a region from here on faults (SIGSEGV). Were the
 * userfaultfd closed first, a swapped page's empty stand-in mapping would
 * read as the zero page. The reservations go with region_table_exit.
 */
void region_table_close(struct sp_pool *pool)
{
	struct sp_region_table *rt = &pool->rt;

	rwlock_wrlock(&rt->lock);
	rt->closed = true;
	for (unsigned i = 0; i < rt->nr; i++)
		if (os_map_none(rt->sorted[i]->start, rt->sorted[i]->len))
			os_unmap(rt->sorted[i]->start, rt->sorted[i]->len);
	rwlock_unlock(&rt->lock);
}

struct sp_region *region_find(struct sp_pool *pool, const void *addr)
{
	unsigned i = upper_bound(&pool->rt, addr);
	struct sp_region *r;

	if (!i || pool->rt.closed)
		return NULL;
	r = pool->rt.sorted[i - 1];
	return (const char *)addr < r->start + r->len ? r : NULL;
}

struct sp_region *region_next(struct sp_pool *pool, uintptr_t addr)
{
	unsigned i = upper_bound(&pool->rt, (const void *)addr);
	struct sp_region *r;

	if (pool->rt.closed)
		return NULL;
	if (i) {
		r = pool->rt.sorted[i - 1];
		if (addr < (uintptr_t)r->start + r->len)
			return r;
	}
	return i < pool->rt.nr ? pool->rt.sorted[i] : NULL;
}

struct sp_region *region_by_id(struct sp_pool *pool, uint32_t id)
{
	return id < pool->rt.id_cap && !pool->rt.closed ? pool->rt.by_id[id] : NULL;
}

struct sp_region *region_range(struct sp_pool *pool, void *addr, size_t len, unsigned long *first,
			       unsigned long *nr)
{
	struct sp_region *r;

	if (((uintptr_t)addr & (PAGE_SIZE - 1)) || !len || len > SIZE_MAX - PAGE_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	r = region_find(pool, addr);
	if (!r || len > (size_t)(r->start + r->len - (char *)addr)) {
		errno = ENOMEM; /* as madvise(2) says of unmapped ranges */
		return NULL;
	}
	*first = region_index(r, addr);
	*nr = (len + PAGE_SIZE - 1) / PAGE_SIZE;
	return r;
}

/* Make room for one more region in both indexes; rt.lock held for write. */
static int table_reserve(struct sp_region_table *rt)
{
	if (rt->nr == rt->cap) {
		unsigned cap = rt->cap ? rt->cap * 2 : 64;
		struct sp_region **n = realloc(rt->sorted, cap * sizeof(*n));

		if (!n)
			return -1;
		rt->sorted = n;
		rt->cap = cap;
	}
	if (rt->nr == rt->id_cap) {
		unsigned cap = rt->id_cap ? rt->id_cap * 2 : 64;
		struct sp_region **n = realloc(rt->by_id, cap * sizeof(*n));

		if (!n)
			return -1;
		memset(n + rt->id_cap, 0, (cap - rt->id_cap) * sizeof(*n));
		rt->by_id = n;
		rt->id_cap = cap;
	}
	return 0;
}

static int table_insert(struct sp_pool *pool, struct sp_region *r)
{
	struct sp_region_table *rt = &pool->rt;
	unsigned i;

	if (table_reserve(rt)) {
		errno = ENOMEM;
		return -1;
	}
	/* Every sp_alloc, lazy or not: frames taken now may be the ones others count on. */
	if (commit_charge(pool, r->npages))
		return -1;
	while (rt->by_id[rt->next_id % rt->id_cap])
		rt->next_id++;
	r->id = rt->next_id++ % rt->id_cap;
	rt->by_id[r->id] = r;
	i = upper_bound(rt, r->start);
	memmove(&rt->sorted[i + 1], &rt->sorted[i], (rt->nr - i) * sizeof(*rt->sorted));
	rt->sorted[i] = r;
	rt->nr++;
	return 0;
}

static void table_unlink(struct sp_pool *pool, struct sp_region *r)
{
	struct sp_region_table *rt = &pool->rt;
	unsigned i = upper_bound(rt, r->start) - 1;

	memmove(&rt->sorted[i], &rt->sorted[i + 1], (rt->nr - i - 1) * sizeof(*rt->sorted));
	rt->nr--;
	rt->by_id[r->id] = NULL;
	commit_uncharge(pool, r->npages);
}

/* Frames of a region that is not (or no longer) visible to anyone else. */
static void region_free_frames(struct sp_pool *pool, struct sp_region *r)
{
	unsigned long *pfns = malloc(r->npages * sizeof(*pfns)), n = 0;

	for (unsigned long i = 0; i < r->npages; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);

		if (pte_type(pte) == PTE_SWAP &&
		    !(pte & PTE_KSMSWAP)) /* a KSM slot is its node's */
			swap_slot_free(pool, pte_val(pte));
		if (pte_type(pte) != PTE_PRIVATE)
			continue;
		if (pfns)
			pfns[n++] = pte_val(pte);
		else
			frames_free_run(pool, pte_val(pte), 1);
	}
	if (pfns)
		frames_free_pfns(pool, pfns, n);
	free(pfns);
}

static void region_unlink(struct sp_pool *pool, struct sp_region *r)
{
	rwlock_wrlock(&pool->rt.lock);
	table_unlink(pool, r);
	rwlock_unlock(&pool->rt.lock);
}

/*
 * A region unlinked under the write lock (so no page operation is inside it
 * any more): under the KSM mutex, which the caller holds from before the
 * unlink, its KSM sharers leave their frames.
 */
static void region_release_ksm(struct sp_pool *pool, struct sp_region *r)
{
	rwlock_rdlock(&pool->rt.lock);
	ksm_region_release(pool, r);
	rwlock_unlock(&pool->rt.lock);
}

/* Then, with no lock held, its mapping, frames and slots go back. */
static void region_release(struct sp_pool *pool, struct sp_region *r)
{
	os_unmap(r->start, r->len);
	region_free_frames(pool, r);
}

/* Runs onto the region in order; on failure, *mapped: how many runs are the region's. */
static int region_map(struct sp_pool *pool, struct sp_region *r, struct sp_run *runs,
		      unsigned nr_runs, uint64_t pte_flags, unsigned *mapped)
{
	unsigned long idx = 0;

	for (unsigned k = 0; k < nr_runs; k++) {
		char *at = page_addr(r, idx);

		/* Each run guardable before its entries say PRIVATE, and reclaim may act on them. */
		*mapped = k;
		if (fault_map(pool, at, runs[k].nr << PAGE_SHIFT, runs[k].pfn, true))
			return -1;
		for (unsigned long j = 0; j < runs[k].nr; j++, idx++) {
			struct sp_page *page = pfn_to_page(pool, runs[k].pfn + j);

			page->owner = r->id;
			page->index = (uint32_t)idx;
			page->mapcount = 1;
			atomic_store(&page->refcount, 1);
			atomic_store(&r->pte[idx], mk_pte(PTE_PRIVATE, runs[k].pfn + j, pte_flags));
		}
	}
	return 0;
}

/*
 * Too few free frames for the region now: its pages get theirs at first
 * touch (PTE_NONE, missing mode), and reclaim makes room meanwhile. Only
 * where pages can go to swap and come back; the region's pages were
 * charged already (table_insert), so any of them can be touched: the
 * kernel's strict overcommit.
 */
static int region_map_lazy(struct sp_pool *pool, struct sp_region *r, uint64_t pte_flags)
{
	if (pool->swap.fd < 0 || !fault_can_swap(pool))
		goto out_nomem;
	if (fault_remap_missing(pool, r->start, r->len))
		return -1;
	for (unsigned long i = 0; i < r->npages; i++)
		atomic_store(&r->pte[i], mk_pte(PTE_NONE, 0, pte_flags));
	reclaim_kick(pool);
	return 0;

out_nomem:
	errno = ENOMEM;
	return -1;
}

/*
 * Frames are chosen now, in as few runs as the free maps allow, so that the
 * region maps with one vma per run; their memory is allocated by the kernel
 * on first touch (the frames are holes), so first touch costs a plain shmem
 * fault and no round trip through samepage.
 */
void *sp_alloc(sp_pool *pool, size_t len, unsigned flags)
{
	uint64_t pte_flags = (flags & SP_MERGEABLE) ? PTE_MERGEABLE : 0;
	struct sp_run *runs = NULL;
	unsigned nr_runs, mapped = 0;
	struct sp_region *r;
	int err;

	if (!pool || !len || (flags & ~(SP_MERGEABLE | SP_POPULATE | SP_PINNED)) ||
	    (flags & (SP_MERGEABLE | SP_PINNED)) == (SP_MERGEABLE | SP_PINNED)) {
		errno = EINVAL;
		return NULL;
	}
	if (len > SIZE_MAX - PAGE_SIZE || len / PAGE_SIZE > UINT32_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->npages = (len + PAGE_SIZE - 1) / PAGE_SIZE;
	r->len = r->npages << PAGE_SHIFT;
	r->flags = flags & (SP_MERGEABLE | SP_PINNED);
	r->pte = calloc(r->npages, sizeof(*r->pte));
	if (!r->pte || pins_init(r))
		goto out_free;
	r->start = os_reserve(r->len);
	if (!r->start)
		goto out_free;

	rwlock_wrlock(&pool->rt.lock);
	err = table_insert(pool, r);
	rwlock_unlock(&pool->rt.lock);
	if (err)
		goto out_unmap;
	/* Published, but every pte is PTE_NONE until mapped: nobody acts on it. */
	if (flags & SP_PINNED) {
		/* Frames now, from unmovable sections: nothing may move them later. */
		if (frames_alloc_pinned(pool, r->npages, &runs, &nr_runs))
			goto out_unlink;
		if (region_map(pool, r, runs, nr_runs, pte_flags, &mapped))
			goto out_frames;
	} else if (frames_alloc(pool, -1, r->npages, &runs, &nr_runs)) {
		if (errno != ENOMEM || region_map_lazy(pool, r, pte_flags))
			goto out_unlink;
	} else if (region_map(pool, r, runs, nr_runs, pte_flags, &mapped)) {
		goto out_frames;
	}
	free(runs);
	if ((flags & SP_POPULATE) && os_populate(r->start, r->len, true))
		sp_log(SP_LOG_WARN, "populating %zu bytes: %s", r->len, strerror(errno));
	if (flags & SP_MERGEABLE)
		ksm_kick(pool); /* an idle ksmd has something to scan again */
	return r->start;

out_frames:
	/*
	 * The runs mapped already were the region's: reclaim, ksmd or an
	 * offline may have acted on them since. They go as sp_free's do; the
	 * others were nobody's.
	 */
	err = errno;
	mutex_lock(&pool->ksm.mutex);
	region_unlink(pool, r);
	region_release_ksm(pool, r);
	mutex_unlock(&pool->ksm.mutex);
	region_release(pool, r);
	for (unsigned k = mapped; k < nr_runs; k++)
		frames_free_run(pool, runs[k].pfn, runs[k].nr);
	free(runs);
	errno = err;
	goto out_free;
out_unlink:
	err = errno;
	region_unlink(pool, r);
	errno = err;
out_unmap:
	os_unmap(r->start, r->len);
out_free:
	err = errno;
	region_destroy(r);
	errno = err;
	return NULL;
}

int sp_free(sp_pool *pool, void *addr)
{
	struct sp_region *r;

	if (!pool || !addr) {
		errno = EINVAL;
		return -1;
	}
	mutex_lock(&pool->ksm.mutex);
	rwlock_wrlock(&pool->rt.lock);
	r = region_find(pool, addr);
	if (!r || r->start != (char *)addr) {
		rwlock_unlock(&pool->rt.lock);
		mutex_unlock(&pool->ksm.mutex);
		errno = EINVAL;
		return -1;
	}
	table_unlink(pool, r);
	rwlock_unlock(&pool->rt.lock);
	region_release_ksm(pool, r);
	mutex_unlock(&pool->ksm.mutex);
	region_release(pool, r);
	region_destroy(r);
	return 0;
}

int sp_madvise(sp_pool *pool, void *addr, size_t len, int advice)
{
	unsigned long first, nr;
	struct sp_region *r;
	int ret = 0;

	if (!pool || (advice != SP_MADV_MERGEABLE && advice != SP_MADV_UNMERGEABLE)) {
		errno = EINVAL;
		return -1;
	}
	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	if (!r)
		ret = -1;
	else if (advice == SP_MADV_UNMERGEABLE)
		ret = ksm_unmerge_range(pool, r, first, nr);
	for (unsigned long i = first; !ret && i < first + nr; i++) {
		if (advice == SP_MADV_MERGEABLE)
			atomic_fetch_or(&r->pte[i], PTE_MERGEABLE);
		else
			atomic_fetch_and(&r->pte[i], ~PTE_MERGEABLE);
	}
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&pool->ksm.mutex);
	if (!ret && advice == SP_MADV_MERGEABLE)
		ksm_kick(pool);
	return ret;
}

bool region_mark_lost(struct sp_pool *pool, struct sp_region *r, unsigned long idx, unsigned long n)
{
	int err = errno; /* called on error paths: the caller's errno is the answer */
	bool any = false;

	for (unsigned long i = idx; i < idx + n && i < r->npages; i++) {
		if (!os_all_mapped(page_addr(r, i), PAGE_SIZE) &&
		    !(atomic_fetch_or(&r->pte[i], PTE_LOST) & PTE_LOST)) {
			atomic_fetch_add(&pool->pages_unmapped, 1);
			any = true;
		}
	}
	if (any && !r->lost_logged) {
		r->lost_logged = true; /* once per region: the count is in pages_unmapped */
		sp_log(SP_LOG_WARN,
		       "pages of the region at %p were unmapped behind samepage's "
		       "back: left alone",
		       (void *)r->start);
	}
	errno = err;
	return any;
}

/* The frame behind addr, -1 with errno if there is none. */
static long frame_of(struct sp_pool *pool, const void *addr, bool *ksm)
{
	struct sp_region *r;
	uint64_t pte;

	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	rwlock_rdlock(&pool->rt.lock);
	r = region_find(pool, addr);
	pte = r ? atomic_load(&r->pte[region_index(r, addr)]) : 0;
	rwlock_unlock(&pool->rt.lock);
	if (!r) {
		errno = EINVAL;
		return -1;
	}
	if (ksm) /* the zero page merges too, and a merged page stays merged in swap */
		*ksm = pte_type(pte) == PTE_KSM || pte_type(pte) == PTE_ZERO ||
		       (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP));
	if (pte_type(pte) != PTE_PRIVATE && pte_type(pte) != PTE_KSM) {
		errno = ENOENT; /* copied by the kernel, or swapped: no frame */
		return -1;
	}
	return (long)pte_val(pte);
}

int sp_page_node(sp_pool *pool, const void *addr)
{
	long pfn = frame_of(pool, addr, NULL);

	return pfn < 0 ? -1 : pool->sections[pfn_to_section(pool, (unsigned long)pfn)].node;
}

int sp_page_section(sp_pool *pool, const void *addr)
{
	long pfn = frame_of(pool, addr, NULL);

	return pfn < 0 ? -1 : (int)pfn_to_section(pool, (unsigned long)pfn);
}

int sp_page_is_ksm(sp_pool *pool, const void *addr)
{
	bool ksm = false;

	if (frame_of(pool, addr, &ksm) < 0 && errno != ENOENT)
		return -1;
	return ksm;
}
