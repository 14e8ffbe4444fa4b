/* SPDX-License-Identifier: MIT */
/*
 * Memory policy (mbind): which nodes a region's frames come from, and moving
 * frames already placed. As in the seed, a policy move skips KSM frames (and
 * reserved ones): a frame shared by pages with different policies has no one
 * right node. The step the seed left for later: with merge_across_nodes=0,
 * a KSM frame all of whose sharers are in the range follows them to their
 * node, moved under the KSM mutex and re-keyed in that node's tree.
 *
 * Policies live per region, as a sorted list of disjoint ranges, merged
 * where neighbours say the same (the kernel splits vmas and keeps a shared
 * policy tree; a region keeps one mapping and says per range).
 *
 * Locks: mpol_lock (pool.h) makes sp_mbind calls one at a time, policy and
 * move together, as the kernel's mmap write lock does; its rank is in
 * lock.h. The list changes under rt.lock (write) and is read only under
 * rt.lock (read or write): nothing keeps a pointer into it, or to its region,
 * past the lock. A move holds hotplug.lock (read) so that no section goes
 * away under it, then takes what migrate_pages() takes; it allocates by the
 * policy it applies, not by reading the region (mbind_new_frame).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "pool.h"

#define MPOL_FLAGS (SP_MPOL_MF_STRICT | SP_MPOL_MF_MOVE)

static int nth_node(unsigned long mask, unsigned long n)
{
	n %= (unsigned long)__builtin_popcountl(mask);
	while (n--)
		mask &= mask - 1;
	return __builtin_ctzl(mask);
}

/* The policy of page idx: its mode, and the nodes it names (0: none). rt.lock held. */
static int page_policy(const struct sp_region *r, unsigned long idx, unsigned long *mask)
{
	int lo = 0, hi = r->nr_policies;

	/* Sorted, disjoint ranges: the last one that starts at or below idx. */
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (r->policies[mid].first <= idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && idx < r->policies[lo - 1].first + r->policies[lo - 1].nr) {
		*mask = r->policies[lo - 1].nodemask;
		return r->policies[lo - 1].mode;
	}
	*mask = 0;
	return SP_MPOL_DEFAULT;
}

/*
 * Where a policy puts page idx's new frame: the nodes it may use and the one
 * it prefers. BIND and INTERLEAVE never leave their nodes (while they have
 * memory: frames_alloc_page); PREFERRED and DEFAULT may use any.
 */
static void mode_nodes(int mode, unsigned long nodemask, unsigned long idx, unsigned long *mask,
		       int *prefer)
{
	*mask = NODES_ALL;
	*prefer = -1;
	if (mode == SP_MPOL_DEFAULT || !nodemask)
		return;
	*prefer = mode == SP_MPOL_INTERLEAVE ? nth_node(nodemask, idx) : __builtin_ctzl(nodemask);
	if (mode == SP_MPOL_BIND || mode == SP_MPOL_INTERLEAVE)
		*mask = nodemask;
}

void policy_nodes(const struct sp_region *r, unsigned long idx, unsigned long *mask, int *prefer)
{
	unsigned long nodemask;
	int mode = page_policy(r, idx, &nodemask);

	mode_nodes(mode, nodemask, idx, mask, prefer);
}

long policy_frame_alloc(struct sp_pool *pool, const struct sp_region *r, unsigned long idx)
{
	unsigned long mask;
	int prefer;

	policy_nodes(r, idx, &mask, &prefer);
	return frame_alloc_page(pool, mask, prefer);
}

long policy_frame_alloc_far(struct sp_pool *pool, const struct sp_region *r, unsigned long idx)
{
	unsigned long mask;
	int prefer;
	long f;

	policy_nodes(r, idx, &mask, &prefer);
	f = frame_alloc_far(pool, mask, prefer);
	/* None free: the ordinary way, which reclaims for it. */
	return f >= 0 ? f : policy_frame_alloc(pool, r, idx);
}

bool policy_misplaced(const struct sp_region *r, unsigned long idx, int node)
{
	unsigned long mask;
	int mode = page_policy(r, idx, &mask);

	if (mode == SP_MPOL_DEFAULT || !mask)
		return false;
	if (mode == SP_MPOL_PREFERRED)
		return node != __builtin_ctzl(mask);
	return !(mask >> node & 1); /* BIND, INTERLEAVE: any node of the mask will do */
}

static int check_args(struct sp_pool *pool, int mode, unsigned long nodemask, unsigned flags)
{
	unsigned long all = pool->nr_nodes >= 64 ? ~0ul : (1ul << pool->nr_nodes) - 1;

	if (mode < SP_MPOL_DEFAULT || mode > SP_MPOL_INTERLEAVE || (flags & ~MPOL_FLAGS))
		return -1;
	if (mode == SP_MPOL_DEFAULT)
		return nodemask ? -1 : 0;
	if (!nodemask || (nodemask & ~all))
		return -1;
	/* PREFERRED names one node, as mbind(2) takes the first of the mask. */
	return 0;
}

