/* SPDX-License-Identifier: MIT */
/* Memory hotplug: sections online and offline, the memory notifier chain. */
#ifndef SP_HOTPLUG_H
#define SP_HOTPLUG_H

#include <pthread.h>

#include "lock.h"
#include "samepage.h"

struct sp_notifier {
	sp_memory_notifier_fn fn;
	void *priv;
	int priority;
};

struct sp_hotplug {
	/*
	 * mem_hotplug_lock: write for onlining and offlining, read for what
	 * must not see a section vanish under it (policy moves).
	 */
	struct sp_rwlock lock;
	struct sp_mutex chain_lock; /* the notifier array */
	struct sp_notifier *chain; /* highest priority first */
	int nr, cap;
};

int hotplug_init(struct sp_pool *pool);
void hotplug_exit(struct sp_pool *pool);

/* KSM's own callback (ksm.c), registered at pool creation. */
#define KSM_CALLBACK_PRI 100
int ksm_memory_callback(sp_pool *pool, enum sp_mem_action action,
			const struct sp_memory_notify *arg, void *priv);

#endif
