/* SPDX-License-Identifier: MIT */
/*
 * Pool figures (sp_stat). Each is read when asked, from the structure that
 * owns it, rather than kept twice: bytes_resident comes from the kernel's own
 * count of the memfd's blocks, so it cannot drift from what the pool really
 * holds.
 */
#include <errno.h>
#include <string.h>

#include "pool.h"

enum sp_stat_item {
	ST_FRAMES_TOTAL,
	ST_FRAMES_FREE,
	ST_FRAMES_USED,
	ST_FRAMES_KSM,
	ST_BYTES_RESIDENT,
	ST_SECTIONS_ONLINE,
	ST_SWAP_SLOTS_USED,
	ST_FAULT_MODE,
	ST_FAULTS_COW,
	ST_FAULTS_SWAPIN,
	ST_PAGES_MIGRATED,
	ST_FAULTS_WP,
	ST_MAX_MAP_COUNT,
	ST_PAGES_UNMAPPED,
	ST_SWAP_ERRORS,
	ST_SWAP_PAGES_OUT,
	ST_FAULTS_ALLOC,
	ST_RECLAIM_SCANNED,
	ST_RECLAIM_PAGES,
	ST_RECLAIM_DIRECT,
	ST_RECLAIM_WAKEUPS,
	ST_PAGES_COMMITTED,
	ST_MAP_COUNT,
	ST_MAP_LIMIT,
	ST_MERGES_DEFERRED,
	ST_MAP_FAILURES,
	ST_NR
};

static const char *const names[ST_NR] = {
	[ST_FRAMES_TOTAL] = "frames_total",
	[ST_FRAMES_FREE] = "frames_free",
	[ST_FRAMES_USED] = "frames_used",
	[ST_FRAMES_KSM] = "frames_ksm",
	[ST_BYTES_RESIDENT] = "bytes_resident",
	[ST_SECTIONS_ONLINE] = "sections_online",
	[ST_SWAP_SLOTS_USED] = "swap_slots_used",
	[ST_FAULT_MODE] = "fault_mode",
	[ST_FAULTS_COW] = "faults_cow",
	[ST_FAULTS_SWAPIN] = "faults_swapin",
	[ST_PAGES_MIGRATED] = "pages_migrated",
	[ST_FAULTS_WP] = "faults_wp",
	[ST_MAX_MAP_COUNT] = "max_map_count",
	[ST_PAGES_UNMAPPED] = "pages_unmapped",
	[ST_SWAP_ERRORS] = "swap_errors",
	[ST_SWAP_PAGES_OUT] = "swap_pages_out",
	[ST_FAULTS_ALLOC] = "faults_alloc",
	[ST_RECLAIM_SCANNED] = "reclaim_scanned",
	[ST_RECLAIM_PAGES] = "reclaim_pages",
	[ST_RECLAIM_DIRECT] = "reclaim_direct",
	[ST_RECLAIM_WAKEUPS] = "reclaim_wakeups",
	[ST_PAGES_COMMITTED] = "pages_committed",
	[ST_MAP_COUNT] = "map_count",
	[ST_MAP_LIMIT] = "map_limit",
	[ST_MERGES_DEFERRED] = "merges_deferred",
	[ST_MAP_FAILURES] = "map_failures",
};

const char *sp_stat_name(unsigned i)
{
	return i < ST_NR ? names[i] : NULL;
}

