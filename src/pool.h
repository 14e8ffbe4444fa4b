/* SPDX-License-Identifier: MIT */
/*
 * The pool: physical memory of samepage. Frames, sections, nodes, and the
 * struct sp_pool that ties every subsystem together. Locking rules live at
 * the top of pool.c.
 */
#ifndef SP_POOL_H
#define SP_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "samepage.h"
#include "fault.h"
#include "hotplug.h"
#include "ksm.h"
#include "os.h"
#include "region.h"

_Static_assert(PAGE_SIZE == SP_PAGE_SIZE, "the pool's page is the API's page");

#define MAX_POOL_BYTES (1ul << 40) /* 1 TiB of frames: pfns fit 28 bits */
#define MAX_POOL_FRAMES (MAX_POOL_BYTES >> PAGE_SHIFT)

/* Frame flags: struct sp_page.flags, the struct page->flags analogue. */
enum {
	PG_locked = 1u << 0, /* frame lock held (merge, migration, swap) */
	PG_waiters = 1u << 1, /* someone sleeps on PG_locked */
	PG_used = 1u << 2, /* allocated: not on a free map */
	PG_ksm = 1u << 3, /* a KSM frame: mapped MAP_PRIVATE by its sharers */
	PG_reserved = 1u << 4, /* never moves, never freed (the zero frame) */
	PG_isolated = 1u << 5, /* taken by a migration */
};

/*
 * Frame descriptor, 16 bytes per 4 KiB frame. The owner is a number, not a
 * pointer, for the same reason the seed makes a stable node hold a pfn: the
 * thing it names can go away (a freed region, an offlined section) while
 * someone still holds the number, and a number can be checked.
 */
struct sp_page {
	_Atomic uint32_t flags;
	_Atomic uint32_t refcount;
	uint32_t mapcount;
	/*
	 * Atomic: a migration reads them of any frame in use, racing the owner
	 * that is still setting them up, and trusts them only after checking
	 * the page table under the frame lock.
	 */
	_Atomic uint32_t owner; /* private frame: region id; KSM frame: stable node id */
	_Atomic uint32_t index; /* private frame: page index within the region */
};

enum sp_section_state { SECTION_OFFLINE, SECTION_ONLINE, SECTION_GOING_OFFLINE };

struct sp_section {
	enum sp_section_state state;
	int node;
	bool isolated; /* no allocation from it (going offline) */
	/*
	 * ZONE_NORMAL (onlined with sp_section_online_unmovable): the only
	 * home of pinned-for-life regions' frames. Other frames come from
	 * movable sections first (ZONE_MOVABLE), from these when those are full.
	 */
	bool unmovable;
	struct sp_page *pages; /* descriptors, NULL while offline */
	uint64_t *free_map; /* bit set: frame free */
	unsigned long nr_free;
	unsigned long hint; /* no free frame below it */
};

/* A run of consecutive frames: the unit of allocation, mapping and punching. */
struct sp_run {
	unsigned long pfn;
	unsigned long nr;
};

/* The swap area (swap.c). */
struct sp_swap {
	struct sp_mutex lock; /* the slot map; a leaf */
	int fd; /* -1: no swap; holds the file's lock (OFD) while the pool lives */
	int dirfd; /* the directory the file is in (O_PATH): a chdir cannot fool us */
	char *path; /* as given, for messages */
	const char *name; /* in path: the file's name in dirfd */
	unsigned long nr_slots, used, hint;
	uint64_t *map; /* bit set: slot in use */
	uint64_t *sum; /* XXH3 of each slot's page */
	char *readahead; /* the swap-in worker's read-ahead buffer */
	uintptr_t ra_next; /* where a sequential reader faults next (worker only) */
	unsigned long ra_win; /* its read-ahead window, pages */
	bool ra_prefetch; /* it is sequential: the next window may come early */
	_Atomic long errors;
	_Atomic long pages_out; /* pages written out, ever */
};

int swap_init(struct sp_pool *pool, const char *path, size_t size);
void swap_exit(struct sp_pool *pool);
void swap_slot_free(struct sp_pool *pool, unsigned long slot);
long swap_slots_used(struct sp_pool *pool);
/* 0 if pages of pool can be swapped; else -1: EINVAL, ENOSPC (no area), ENOTSUP. */
int swap_usable(struct sp_pool *pool);
long swap_write(struct sp_pool *pool, const void *src);
int swap_read(struct sp_pool *pool, unsigned long slot, void *buf);
long swap_copy(struct sp_pool *pool, unsigned long slot);
int swap_fault(struct sp_pool *pool, uintptr_t addr);
void swap_prefetch(struct sp_pool *pool); /* the worker, when idle */
/* Private pages idx..idx+n of r, frames locked by the caller: out (swap.c says how). */
long swap_out_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx, unsigned long n,
		  unsigned long *f0);

