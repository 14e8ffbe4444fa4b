/* SPDX-License-Identifier: MIT */
/* Moving a page's contents to another frame under a running program. */
#ifndef SP_MIGRATE_H
#define SP_MIGRATE_H

struct sp_pool;
struct sp_region;

/* Why frames move: only offlining may move KSM frames (the seed). */
enum migrate_reason { MR_OFFLINING, MR_MEMPOLICY, MR_KSM_NUMA };

/* A new frame for the one at old, or -1 with errno (ENOMEM). */
typedef long (*migrate_new_fn)(struct sp_pool *pool, unsigned long old, void *priv);

struct migrate_result {
	unsigned long moved, nomem, busy, again;
};

/*
 * Move the frames pfns[0..nr) (free ones count as moved), each to a frame
 * from get_new. The KSM mutex is held when reason allows KSM frames. Returns
 * how many could not move; res says why (again: transient, retry).
 */
long migrate_pages(struct sp_pool *pool, const unsigned long *pfns, unsigned long nr,
		   migrate_new_fn get_new, void *priv, enum migrate_reason reason,
		   struct migrate_result *res);

/*
 * Move the private frame behind page idx of r to a new frame on node (-1:
 * any). Caller holds rt.lock for read. -1 with EAGAIN if the page changed
 * under us (not private any more), ENOMEM if no frame is free; the page is
 * then untouched.
 */
int migrate_private_page(struct sp_pool *pool, struct sp_region *r, unsigned long idx, int node);

#endif