static int policy_cmp(const void *a, const void *b)
{
	const struct sp_policy *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * Policy (mode, nodemask) over pages [first, first+nr) of r: the ranges it
 * covers are cut away, it goes in their place (DEFAULT is no range at all),
 * and neighbours that say the same merge, as in the kernel's shared policy
 * tree. So the list stays sorted and disjoint, a page's policy is a binary
 * search away, and setting policies in a loop does not grow it. Built anew
 * and swapped in under rt.lock (write); readers hold it for read.
 */
static int policy_add(struct sp_region *r, unsigned long first, unsigned long nr, int mode,
		      unsigned long nodemask)
{
	unsigned long end = first + nr;
	struct sp_policy *n = malloc((size_t)(r->nr_policies + 2) * sizeof(*n));
	int m = 0, k = 0;

	if (!n)
		return -1;
	for (int i = 0; i < r->nr_policies; i++) {
		struct sp_policy p = r->policies[i];
		unsigned long p_end = p.first + p.nr;

		if (p_end <= first || p.first >= end) {
			n[m++] = p;
			continue;
		}
		if (p.first < first) /* its head stays */
			n[m++] = (struct sp_policy){ p.first, first - p.first, p.mode, p.nodemask };
		if (p_end > end) /* its tail stays */
			n[m++] = (struct sp_policy){ end, p_end - end, p.mode, p.nodemask };
	}
	if (mode != SP_MPOL_DEFAULT)
		n[m++] = (struct sp_policy){ first, nr, mode, nodemask };
	qsort(n, (size_t)m, sizeof(*n), policy_cmp);
	for (int i = 0; i < m; i++) {
		struct sp_policy *last = k ? &n[k - 1] : NULL;

		if (last && last->first + last->nr == n[i].first && last->mode == n[i].mode &&
		    last->nodemask == n[i].nodemask)
			last->nr += n[i].nr;
		else
			n[k++] = n[i];
	}
	free(r->policies);
	r->policies = n;
	r->nr_policies = k;
	return 0;
}

/*
 * A policy move takes its frames by the policy it applies, not by reading
 * the region's list: the region may be changed or freed once the table lock
 * is dropped, and the kernel's mbind migrates by the new policy as well.
 */
struct move_target {
	int mode;
	unsigned long nodemask;
	unsigned long *idx; /* page index of each frame to move */
	unsigned long i;
};

static long mbind_new_frame(struct sp_pool *pool, unsigned long old, void *priv)
{
	struct move_target *t = priv;
	unsigned long mask;
	struct sp_run *runs;
	unsigned nr_runs;
	int prefer;
	long pfn;

	(void)old;
	/* From free frames only: a move never makes reclaim swap something out. */
	mode_nodes(t->mode, t->nodemask, t->idx[t->i++], &mask, &prefer);
	if (frames_alloc_mask(pool, mask, prefer, 1, &runs, &nr_runs))
		return -1;
	pfn = (long)runs[0].pfn;
	free(runs);
	return pfn;
}

static bool node_allowed(int mode, unsigned long mask, int node)
{
	if (mode == SP_MPOL_PREFERRED)
		mask = 1ul << __builtin_ctzl(mask);
	return mode == SP_MPOL_DEFAULT || (mask >> node & 1);
}

/*
 * Frames in [first, first+nr) of r that the policy does not allow: private
 * ones go on the list; KSM and zero-page ones are counted in *skipped.
 */
static unsigned long collect(struct sp_pool *pool, struct sp_region *r, unsigned long first,
			     unsigned long nr, int mode, unsigned long mask, unsigned long *pfns,
			     unsigned long *idx, long *skipped)
{
	unsigned long n = 0;

	for (unsigned long i = first; i < first + nr; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);
		enum sp_pte_type type = pte_type(pte);

		if (type == PTE_KSM &&
		    !node_allowed(mode, mask,
				  pool->sections[pfn_to_section(pool, pte_val(pte))].node))
			(*skipped)++;
		if (type != PTE_PRIVATE ||
		    node_allowed(mode, mask,
				 pool->sections[pfn_to_section(pool, pte_val(pte))].node))
			continue;
		pfns[n] = pte_val(pte);
		idx[n++] = i;
	}
	return n;
}

/* Every sharer of stable node sid is a page of r in [first, first+nr). */
static bool sharers_inside(struct sp_pool *pool, uint32_t sid, const struct sp_region *r,
			   unsigned long first, unsigned long nr)
{
	const struct stable_node *s = &pool->ksm.stable.nodes[sid];

	for (uint32_t i = 0; i < s->nr; i++)
		if (s->rmap[i].rid != r->id || s->rmap[i].idx < first ||
		    s->rmap[i].idx >= first + nr)
			return false;
	return true;
}

