/* SPDX-License-Identifier: MIT */
/*
 * samepage: user-space same-page merging (KSM) over a pool of frames that
 * can be migrated, hot-removed, re-bound to nodes and swapped.
 *
 * This header is the whole public API. The part marked "contract" is fixed
 * by API.md: names, types and meanings never change. Every call that can fail
 * returns -1 (or NULL) and sets errno; none aborts, prints (except through the
 * log hook below) or leaves the pool half-changed on bad input.
 */
#ifndef SAMEPAGE_H
#define SAMEPAGE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What this header declares is what libsamepage.so exports: the library is
 * built with hidden visibility, and this makes its declarations visible.
 */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- contract (API.md) ------------------------------------------------ */

typedef struct sp_pool sp_pool;

#define SP_PAGE_SIZE 4096

struct sp_pool_config {
	size_t section_size; /* bytes per section, a multiple of SP_PAGE_SIZE; 0: 64 MiB */
	unsigned nr_sections; /* sections online at creation; 0: 16 */
	unsigned max_sections; /* most sections ever online; 0: nr_sections */
	unsigned nr_nodes; /* nodes, sections spread round-robin; 0: machine's nodes */
	const char *swap_path; /* swap file; NULL: no swap */
	size_t swap_size; /* bytes of swap; 0 with a swap_path: 1 GiB */
	unsigned flags; /* SP_POOL_* below */
};
#define SP_POOL_NO_KSMD 0x1 /* no scanner thread: sp_ksm_scan drives merging */
#define SP_POOL_SIGSEGV 0x2 /* force the mprotect+SIGSEGV fault mode */

sp_pool *sp_pool_create(const struct sp_pool_config *cfg); /* NULL cfg: all defaults */
void sp_pool_destroy(sp_pool *pool);

/* Regions: zero-filled, page-aligned, ordinary memory. */
#define SP_MERGEABLE 0x1
void *sp_alloc(sp_pool *pool, size_t len, unsigned flags);
int sp_free(sp_pool *pool, void *addr); /* addr: what sp_alloc returned */

#define SP_MADV_MERGEABLE 1
#define SP_MADV_UNMERGEABLE 2 /* unmerges: every page private again */
int sp_madvise(sp_pool *pool, void *addr, size_t len, int advice);

/* Memory policy, after mbind(2). */
#define SP_MPOL_DEFAULT 0
#define SP_MPOL_PREFERRED 1
#define SP_MPOL_BIND 2
#define SP_MPOL_INTERLEAVE 3
#define SP_MPOL_MF_STRICT 0x1 /* with MOVE: EIO if a page could not be moved */
#define SP_MPOL_MF_MOVE 0x2 /* move pages already placed (KSM pages are skipped) */
int sp_mbind(sp_pool *pool, void *addr, size_t len, int mode, unsigned long nodemask,
	     unsigned flags);
int sp_page_node(sp_pool *pool, const void *addr); /* node of the frame behind addr */
int sp_page_section(sp_pool *pool, const void *addr); /* section of the frame behind addr */
int sp_page_is_ksm(sp_pool *pool, const void *addr); /* 1 merged, 0 not, -1 error */

/* Memory hotplug. */
int sp_section_offline(sp_pool *pool, unsigned section); /* -1: EBUSY, ENOMEM, EINVAL */
int sp_section_online(sp_pool *pool, unsigned section);

enum sp_mem_action {
	SP_MEM_GOING_ONLINE,
	SP_MEM_ONLINE,
	SP_MEM_CANCEL_ONLINE,
	SP_MEM_GOING_OFFLINE,
	SP_MEM_OFFLINE,
	SP_MEM_CANCEL_OFFLINE,
};
struct sp_memory_notify {
	unsigned long start_pfn;
	unsigned long nr_pages;
	unsigned section;
	int node;
};
/* Return 0 to go on; non-zero from a GOING_* call vetoes it (CANCEL_* follows). */
typedef int (*sp_memory_notifier_fn)(sp_pool *pool, enum sp_mem_action action,
				     const struct sp_memory_notify *arg, void *priv);
int sp_register_memory_notifier(sp_pool *pool, sp_memory_notifier_fn fn, void *priv,
				int priority); /* higher priority called first */

/* KSM knobs and counters, by their sysfs names (see samepage(3)). */
int sp_ksm_set(sp_pool *pool, const char *knob, long value);
int sp_ksm_get(sp_pool *pool, const char *name, long *value);
/* Scan now, in the calling thread, whether ksmd runs or not (run=0); pages scanned, 0 with run=2. */
long sp_ksm_scan(sp_pool *pool, unsigned long nr_pages);

/* Merge domains: pages merge only with pages of the same domain (default 0). */
int sp_set_merge_domain(sp_pool *pool, void *addr, size_t len, unsigned domain);

/* Swap. */
int sp_swap_out(sp_pool *pool, void *addr, size_t len); /* evict now */

/* Pool figures: frames_total, frames_free, frames_used, frames_ksm,
 * bytes_resident, sections_online, swap_slots_used, fault_mode (1 userfaultfd,
 * 2 sigsegv), faults_cow, faults_swapin, pages_migrated. */
int sp_stat(sp_pool *pool, const char *name, long *value);

/* ---- additions (not in API.md; may grow, never change) ----------------- */

/* sp_alloc flag: back every page now instead of on first touch. */
#define SP_POPULATE 0x2

#define SP_FAULT_UFFD 1
#define SP_FAULT_SIGSEGV 2

/*
 * Log hook. samepage says a few things a user must see (vm.max_map_count too
 * low for the pool, a fault mode fallback); by default one line each goes to
 * stderr. A hook replaces that for every pool; NULL restores the default.
 * The message has no trailing newline.
 */
