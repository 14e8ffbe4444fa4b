/* SPDX-License-Identifier: MIT */
/*
 * KSM: knobs and counters with the kernel's sysfs names and meanings
 * (Documentation/admin-guide/mm/ksm.rst).
 *
 * Locking: the KSM mutex (ksm.mutex, ksm_thread_mutex in the kernel) is the
 * outermost lock of samepage: KSM mutex -> region table lock -> frame lock ->
 * pool lock. Knobs that change how existing KSM frames are organised
 * (max_page_sharing, merge_across_nodes) change under it; the others are
 * plain atomics read by the scanner once per batch. The fault path never
 * takes it.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "pool.h"

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
};

const char *sp_ksm_name(unsigned i)
{
	if (i < KSM_NR_KNOBS)
		return knobs[i].name;
	i -= KSM_NR_KNOBS;
	return i < KSM_NR_COUNTERS ? counters[i] : NULL;
}

int ksm_init(struct sp_pool *pool)
{
	struct sp_ksm *ksm = &pool->ksm;

	if (pthread_mutex_init(&ksm->mutex, NULL))
		return -1;
	for (int i = 0; i < KSM_NR_KNOBS; i++)
		atomic_store(&ksm->knob[i], knobs[i].def);
	for (int i = 0; i < KSM_NR_COUNTERS; i++)
		atomic_store(&ksm->counter[i], 0);
	return 0;
}

void ksm_exit(struct sp_pool *pool)
{
	pthread_mutex_destroy(&pool->ksm.mutex);
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
	pthread_mutex_lock(&pool->ksm.mutex);
	/* As in the kernel: these reorganise the stable tree, so only while empty. */
	if ((i == KSM_MAX_PAGE_SHARING || i == KSM_MERGE_ACROSS_NODES) &&
	    atomic_load(&pool->ksm.knob[i]) != value &&
	    atomic_load(&pool->ksm.counter[KSM_PAGES_SHARED])) {
		pthread_mutex_unlock(&pool->ksm.mutex);
		errno = EBUSY;
		return -1;
	}
	atomic_store(&pool->ksm.knob[i], value);
	pthread_mutex_unlock(&pool->ksm.mutex);
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
