/* SPDX-License-Identifier: MIT */
/*
 * Memory hotplug: a section goes offline with KSM frames in it while the
 * program runs, and its memory goes back to the OS; or comes (back) online.
 *
 * Offline, as in the seed:
 *   GOING_OFFLINE down the chain (KSM's callback takes the KSM mutex: no
 *   merge, unmerge or scan until OFFLINE or CANCEL_OFFLINE) -> isolate (no
 *   allocation from it) -> migrate every frame in use, KSM frames included,
 *   retrying what is transiently busy -> remove (punch the range, free the
 *   descriptors) -> OFFLINE (KSM prunes stable nodes by pfn range and drops
 *   the mutex). Any failure: un-isolate, CANCEL_OFFLINE, -1; nothing lost.
 *
 * Locks (the order is in lock.h): hotplug.lock (write) is taken before the
 * KSM mutex that KSM's callback takes. chain_lock guards the notifier array
 * only and is not held while a callback runs; callbacks must not call back
 * into the pool except sp_stat and sp_ksm_get.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "migrate.h"
#include "pool.h"

#define OFFLINE_PASSES 20

int hotplug_init(struct sp_pool *pool)
{
	struct sp_hotplug *h = &pool->hotplug;

	memset(h, 0, sizeof(*h));
	rwlock_init(&h->lock, LOCK_HOTPLUG, NULL);
	mutex_init(&h->chain_lock, LOCK_HOTPLUG_CHAIN);
	return sp_register_memory_notifier(pool, ksm_memory_callback, NULL, KSM_CALLBACK_PRI);
}

void hotplug_exit(struct sp_pool *pool)
{
	free(pool->hotplug.chain);
	mutex_destroy(&pool->hotplug.chain_lock);
	rwlock_destroy(&pool->hotplug.lock);
}

int sp_register_memory_notifier(sp_pool *pool, sp_memory_notifier_fn fn, void *priv, int priority)
{
	struct sp_hotplug *h;
	int i;

	if (!pool || !fn) {
		errno = EINVAL;
		return -1;
	}
	h = &pool->hotplug;
	mutex_lock(&h->chain_lock);
	if (h->nr == h->cap) {
		int cap = h->cap ? 2 * h->cap : 8;
		struct sp_notifier *n = realloc(h->chain, (size_t)cap * sizeof(*n));

		if (!n) {
			mutex_unlock(&h->chain_lock);
			errno = ENOMEM;
			return -1;
		}
		h->chain = n;
		h->cap = cap;
	}
	/* After those of the same priority: registration order breaks ties. */
	for (i = h->nr; i > 0 && h->chain[i - 1].priority < priority; i--)
		h->chain[i] = h->chain[i - 1];
	h->chain[i] = (struct sp_notifier){ fn, priv, priority };
	h->nr++;
	mutex_unlock(&h->chain_lock);
	return 0;
}

/* A copy of the chain, so that no lock is held while callbacks run. */
static int chain_snapshot(struct sp_pool *pool, struct sp_notifier **out)
{
	struct sp_hotplug *h = &pool->hotplug;
	int n;

	mutex_lock(&h->chain_lock);
	n = h->nr;
	*out = malloc((size_t)(n ? n : 1) * sizeof(**out));
	if (*out)
		memcpy(*out, h->chain, (size_t)n * sizeof(**out));
	mutex_unlock(&h->chain_lock);
	return *out ? n : -1;
}

static void notify_all(struct sp_pool *pool, struct sp_notifier *c, int n,
		       enum sp_mem_action action, const struct sp_memory_notify *arg)
{
	for (int i = 0; i < n; i++)
		c[i].fn(pool, action, arg, c[i].priv);
}

/*
 * GOING_*: in priority order until one vetoes. Then those that agreed (and
 * only they: KSM's callback must not drop a mutex it never took) get the
 * CANCEL_*, in reverse order. 0 if all agreed.
 */