/* Reclaim (vmscan.c). */
struct sp_reclaim {
	struct sp_mutex lock; /* one reclaimer at a time; the clock hand */
	struct sp_mutex wait_lock; /* the thread's sleep; a leaf */
	pthread_cond_t cond;
	_Atomic bool thread_started; /* read by reclaim_kick from any thread */
	bool stop, kick;
	_Atomic bool awake; /* the thread is not asleep: kicks need not wake it */
	pthread_t thread;
	uintptr_t hand; /* where the clock is: an address in the regions */
	uint64_t *pm; /* pagemap entries of one step */
	struct iovec *iov; /* referenced runs of one step */
	unsigned nr_iov;
	unsigned long *freed, nr_freed; /* frames one step freed */
	int pidfd; /* ours, for process_madvise; -1: madvise per run */
	_Atomic long low, high; /* watermarks in frames; -1: automatic */
	_Atomic long scanned, reclaimed, direct, wakeups;
};

int reclaim_init(struct sp_pool *pool);
int reclaim_start(struct sp_pool *pool);
/*
 * The thread stops (it uses the fault machinery, so it stops before that
 * does); the buffers and the lock stay for those who still reclaim for
 * themselves (the swap-in worker) until reclaim_exit, after them.
 */
void reclaim_stop(struct sp_pool *pool);
void reclaim_exit(struct sp_pool *pool);
/* Free up to want frames on nodes of mask now; rt.lock held (read). Frames freed. */
long reclaim_direct(struct sp_pool *pool, unsigned long want, unsigned long mask);

/*
 * Frames for pages (swap-in, first touch, unmerge, a copied page brought
 * back, a swapped KSM frame): the one allocation path that may reclaim, the
 * kernel's __alloc_pages_slowpath. Nodes of mask (NODES_ALL: any), prefer's
 * first; when no node of mask has memory left (its sections went offline),
 * any node, as the kernel ignores a BIND mask with no memory. *nr frames
 * all-or-nothing, else one (*nr says). rt.lock held (read), no frame lock.
 * -1 with ENOMEM when nothing is free and nothing can be reclaimed where the
 * page may go: why (if not NULL) then says which, for the log.
 */
#define ALLOC_RECLAIM 1u /* may reclaim (a prefetch may not) */
int frames_alloc_page(struct sp_pool *pool, unsigned long mask, int prefer, unsigned long *nr,
		      struct sp_run **runs, unsigned *nr_runs, unsigned flags, char *why,
		      size_t why_len);
long frame_alloc_page(struct sp_pool *pool, unsigned long mask, int prefer);
/*
 * A fault found no frame where it may go, and reclaim freed nothing there:
 * were the pages there only busy (locked by a move, a swap-out, an unmerge
 * holding the KSM mutex), or is there no room to swap to? With room, sleep a
 * little (the caller holds no lock, so the holders can finish) and say
 * true: look again. false once swap is full or the wait is over (*waited_ms,
 * 0 at first, keeps the account).
 */
bool reclaim_wait(struct sp_pool *pool, unsigned *waited_ms);
/* The thread's watermarks, in frames; pool->lock held. */
unsigned long reclaim_low(struct sp_pool *pool);
unsigned long reclaim_high(struct sp_pool *pool);
/* Free frames fell below the low watermark: wake the thread. No lock held. */
void reclaim_kick(struct sp_pool *pool);
/* The i-th watermark knob's name (NULL past the end); a knob's range and default. */
const char *reclaim_knob_name(unsigned i);
int reclaim_knob_range(const char *name, long *min, long *max, long *def);

/* The control socket (export.c). */
struct export_srv;

struct sp_export {
	struct sp_mutex lock;
	struct export_srv *srv; /* NULL: not exported */
};

void export_init(struct sp_pool *pool);
void export_exit(struct sp_pool *pool);

struct sp_pool {
	unsigned flags;
	int memfd;
	char *dmap; /* direct map: the whole memfd, read-write, engine only */
	size_t dmap_len;
	int pagemap; /* /proc/self/pagemap: copy-on-write, the reclaim clock; -1: none */
	size_t section_size;
	unsigned long section_pages;
	unsigned max_sections;
	unsigned nr_nodes;
	bool real_numa; /* sections are mbind()-ed to machine nodes */

	struct sp_mutex lock; /* pool lock: free maps, section states, totals */
	struct sp_mutex mpol_lock; /* sp_mbind, one at a time (mempolicy.c) */
	struct sp_section *sections;
	unsigned sections_online;
	unsigned long frames_total; /* frames of online sections */
	unsigned long frames_free; /* free frames that may be allocated */
	unsigned long frames_leaving; /* frames of sections going offline */