/*
 * merge_across_nodes=0: the KSM frames of the range that its policy does not
 * allow, and whose sharers all lie in it, follow them. Returns how many of
 * the *skipped KSM pages moved with their frames.
 */
static long ksm_follow(struct sp_pool *pool, void *addr, size_t len, int mode, unsigned long mask)
{
	struct move_target t = { .mode = mode, .nodemask = mask };
	unsigned long first, nr, n = 0, *pfns = NULL;
	struct migrate_result res;
	struct sp_region *r;
	long pages = 0;

	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	if (r) {
		pfns = malloc(nr * sizeof(*pfns));
		t.idx = malloc(nr * sizeof(*t.idx));
	}
	for (unsigned long i = first; pfns && t.idx && i < first + nr; i++) {
		uint64_t pte = atomic_load(&r->pte[i]);
		unsigned long k = pte_val(pte);
		uint32_t sid;

		if (pte_type(pte) != PTE_KSM ||
		    node_allowed(mode, mask, pool->sections[pfn_to_section(pool, k)].node))
			continue;
		sid = pfn_to_page(pool, k)->owner;
		if (!sharers_inside(pool, sid, r, first, nr))
			continue;
		for (unsigned long j = 0; j < n; j++)
			if (pfns[j] == k)
				goto next; /* another sharer of a frame already listed */
		pages += pool->ksm.stable.nodes[sid].nr;
		pfns[n] = k;
		t.idx[n++] = i;
next:;
	}
	/* r is not ours past here: the move needs only the frames and the policy. */
	rwlock_unlock(&pool->rt.lock);
	if (n && migrate_pages(pool, pfns, n, mbind_new_frame, &t, MR_KSM_NUMA, &res))
		pages = -1; /* not all could: leave the count to the caller's recount */
	mutex_unlock(&pool->ksm.mutex);
	free(pfns);
	free(t.idx);
	return pages;
}

static int mbind_move(struct sp_pool *pool, void *addr, size_t len, int mode, unsigned long mask,
		      unsigned flags)
{
	struct move_target t = { .mode = mode, .nodemask = mask };
	struct migrate_result res;
	unsigned long first, nr, n, *pfns;
	struct sp_region *r;
	long skipped = 0, failed = 0;
	int err = 0;

	rwlock_rdlock(&pool->hotplug.lock);
	rwlock_rdlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	if (!r) {
		err = errno;
		rwlock_unlock(&pool->rt.lock);
		goto out;
	}
	pfns = malloc(nr * sizeof(*pfns));
	t.idx = malloc(nr * sizeof(*t.idx));
	n = pfns && t.idx ? collect(pool, r, first, nr, mode, mask, pfns, t.idx, &skipped) : 0;
	/* r is not ours past here: the move needs only the frames and the policy. */
	rwlock_unlock(&pool->rt.lock);
	if (!pfns || !t.idx) {
		err = ENOMEM;
	} else if (flags & SP_MPOL_MF_MOVE) {
		failed = migrate_pages(pool, pfns, n, mbind_new_frame, &t, MR_MEMPOLICY, &res);
		if (skipped && !atomic_load(&pool->ksm.knob[KSM_MERGE_ACROSS_NODES])) {
			long followed = ksm_follow(pool, addr, len, mode, mask);

			skipped = followed < 0 ? skipped : skipped - followed;
		}
	} else {
		failed = (long)n; /* STRICT alone: pages in the wrong place are an error */
	}
	free(pfns);
	free(t.idx);
	if (!err && (flags & SP_MPOL_MF_STRICT) && (failed || skipped))
		err = EIO;
out:
	rwlock_unlock(&pool->hotplug.lock);
	errno = err;
	return err ? -1 : 0;
}

int sp_mbind(sp_pool *pool, void *addr, size_t len, int mode, unsigned long nodemask,
	     unsigned flags)
{
	unsigned long first, nr;
	struct sp_region *r;
	int ret;

	if (!pool || check_args(pool, mode, nodemask, flags)) {
		errno = EINVAL;
		return -1;
	}
	/* One at a time, as under the kernel's mmap write lock: the move is by the latest policy. */
	mutex_lock(&pool->mpol_lock);
	rwlock_wrlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	ret = r ? policy_add(r, first, nr, mode, nodemask) : -1;
	if (r && ret)
		errno = ENOMEM;
	rwlock_unlock(&pool->rt.lock);
	if (!ret && flags)
		ret = mbind_move(pool, addr, len, mode, nodemask, flags);
	mutex_unlock(&pool->mpol_lock);
	return ret;
}