enum sp_log_level { SP_LOG_ERR, SP_LOG_WARN, SP_LOG_INFO };
typedef void (*sp_log_fn)(enum sp_log_level level, const char *msg, void *priv);
void sp_set_log(sp_log_fn fn, void *priv);

/*
 * Control socket: serve the pool's KSM knobs and counters and its figures on
 * a Unix socket at path (mode 0600; peers of another uid than ours, except
 * root, are refused), for `samepage stats|set|top --socket path`. One per
 * pool: EBUSY if exported already; EEXIST if something that is not a stale
 * socket is at path; EADDRINUSE if a live one is. Unexport (or destroying
 * the pool) removes the socket.
 */
int sp_pool_export(sp_pool *pool, const char *path);
int sp_pool_unexport(sp_pool *pool);

/*
 * Enumerate figures: name of the i-th sp_stat figure, or of the i-th KSM knob
 * or counter (sp_ksm_get); NULL past the end. For tools that print them all.
 */
const char *sp_stat_name(unsigned i);
const char *sp_ksm_name(unsigned i);

/*
 * Knobs, for tools that check a value before they set it: the name of the
 * i-th knob sp_ksm_set or sp_tune takes (the KSM knobs, then the reclaim
 * watermarks; NULL past the end), and a knob's range and default (any of
 * min, max, def may be NULL). sp_knob_range: EPERM for a name that only
 * reads (a KSM counter, a pool figure), EINVAL for an unknown one.
 */
const char *sp_knob_name(unsigned i);
int sp_knob_range(const char *name, long *min, long *max, long *def);

/*
 * Reclaim under pressure (pools with a swap area, userfaultfd mode). When
 * free frames fall below swap.low_watermark, a reclaim thread swaps cold
 * pages out until they reach swap.high_watermark (both in frames; -1, the
 * default: 1/64 of the pool, at least 64, and twice that). A fault that finds
 * no free frame reclaims for itself, and sp_alloc hands out pages that get
 * their frames at first touch when there are too few free now: neither
 * fails with ENOMEM while swap has room. sp_tune also takes "ksm.KNOB" for
 * the KSM knobs. Unknown name or value below -1: EINVAL. sp_tune_get reads
 * the value in force.
 */
int sp_tune(sp_pool *pool, const char *name, long value);
int sp_tune_get(sp_pool *pool, const char *name, long *value);
/*
 * Reclaim now, as the reclaim thread would (cgroup v2's memory.reclaim):
 * swap out up to nr_pages cold pages, coldest first. Frames freed, which may
 * be fewer (swap full, nothing cold enough after three turns of the clock);
 * -1 with ENOSPC without a swap area, ENOTSUP in SIGSEGV mode.
 */
long sp_reclaim(sp_pool *pool, unsigned long nr_pages);

/*
 * The scan-time advisor (kernel 6.8): sp_ksm_set(pool, "advisor_mode", v)
 * with one of these (the socket and `samepage set` also take the kernel's
 * words "none" and "scan-time"). samepage(3) says more.
 */
#define SP_KSM_ADVISOR_NONE 0
#define SP_KSM_ADVISOR_SCAN_TIME 1

/*
 * Per merge domain, as the kernel's /proc/PID/ksm_stat per process:
 * ksm_rmap_items, ksm_zero_pages, ksm_merging_pages, ksm_process_profit
 * (sp_domain_stat_name enumerates them). A domain no page is in reads 0.
 * Unknown name: EINVAL. sp_domain_list: the domains that have a page KSM
 * tracks or has merged, ascending, the first max of them in domains; their
 * number, which may be more than max; -1 with ENOMEM.
 */
int sp_domain_stat(sp_pool *pool, unsigned domain, const char *name, long *value);
const char *sp_domain_stat_name(unsigned i);
long sp_domain_list(sp_pool *pool, unsigned *domains, size_t max);

/*
 * Pinned memory: pages that something outside the program's code writes or
 * reads by reference (O_DIRECT, io_uring fixed buffers, a device, another
 * process). Merge, migration, swap-out and reclaim leave a pinned page
 * alone, the KSM scanner skips it, and an offline meeting one retries for a
 * bounded time, then fails with EBUSY with nothing lost. Pins are counted
 * per page (up to 255 at a time: EOVERFLOW beyond), so overlapping buffers
 * pin and unpin independently; addr need not be page-aligned (the pages it
 * touches count). sp_unpin of a page that is not pinned: EINVAL, nothing
 * changed. A range outside one region: ENOMEM. When sp_pin returns, no move
 * of those pages is under way and none starts until sp_unpin.
 */
int sp_pin(sp_pool *pool, void *addr, size_t len);
int sp_unpin(sp_pool *pool, void *addr, size_t len);

/*
 * Pinned for life (DMA targets, registered buffers): an sp_alloc flag. Every
 * page gets its frame at sp_alloc, from a section onlined unmovable, and is
 * pinned until sp_free: never merged, moved, swapped or reclaimed (not with
 * SP_MERGEABLE: EINVAL; too few free frames in unmovable sections: ENOMEM).
 * A pool declares unmovable sections by onlining them with
 * sp_section_online_unmovable (the kernel's online_kernel, ZONE_NORMAL)
 * instead of sp_section_online (online_movable, ZONE_MOVABLE): create it
 * with max_sections above nr_sections and online the others so. Other
 * regions take frames from movable sections first, from unmovable ones when
 * those are full. An offline of a section holding pinned-for-life frames
 * fails with EBUSY (after the bounded retries), as the kernel's does.
 */
#define SP_PINNED 0x4
int sp_section_online_unmovable(sp_pool *pool, unsigned section);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* SAMEPAGE_H */
