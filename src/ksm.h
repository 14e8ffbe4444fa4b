/* SPDX-License-Identifier: MIT */
/* KSM: knobs, counters and (later) the merging engine. Rules at the top of ksm.c. */
#ifndef SP_KSM_H
#define SP_KSM_H

#include <pthread.h>
#include <stdatomic.h>

struct sp_pool;

enum sp_ksm_knob {
	KSM_RUN,
	KSM_PAGES_TO_SCAN,
	KSM_SLEEP_MILLISECS,
	KSM_MAX_PAGE_SHARING,
	KSM_MERGE_ACROSS_NODES,
	KSM_USE_ZERO_PAGES,
	KSM_SMART_SCAN,
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
	KSM_NR_COUNTERS
};

struct sp_ksm {
	pthread_mutex_t mutex; /* the KSM mutex (ksm_thread_mutex) */
	_Atomic long knob[KSM_NR_KNOBS];
	_Atomic long counter[KSM_NR_COUNTERS];
};

int ksm_init(struct sp_pool *pool);
void ksm_exit(struct sp_pool *pool);

#endif