static long stat_read(struct sp_pool *pool, enum sp_stat_item item)
{
	long v;

	switch (item) {
	case ST_FRAMES_TOTAL:
	case ST_FRAMES_FREE:
	case ST_FRAMES_USED:
	case ST_SECTIONS_ONLINE:
		mutex_lock(&pool->lock);
		v = item == ST_FRAMES_TOTAL    ? (long)pool->frames_total :
		    item == ST_FRAMES_FREE     ? (long)pool->frames_free :
		    item == ST_SECTIONS_ONLINE ? (long)pool->sections_online :
						 (long)(pool->frames_total - pool->frames_free);
		mutex_unlock(&pool->lock);
		return v;
	case ST_FRAMES_KSM:
		return atomic_load(&pool->ksm.counter[KSM_PAGES_SHARED]);
	case ST_BYTES_RESIDENT:
		return pool_bytes_resident(pool);
	case ST_SWAP_SLOTS_USED:
		return swap_slots_used(pool);
	case ST_SWAP_ERRORS:
		return atomic_load(&pool->swap.errors);
	case ST_SWAP_PAGES_OUT:
		return atomic_load(&pool->swap.pages_out);
	case ST_FAULTS_ALLOC:
		return atomic_load(&pool->faults_alloc);
	case ST_RECLAIM_SCANNED:
		return atomic_load(&pool->reclaim.scanned);
	case ST_RECLAIM_PAGES:
		return atomic_load(&pool->reclaim.reclaimed);
	case ST_RECLAIM_DIRECT:
		return atomic_load(&pool->reclaim.direct);
	case ST_RECLAIM_WAKEUPS:
		return atomic_load(&pool->reclaim.wakeups);
	case ST_PAGES_COMMITTED:
		return atomic_load(&pool->rt.committed);
	case ST_FAULT_MODE:
		return pool->fault.mode;
	case ST_FAULTS_COW:
		return atomic_load(&pool->faults_cow);
	case ST_FAULTS_SWAPIN:
		return atomic_load(&pool->faults_swapin);
	case ST_PAGES_MIGRATED:
		return atomic_load(&pool->pages_migrated);
	case ST_FAULTS_WP:
		return atomic_load(&pool->fault.wp_faults);
	case ST_MAX_MAP_COUNT:
		return pool->max_map_count;
	case ST_PAGES_UNMAPPED:
		return atomic_load(&pool->pages_unmapped);
	case ST_MAP_COUNT:
		return maps_count(pool, NULL);
	case ST_MAP_LIMIT:
		return maps_count(pool, &v) < 0 ? -1 : v;
	case ST_MERGES_DEFERRED:
		return atomic_load(&pool->rt.maps.deferred);
	case ST_MAP_FAILURES:
		return atomic_load(&pool->rt.maps.failures);
	case ST_NR:
		break;
	}
	return -1;
}

int sp_stat(sp_pool *pool, const char *name, long *value)
{
	if (!pool || !name || !value)
		goto out_inval;
	for (int i = 0; i < ST_NR; i++) {
		if (strcmp(name, names[i]))
			continue;
		*value = stat_read(pool, (enum sp_stat_item)i);
		return 0;
	}
out_inval:
	errno = EINVAL;
	return -1;
}

/*
 * The knobs a tool may set, for `samepage set --help` and its checks: the
 * KSM knobs (sp_ksm_set), then the reclaim watermarks (sp_tune).
 */
const char *sp_knob_name(unsigned i)
{
	return i < KSM_NR_KNOBS ? ksm_knob_name(i) : reclaim_knob_name(i - KSM_NR_KNOBS);
}

int sp_knob_range(const char *name, long *min, long *max, long *def)
{
	long lo, hi, d;

	if (!name) {
		errno = EINVAL;
		return -1;
	}
	if (!strncmp(name, "ksm.", 4)) /* as sp_tune takes them */
		name += 4;
	if (ksm_knob_range(name, &lo, &hi, &d)) {
		/* A KSM counter or a pool figure only reads: EPERM, as sp_ksm_set says. */
		bool figure = errno == EPERM;

		for (int i = 0; i < ST_NR; i++)
			figure |= !strcmp(name, names[i]);

		if (reclaim_knob_range(name, &lo, &hi, &d)) {
			errno = figure ? EPERM : EINVAL;
			return -1;
		}
	}
	if (min)
		*min = lo;
	if (max)
		*max = hi;
	if (def)
		*def = d;
	return 0;
}