	struct sp_region_table rt;
	struct sp_hotplug hotplug;
	struct sp_export export;
	struct sp_swap swap;
	struct sp_fault fault;
	struct sp_ksm ksm;
	struct sp_reclaim reclaim;

	long max_map_count;
	bool map_warned; /* the limit was said at creation */
	_Atomic long pages_migrated;
	_Atomic long faults_cow;
	_Atomic long faults_swapin;
	_Atomic long faults_alloc; /* frames given at first touch (pages that had none) */
	_Atomic long pages_unmapped; /* found unmapped behind our back */
	_Atomic long moving; /* movers between move_begin and move_end (gup.c) */
};

static inline void *pfn_to_virt(struct sp_pool *pool, unsigned long pfn)
{
	return pool->dmap + (pfn << PAGE_SHIFT);
}

static inline unsigned pfn_to_section(struct sp_pool *pool, unsigned long pfn)
{
	return (unsigned)(pfn / pool->section_pages);
}

/* Descriptor of a frame in an online section; NULL for any other pfn. */
struct sp_page *pfn_to_page(struct sp_pool *pool, unsigned long pfn);

/*
 * Frame allocation, by runs, from the free maps only (no reclaim): the
 * preferred node's sections first (-1: the pool's order). All-or-nothing:
 * -1 with ENOMEM leaves no frame taken. _mask: only sections on a node of
 * mask (NODES_ALL: any).
 */
#define NODES_ALL (~0ul)
int frames_alloc(struct sp_pool *pool, int node, unsigned long nr, struct sp_run **runs,
		 unsigned *nr_runs);
int frames_alloc_mask(struct sp_pool *pool, unsigned long mask, int prefer, unsigned long nr,
		      struct sp_run **runs, unsigned *nr_runs);
/* For a pinned-for-life region: frames from unmovable sections only. */
int frames_alloc_pinned(struct sp_pool *pool, unsigned long nr, struct sp_run **runs,
			unsigned *nr_runs);
long frame_alloc(struct sp_pool *pool, int node);
/* Some section on a node of mask is online and not going offline. */
bool nodes_have_memory(struct sp_pool *pool, unsigned long mask);
/* Frame pfn itself if it is free (-1, ENOMEM if not): a page's mapping can then join its neighbours'. */
long frame_alloc_at(struct sp_pool *pool, unsigned long pfn);
/*
 * The highest free frame on a node of mask, prefer's sections first: for a
 * page whose neighbours' frames are taken, away from the frames merging
 * freed among a region's, which its neighbours may want back.
 */
long frame_alloc_far(struct sp_pool *pool, unsigned long mask, int prefer);
/* Return frames: their memory goes back to the OS first, then to the free maps. */
void frames_free_run(struct sp_pool *pool, unsigned long pfn, unsigned long nr);
void frames_free_pfns(struct sp_pool *pool, unsigned long *pfns, unsigned long nr);

/* The frame lock, PG_locked: sleeps (futex) when contended. Ranked in lock.h. */
void frame_lock_at(struct sp_pool *pool, unsigned long pfn, const char *func);
bool frame_trylock_at(struct sp_pool *pool, unsigned long pfn, const char *func);
void frame_unlock_at(struct sp_pool *pool, unsigned long pfn, const char *func);
#define frame_lock(pool, pfn) frame_lock_at(pool, pfn, __func__)
#define frame_trylock(pool, pfn) frame_trylock_at(pool, pfn, __func__)
#define frame_unlock(pool, pfn) frame_unlock_at(pool, pfn, __func__)

long pool_bytes_resident(struct sp_pool *pool);

/* Sections (hotplug.c drives them; pool.c owns their state). */
int section_online(struct sp_pool *pool, unsigned s);
int section_online_unmovable(struct sp_pool *pool, unsigned s);
/*
 * No allocation from section s (or again). Isolating fails with ENOMEM when
 * what is committed would not fit without the section (commit_charge).
 */
int section_isolate(struct sp_pool *pool, unsigned s, bool isolate);
unsigned long section_used(struct sp_pool *pool, unsigned s, unsigned long *pfns);
int section_remove(struct sp_pool *pool, unsigned s);

/*
 * Strict overcommit (pool.c says where it applies and why the slack): charge
 * a new region's pages, -1 with ENOMEM if they do not fit in frames and swap
 * less COMMIT_SLACK; give them back.
 */
#define COMMIT_SLACK 16
int commit_charge(struct sp_pool *pool, unsigned long npages);
void commit_uncharge(struct sp_pool *pool, unsigned long npages);

/* True if the frame's memory was never touched (or was punched): it reads zeros. */
bool frame_is_hole(struct sp_pool *pool, unsigned long pfn);

#endif