static int notify_going(struct sp_pool *pool, struct sp_notifier *c, int n,
			enum sp_mem_action going, enum sp_mem_action cancel,
			const struct sp_memory_notify *arg)
{
	for (int i = 0; i < n; i++) {
		if (!c[i].fn(pool, going, arg, c[i].priv))
			continue;
		while (i-- > 0)
			c[i].fn(pool, cancel, arg, c[i].priv);
		return -1;
	}
	return 0;
}

static struct sp_memory_notify section_arg(struct sp_pool *pool, unsigned s)
{
	return (struct sp_memory_notify){ .start_pfn = (unsigned long)s * pool->section_pages,
					  .nr_pages = pool->section_pages,
					  .section = s,
					  .node = pool->sections[s].node };
}

/* A new home for a frame of the section going away: its own node first. */
static long offline_new_frame(struct sp_pool *pool, unsigned long old, void *priv)
{
	(void)priv;
	return frame_alloc(pool, pool->sections[pfn_to_section(pool, old)].node);
}

/*
 * Room for n more frames by reclaim, where the pool can swap: cold pages
 * anywhere, the section's own too (those need no new frame at all).
 */
static bool can_reclaim(struct sp_pool *pool)
{
	return pool->swap.fd >= 0 && fault_can_swap(pool);
}

static bool offline_reclaim(struct sp_pool *pool, unsigned long n)
{
	long got;

	if (!can_reclaim(pool))
		return false;
	rwlock_rdlock(&pool->rt.lock);
	got = reclaim_direct(pool, n, NODES_ALL);
	rwlock_unlock(&pool->rt.lock);
	return got > 0;
}

static int offline_migrate(struct sp_pool *pool, unsigned s)
{
	unsigned long *pfns = malloc(pool->section_pages * sizeof(*pfns)), n;
	struct migrate_result res = { 0 };
	long free_frames;
	int pass;

	if (!pfns) {
		errno = ENOMEM;
		return -1;
	}
	n = section_used(pool, s, pfns);
	sp_stat(pool, "frames_free", &free_frames);
	if ((long)n > free_frames && !can_reclaim(pool)) {
		free(pfns); /* no room elsewhere: fail before moving anything */
		errno = ENOMEM;
		return -1;
	}
	for (pass = 0; n && pass < OFFLINE_PASSES; pass++) {
		if (pass && !res.nomem) {
			struct timespec ts = { 0, 1000000L << (pass < 6 ? pass : 6) };

			nanosleep(&ts, NULL); /* something holds a frame: let it finish */
		}
		/* Short of room (the program may take it back meanwhile): reclaim. */
		if ((long)n > free_frames && !offline_reclaim(pool, n - (unsigned long)free_frames))
			break;
		res = (struct migrate_result){ 0 };
		migrate_pages(pool, pfns, n, offline_new_frame, NULL, MR_OFFLINING, &res);
		n = section_used(pool, s, pfns);
		sp_stat(pool, "frames_free", &free_frames);
		if (res.nomem && !can_reclaim(pool))
			break;
	}
	free(pfns);
	if (!n)
		return 0;
	errno = res.nomem ? ENOMEM : EBUSY;
	return -1;
}

#ifndef NDEBUG
/*
 * Debug builds, before the section's memory goes: no page table entry and no
 * stable node may name a frame of it any more. Every frame there is free by
 * now, so a reference is a page that would read another owner's bytes or
 * zeros: stop at once rather than report an offline that lost it. The KSM
 * mutex is held (KSM's GOING_OFFLINE callback).
 */
