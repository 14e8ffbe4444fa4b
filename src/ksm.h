/* SPDX-License-Identifier: MIT */
/* KSM: knobs, counters, the merging engine. Rules at the top of ksm.c. */
#ifndef SP_KSM_H
#define SP_KSM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lock.h"

struct sp_pool;
struct sp_region;

enum sp_ksm_knob {
	KSM_RUN,
	KSM_PAGES_TO_SCAN,
	KSM_SLEEP_MILLISECS,
	KSM_MAX_PAGE_SHARING,
	KSM_MERGE_ACROSS_NODES,
	KSM_USE_ZERO_PAGES,
	KSM_SMART_SCAN,
	/* The scan-time advisor (kernel 6.8): listed after the counters by sp_ksm_name. */
	KSM_ADVISOR_MODE,
	KSM_ADVISOR_TARGET_SCAN_TIME,
	KSM_ADVISOR_MAX_CPU,
	KSM_ADVISOR_MIN_PAGES_TO_SCAN,
	KSM_ADVISOR_MAX_PAGES_TO_SCAN,
	KSM_NR_KNOBS
};

enum sp_ksm_counter {
	KSM_PAGES_SHARED,
	KSM_PAGES_SHARING,
	KSM_PAGES_UNSHARED,
	KSM_PAGES_VOLATILE,
	KSM_PAGES_SCANNED,
	KSM_FULL_SCANS,
	KSM_STABLE_NODE_CHAINS,
	KSM_STABLE_NODE_DUPS,
	KSM_KSM_ZERO_PAGES,
	KSM_GENERAL_PROFIT,
	KSM_PAGES_SKIPPED,
	KSM_NR_COUNTERS
};

/*
 * Per scanned page, 8 bytes (the kernel's rmap_item is 64): the last
 * checksum, how long it has stayed unique (smart_scan), and where it
 * stands: tracked (the kernel has an rmap_item for it) and in the unstable
 * tree or not.
 */
struct ksm_item {
	uint32_t hash; /* low 32 bits of the page's last XXH3 */
	uint8_t age; /* visits in a row unique with the same checksum */
	uint8_t flags; /* ITEM_* */
};
#define ITEM_TRACKED 0x1 /* visited with a page there: counted in pages_volatile unless in a tree */
#define ITEM_UNSTABLE 0x2 /* in the unstable tree: counted in pages_unshared */

/* A sharer of a KSM frame: the rmap item of the stable node. */
struct ksm_rmap {
	uint32_t rid; /* region id */
	uint32_t idx; /* page index */
};

/*
 * A stable node: one KSM frame, named by kpfn (never by pointer: the frame's
 * descriptor goes away with its section), its content's checksum, and the
 * pages that map it.
 */
struct stable_node {
	uint32_t hash; /* low 32 bits of the content's XXH3 */
	uint32_t kpfn;
	uint32_t domain;
	int32_t node; /* -1 when merge_across_nodes */
	uint32_t next; /* next node id in the hash bucket; free list link when dead */
	uint32_t nr, cap;
	struct ksm_rmap *rmap;
	uint32_t slot; /* while swapped: the one slot of all its sharers */
	bool live;
	bool swapped; /* kpfn is KPFN_NONE, the content is in slot */
};
#define KPFN_NONE UINT32_MAX

struct stable_tree {
	struct stable_node *nodes; /* by id; ids are reused */
	uint32_t nr_ids, cap, free_head, nr_live;
	uint32_t *buckets; /* heads, STABLE_NONE for empty */
	uint32_t nr_buckets;
	long chains, dups; /* max_page_sharing bookkeeping */
	size_t rmap_slots; /* allocated, for general_profit */
};

/* Unstable candidates, rebuilt every full scan: (region id + 1, index). */
struct unstable_tree {
	uint64_t *slots;
	size_t size; /* 4/3 of the unmerged pages: 10.7 bytes each */
	size_t count;
};

/* advisor_mode values; the socket and the CLI also take the kernel's words. */
#define KSM_ADVISOR_NONE 0
#define KSM_ADVISOR_SCAN_TIME 1

/*
 * The scan-time advisor's state (the kernel's advisor_ctx), under the KSM
 * mutex: when the full scan under way began (wall and ksmd's CPU clock, in
 * ns; start 0: not timed, this scan is not judged), the last scan's length
 * and the smoothed change factor, in percent.
 */
struct ksm_advisor {
	long long start_ns, start_cpu_ns;
	long last_scan_ms;
	long change;
};

struct sp_ksm {
	struct sp_mutex mutex; /* the KSM mutex (ksm_thread_mutex) */
	_Atomic long knob[KSM_NR_KNOBS];
	_Atomic long counter[KSM_NR_COUNTERS];

	struct stable_tree stable;
	struct unstable_tree unstable;
	uintptr_t cursor; /* next address to scan */
	unsigned long pass_pages; /* mergeable pages seen in this full scan */
	unsigned long *freed; /* frames to punch after the chunk */
	unsigned long nr_freed, cap_freed;
	uint32_t zero_hash;
	size_t items_bytes; /* ksm_items of all regions */
	long sharers; /* pages mapping KSM frames (the stable tree's rmap_items) */
	long tracked; /* pages with ITEM_TRACKED (the kernel's ksm_rmap_items) */
	long unshared; /* pages with ITEM_UNSTABLE */
	long zero_pages;

