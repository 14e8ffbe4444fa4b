/* SPDX-License-Identifier: MIT */
/* Regions (the vma analogue) and their page tables. Rules at the top of region.c. */
#ifndef SP_REGION_H
#define SP_REGION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "os.h"

struct sp_pool;
struct ksm_item;

/*
 * A page table entry: type in the low bits, per-page flags, then the value
 * (a pfn or a swap slot). 8 bytes per page.
 */
enum sp_pte_type {
	PTE_NONE = 0, /* no frame: reads zeros, and gets one at first touch (missing mode) */
	PTE_PRIVATE = 1, /* private frame, mapped MAP_SHARED */
	PTE_KSM = 2, /* KSM frame, mapped MAP_PRIVATE */
	PTE_COPIED = 3, /* the kernel copied it on write: an anonymous page */
	PTE_SWAP = 4, /* a private page in a swap slot; no frame (missing mode) */
	PTE_MIGRATION = 5, /* a migration holds it */
	PTE_ZERO = 6, /* merged with the zero page (use_zero_pages): anonymous */
};
#define PTE_TYPE_MASK 0x7ull
#define PTE_MERGEABLE 0x8ull
/* The program unmapped the page behind samepage's back: left alone from then on. */
#define PTE_LOST 0x10ull
/* PTE_SWAP of a sharer of a swapped KSM frame: the value is the stable node's id. */
#define PTE_KSMSWAP 0x20ull
#define PTE_VAL_SHIFT 8

static inline uint64_t mk_pte(enum sp_pte_type type, unsigned long val, uint64_t flags)
{
	return ((uint64_t)val << PTE_VAL_SHIFT) | flags | type;
}
static inline enum sp_pte_type pte_type(uint64_t pte)
{
	return (enum sp_pte_type)(pte & PTE_TYPE_MASK);
}
static inline unsigned long pte_val(uint64_t pte)
{
	return (unsigned long)(pte >> PTE_VAL_SHIFT);
}

/* A memory policy over pages [first, first+nr) of a region (mempolicy.c). */
struct sp_policy {
	unsigned long first, nr;
	int mode; /* SP_MPOL_* */
	unsigned long nodemask;
};

struct sp_region {
	char *start;
	size_t len;
	unsigned long npages;
	uint32_t id;
	unsigned flags; /* SP_MERGEABLE, SP_PINNED as passed to sp_alloc */
	struct sp_policy *policies; /* sorted, disjoint; under rt.lock (mempolicy.c) */
	int nr_policies;
	bool lost_logged; /* said once that the program unmapped pages of it */
	_Atomic uint64_t *pte; /* npages entries */
	uint32_t *domain; /* merge domain per page; NULL: all 0 */
	struct ksm_item *items; /* KSM's per-page state, once the scanner visits */
	_Atomic uint64_t *pins; /* declared pins, a byte per page (gup.c) */
};

/*
 * The region table: sorted by address for O(log n) lookup, and indexed by id
 * so that a frame's owner number finds its region (the anon rmap).
 */
/*
 * The mapping budget (mm->map_count): the process may hold vm.max_map_count
 * vmas. Merging spends it only down to a reserve that unmerge, restore,
 * swap-in, migration and sp_alloc may use; rules at maps_room in region.c.
 */
enum maps_cause {
	MAPS_DEFERRED, /* merges not done for lack of mappings */
	MAPS_FAILED, /* a mapping the pool needed failed (handled) */
	MAPS_NR_CAUSES
};

struct sp_maps {
	struct sp_mutex lock; /* a leaf (lock.h): total and growth change together */
	long max; /* vm.max_map_count when the pool was made; <= 0: unknown */
	long reserve; /* never spent on merging */
	long total; /* the process's vmas at the last count */
	long growth; /* os_map_growth() then */
	long pool; /* of them the pool's */
	long synced_ms; /* when */
	_Atomic long deferred, failures;
	_Atomic unsigned logged; /* a bit per maps_cause */
};

struct sp_region_table {
	struct sp_rwlock lock;
	struct sp_region **sorted;
	unsigned nr, cap;
	struct sp_region **by_id;
	unsigned id_cap;
	unsigned next_id;
	_Atomic long committed; /* pages of all regions (strict overcommit) */
	bool closed; /* the pool is going: no lookup finds a region (region_table_close) */
	struct sp_maps maps;
};

int region_table_init(struct sp_pool *pool);
void region_table_close(struct sp_pool *pool);

/*
 * May merging spend need more vmas? priority: a merge that saves several
 * pages per mapping, which may go further into the budget. A no is counted
 * (nr merges deferred) and said once per pool.
 */
bool maps_room(struct sp_pool *pool, long need, bool priority, long nr);
/* A mapping failed and the failure was handled: counted, said once per pool per cause. */
void maps_failed(struct sp_pool *pool, enum maps_cause cause);
/* The pool's vmas now (exact, from the kernel); *limit: what it may hold. -1: unknown. */
long maps_count(struct sp_pool *pool, long *limit);
void region_table_exit(struct sp_pool *pool);

/* Callers hold rt.lock (read or write). */
struct sp_region *region_find(struct sp_pool *pool, const void *addr);
struct sp_region *region_by_id(struct sp_pool *pool, uint32_t id);
/* The region that holds addr, or else the first one above it; NULL if none. */
struct sp_region *region_next(struct sp_pool *pool, uintptr_t addr);

static inline uint32_t region_domain(const struct sp_region *r, unsigned long idx)
{
	return r->domain ? r->domain[idx] : 0;
}

static inline char *page_addr(const struct sp_region *r, unsigned long idx)
{
	return r->start + (idx << PAGE_SHIFT);
}

static inline unsigned long region_index(const struct sp_region *r, const void *addr)
{
	return (unsigned long)(((const char *)addr - r->start) >> PAGE_SHIFT);
}

/*
 * mempolicy.c, rt.lock held: the nodes a new frame for page idx may come
 * from (NODES_ALL: any) and the one it prefers (-1: none); and such a frame,
 * reclaiming for it if need be (frame_alloc_page: rt.lock read, no frame lock).
 */
void policy_nodes(const struct sp_region *r, unsigned long idx, unsigned long *mask, int *prefer);
long policy_frame_alloc(struct sp_pool *pool, const struct sp_region *r, unsigned long idx);
/* The same, from the top of free space (frame_alloc_far). */
long policy_frame_alloc_far(struct sp_pool *pool, const struct sp_region *r, unsigned long idx);
/* Would page idx's policy place a new frame elsewhere than on node? */
bool policy_misplaced(const struct sp_region *r, unsigned long idx, int node);

/*
 * Pages idx..idx+n of r that the program has unmapped behind our back get
 * PTE_LOST and are counted (stat pages_unmapped). True if any was. errno
 * is kept: it asks the kernel (mincore) on the callers' error paths.
 */
bool region_mark_lost(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
		      unsigned long n);

/* Validate [addr, addr+len): page-aligned, non-empty, inside one region. */
struct sp_region *region_range(struct sp_pool *pool, void *addr, size_t len, unsigned long *first,
			       unsigned long *nr);

#endif
