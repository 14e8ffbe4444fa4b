/* SPDX-License-Identifier: MIT */
/*
 * KSM's knobs and counters, with the kernel's sysfs names and meanings
 * (Documentation/admin-guide/mm/ksm.rst): the /sys/kernel/mm/ksm of a pool.
 *
 * Knobs that change how existing KSM frames are organised (max_page_sharing,
 * merge_across_nodes) and run=2 (unmerge everything) change under the KSM
 * mutex (ksm.c); the others are atomics that the scanner reads per chunk.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "pool.h"

_Static_assert(KSM_ADVISOR_NONE == SP_KSM_ADVISOR_NONE &&
		       KSM_ADVISOR_SCAN_TIME == SP_KSM_ADVISOR_SCAN_TIME,
	       "advisor_mode values are the API's");

struct knob_desc {
	const char *name;
	long min, max, def;
};

static const struct knob_desc knobs[KSM_NR_KNOBS] = {
	[KSM_RUN] = { "run", 0, 2, 1 },
	[KSM_PAGES_TO_SCAN] = { "pages_to_scan", 0, UINT_MAX, 100 },
	[KSM_SLEEP_MILLISECS] = { "sleep_millisecs", 0, UINT_MAX, 20 },
	[KSM_MAX_PAGE_SHARING] = { "max_page_sharing", 2, INT_MAX, 256 },
	[KSM_MERGE_ACROSS_NODES] = { "merge_across_nodes", 0, 1, 1 },
	[KSM_USE_ZERO_PAGES] = { "use_zero_pages", 0, 1, 0 },
	[KSM_SMART_SCAN] = { "smart_scan", 0, 1, 1 },
	/*
	 * The kernel's names and defaults. Its ranges are those of an unsigned
	 * long but for advisor_target_scan_time (at least 1): here a CPU share
	 * is at most 100% and pages per batch at least 1, so that the advisor
	 * never settles on scanning nothing.
	 */
	[KSM_ADVISOR_MODE] = { "advisor_mode", KSM_ADVISOR_NONE, KSM_ADVISOR_SCAN_TIME,
			       KSM_ADVISOR_NONE },
	[KSM_ADVISOR_TARGET_SCAN_TIME] = { "advisor_target_scan_time", 1, UINT_MAX, 200 },
	[KSM_ADVISOR_MAX_CPU] = { "advisor_max_cpu", 1, 100, 70 },
	[KSM_ADVISOR_MIN_PAGES_TO_SCAN] = { "advisor_min_pages_to_scan", 1, UINT_MAX, 500 },
	[KSM_ADVISOR_MAX_PAGES_TO_SCAN] = { "advisor_max_pages_to_scan", 1, UINT_MAX, 30000 },
};

static const char *const counters[KSM_NR_COUNTERS] = {
	[KSM_PAGES_SHARED] = "pages_shared",
	[KSM_PAGES_SHARING] = "pages_sharing",
	[KSM_PAGES_UNSHARED] = "pages_unshared",
	[KSM_PAGES_VOLATILE] = "pages_volatile",
	[KSM_PAGES_SCANNED] = "pages_scanned",
	[KSM_FULL_SCANS] = "full_scans",
	[KSM_STABLE_NODE_CHAINS] = "stable_node_chains",
	[KSM_STABLE_NODE_DUPS] = "stable_node_dups",
	[KSM_KSM_ZERO_PAGES] = "ksm_zero_pages",
	[KSM_GENERAL_PROFIT] = "general_profit",
	[KSM_PAGES_SKIPPED] = "pages_skipped",
};

long ksm_knob_default(int i)
{
	return knobs[i].def;
}

const char *ksm_knob_name(unsigned i)
{
	return i < KSM_NR_KNOBS ? knobs[i].name : NULL;
}

/* The knobs there were first, the counters, then the advisor's knobs: old indices hold. */
const char *sp_ksm_name(unsigned i)
{
	if (i < KSM_ADVISOR_MODE)
		return knobs[i].name;
	i -= KSM_ADVISOR_MODE;
	if (i < KSM_NR_COUNTERS)
		return counters[i];
	return ksm_knob_name(KSM_ADVISOR_MODE + i - KSM_NR_COUNTERS);
}

static int knob_index(const char *name)
{
	for (int i = 0; i < KSM_NR_KNOBS; i++)
		if (!strcmp(name, knobs[i].name))
			return i;
	return -1;
}

static int counter_index(const char *name)
{
	for (int i = 0; i < KSM_NR_COUNTERS; i++)
		if (!strcmp(name, counters[i]))
			return i;
	return -1;
}

int ksm_knob_range(const char *name, long *min, long *max, long *def)
{
	int i = knob_index(name);

	if (i < 0) {
		errno = counter_index(name) >= 0 ? EPERM : EINVAL;
		return -1;
	}
	*min = knobs[i].min;
	*max = knobs[i].max;
	*def = knobs[i].def;
	return 0;
}

/*
 * As in the kernel: max_page_sharing and merge_across_nodes reorganise the
 * stable tree, so they change only while it is empty; pages_to_scan is the
 * advisor's while it runs (the kernel says EINVAL; EBUSY says why). KSM
 * mutex held.
 */
static bool knob_busy(struct sp_pool *pool, int i, long value)
{
	struct sp_ksm *ksm = &pool->ksm;

	if (i == KSM_PAGES_TO_SCAN)
		return atomic_load(&ksm->knob[KSM_ADVISOR_MODE]) != KSM_ADVISOR_NONE;
	if (i != KSM_MAX_PAGE_SHARING && i != KSM_MERGE_ACROSS_NODES)
		return false;
	return atomic_load(&ksm->knob[i]) != value && atomic_load(&ksm->counter[KSM_PAGES_SHARED]);
}

int sp_ksm_set(sp_pool *pool, const char *knob, long value)
{
	int i;

	if (!pool || !knob) {
		errno = EINVAL;
		return -1;
	}
	i = knob_index(knob);
	if (i < 0) {
		errno = counter_index(knob) >= 0 ? EPERM : EINVAL;
		return -1;
	}
	if (value < knobs[i].min || value > knobs[i].max) {
		errno = EINVAL;
		return -1;
	}
	if (i == KSM_RUN && value == 2)
		return ksm_unmerge_all(pool);
	mutex_lock(&pool->ksm.mutex);
	if (knob_busy(pool, i, value)) {
		mutex_unlock(&pool->ksm.mutex);
		errno = EBUSY;
		return -1;
	}
	if (i == KSM_ADVISOR_MODE && atomic_load(&pool->ksm.knob[i]) != value)
		ksm_advisor_reset(pool, value);
	atomic_store(&pool->ksm.knob[i], value);
	mutex_unlock(&pool->ksm.mutex);
	ksm_kick(pool);
	return 0;
}

int sp_ksm_get(sp_pool *pool, const char *name, long *value)
{
	int i;

	if (!pool || !name || !value) {
		errno = EINVAL;
		return -1;
	}
	i = knob_index(name);
	if (i >= 0) {
		*value = atomic_load(&pool->ksm.knob[i]);
		return 0;
	}
	i = counter_index(name);
	if (i < 0) {
		errno = EINVAL;
		return -1;
	}
	*value = atomic_load(&pool->ksm.counter[i]);
	return 0;
}