	struct ksm_advisor advisor;

	pthread_t thread; /* ksmd */
	bool thread_started, stop;
	struct sp_mutex wait_lock;
	pthread_cond_t wait;
};

#define STABLE_NONE UINT32_MAX

int ksm_init(struct sp_pool *pool);
void ksm_exit(struct sp_pool *pool);
/* Start ksmd, once the rest of the pool is up. */
int ksm_start(struct sp_pool *pool);
void ksm_stop(struct sp_pool *pool);
long ksm_knob_default(int knob);
/* A KSM knob's range and default; -1 with EPERM for a counter, EINVAL unknown. */
int ksm_knob_range(const char *name, long *min, long *max, long *def);
/* advisor_mode changed: the kernel's set_advisor_defaults; KSM mutex held. */
void ksm_advisor_reset(struct sp_pool *pool, long mode);
/* Name of knob i in enum sp_ksm_knob order, NULL past the last. */
const char *ksm_knob_name(unsigned i);
/*
 * Per merge domain, as /proc/PID/ksm_stat per process. ksm_domain_figures
 * fills one domain's; ksm_domain_all every domain that has a page KSM
 * tracks or merged, ascending (malloc'd, *nr of them; NULL with ENOMEM).
 */
enum sp_domain_figure { DOM_RMAP_ITEMS, DOM_ZERO_PAGES, DOM_MERGING_PAGES, DOM_PROFIT, DOM_NR };
struct ksm_domain_fig {
	unsigned domain;
	long v[DOM_NR];
};
void ksm_domain_figures(struct sp_pool *pool, unsigned domain, long v[DOM_NR]);
struct ksm_domain_fig *ksm_domain_all(struct sp_pool *pool, size_t *nr);
/* Wake ksmd: a knob changed. */
void ksm_kick(struct sp_pool *pool);
/*
 * run=2: every merged page private again and all tracking dropped, under
 * the KSM mutex, so that no scan merges afterwards; -1 ENOMEM with nothing
 * changed.
 */
int ksm_unmerge_all(struct sp_pool *pool);
/* SP_MADV_UNMERGEABLE on a range; KSM mutex and rt.lock (read) held. */
int ksm_unmerge_range(struct sp_pool *pool, struct sp_region *r, unsigned long first,
		      unsigned long nr);
/* For migration (migrate.c), under the KSM mutex. */
void ksm_sharer_copied(struct sp_pool *pool, uint32_t sid, uint32_t rid, uint32_t idx);
void ksm_settle(struct sp_pool *pool, uint32_t sid);
void ksm_flush(struct sp_pool *pool);
/*
 * Swap of KSM frames (ksm.c, with the KSM mutex and rt.lock read held):
 * frame k out as one slot for all its sharers (1 done, 0 nothing to do, -1
 * error); the worker's fault on a swapped sharer at addr (takes both locks
 * itself; KSM_FAULT_AGAIN: the page changed, look again).
 */
int ksm_swap_out(struct sp_pool *pool, unsigned long k, bool try);
#define KSM_FAULT_AGAIN 3
int ksm_fault(struct sp_pool *pool, uintptr_t addr);
/* The reclaim clock at a sharer of a KSM frame: frames freed (vmscan.c says more). */
long ksm_reclaim(struct sp_pool *pool, struct sp_region *r, unsigned long idx, bool force);

/* Give one page a private frame again (for swap-out of a copied page); KSM mutex held. */
int ksm_unshare(struct sp_pool *pool, struct sp_region *r, unsigned long idx);
/* A region is going away: drop its pages from every KSM frame. KSM mutex held. */
void ksm_region_release(struct sp_pool *pool, struct sp_region *r);

/* ksm_tree.c: the stable and unstable indexes. All under the KSM mutex. */
int stable_init(struct stable_tree *t);
void stable_exit(struct stable_tree *t);
uint32_t stable_first(struct stable_tree *t, uint32_t hash);
uint32_t stable_new(struct stable_tree *t, uint32_t hash, uint32_t kpfn, uint32_t domain, int node);
void stable_delete(struct stable_tree *t, uint32_t id);
int stable_reserve(struct stable_tree *t, uint32_t id, uint32_t extra);
int stable_add_rmap(struct stable_tree *t, uint32_t id, uint32_t rid, uint32_t idx);
/* Remove a sharer; its count afterwards. */
uint32_t stable_remove_rmap(struct stable_tree *t, uint32_t id, uint32_t rid, uint32_t idx);
size_t stable_bytes(const struct stable_tree *t);

int unstable_reset(struct unstable_tree *t, size_t expect);
void unstable_exit(struct unstable_tree *t);
int unstable_insert(struct unstable_tree *t, uint32_t hash, uint32_t rid, uint32_t idx);
int unstable_grow(struct unstable_tree *t, uint32_t (*hash_of)(void *ctx, uint64_t ref), void *ctx);
/* Walk the candidates with this checksum: *pos starts at 0; 0 at the end. */
uint64_t unstable_next(struct unstable_tree *t, uint32_t hash, size_t *pos);

#endif