static void check_unreferenced(struct sp_pool *pool, unsigned s)
{
	unsigned long lo = (unsigned long)s * pool->section_pages, hi = lo + pool->section_pages;
	struct stable_tree *t = &pool->ksm.stable;
	unsigned long bad = 0;

	rwlock_rdlock(&pool->rt.lock);
	for (unsigned i = 0; i < pool->rt.nr; i++) {
		struct sp_region *r = pool->rt.sorted[i];

		for (unsigned long j = 0; j < r->npages; j++) {
			uint64_t pte = atomic_load(&r->pte[j]);

			if ((pte_type(pte) != PTE_PRIVATE && pte_type(pte) != PTE_KSM) ||
			    pte_val(pte) < lo || pte_val(pte) >= hi)
				continue;
			if (!bad++)
				sp_log(SP_LOG_ERR,
				       "offline of section %u: the page at %p still maps "
				       "frame %lu",
				       s, (void *)page_addr(r, j), pte_val(pte));
		}
	}
	rwlock_unlock(&pool->rt.lock);
	for (uint32_t id = 0; id < t->nr_ids; id++) {
		if (!t->nodes[id].live || t->nodes[id].swapped || t->nodes[id].kpfn < lo ||
		    t->nodes[id].kpfn >= hi)
			continue;
		if (!bad++)
			sp_log(SP_LOG_ERR,
			       "offline of section %u: stable node %u still names frame %u", s, id,
			       t->nodes[id].kpfn);
	}
	assert(!bad);
}
#else
static void check_unreferenced(struct sp_pool *pool, unsigned s)
{
	(void)pool;
	(void)s;
}
#endif

/* Isolate, move every frame in use, give the range back; undone on failure. */
static int take_offline(struct sp_pool *pool, unsigned section)
{
	int err;

	/* What is committed must fit in what stays: else ENOMEM, before anything moved. */
	if (section_isolate(pool, section, true))
		return -1;
	if (!offline_migrate(pool, section)) {
		check_unreferenced(pool, section);
		if (!section_remove(pool, section))
			return 0;
	}
	err = errno;
	section_isolate(pool, section, false);
	errno = err;
	return -1;
}

struct transition {
	enum sp_section_state from;
	enum sp_mem_action going, done, cancel;
	int (*act)(struct sp_pool *pool, unsigned section);
};

static const struct transition to_offline = { SECTION_ONLINE, SP_MEM_GOING_OFFLINE, SP_MEM_OFFLINE,
					      SP_MEM_CANCEL_OFFLINE, take_offline };
static const struct transition to_online = { SECTION_OFFLINE, SP_MEM_GOING_ONLINE, SP_MEM_ONLINE,
					     SP_MEM_CANCEL_ONLINE, section_online };
static const struct transition to_online_unmovable = { SECTION_OFFLINE, SP_MEM_GOING_ONLINE,
						       SP_MEM_ONLINE, SP_MEM_CANCEL_ONLINE,
						       section_online_unmovable };

/* GOING_* (a veto: EBUSY), the change, then the outcome down the chain. */
static int transition(sp_pool *pool, unsigned section, const struct transition *t)
{
	struct sp_memory_notify arg;
	struct sp_notifier *chain;
	int n, err = 0;

	if (!pool || section >= pool->max_sections) {
		errno = EINVAL;
		return -1;
	}
	rwlock_wrlock(&pool->hotplug.lock);
	if (pool->sections[section].state != t->from) {
		err = EINVAL; /* offline or online already */
		goto out_unlock;
	}
	n = chain_snapshot(pool, &chain);
	if (n < 0) {
		err = ENOMEM;
		goto out_unlock;
	}
	arg = section_arg(pool, section);
	if (notify_going(pool, chain, n, t->going, t->cancel, &arg)) {
		err = EBUSY;
	} else if (t->act(pool, section)) {
		err = errno;
		notify_all(pool, chain, n, t->cancel, &arg);
	} else {
		notify_all(pool, chain, n, t->done, &arg);
	}
	free(chain);
out_unlock:
	rwlock_unlock(&pool->hotplug.lock);
	errno = err;
	return err ? -1 : 0;
}

int sp_section_offline(sp_pool *pool, unsigned section)
{
	return transition(pool, section, &to_offline);
}

int sp_section_online(sp_pool *pool, unsigned section)
{
	return transition(pool, section, &to_online);
}

/* The kernel's online_kernel against online_movable: ZONE_NORMAL, for pinned-for-life memory. */
int sp_section_online_unmovable(sp_pool *pool, unsigned section)
{
	return transition(pool, section, &to_online_unmovable);
}
