/* SPDX-License-Identifier: MIT */
/* Moving a page's contents to another frame under a running program. */
#ifndef SP_MIGRATE_H
#define SP_MIGRATE_H

struct sp_pool;
struct sp_region;

/*
 * Move the private frame behind page idx of r to a new frame on node (-1:
 * any). Caller holds rt.lock for read. -1 with EAGAIN if the page changed
 * under us (not private any more), ENOMEM if no frame is free; the page is
 * then untouched.
 */
int migrate_private_page(struct sp_pool *pool, struct sp_region *r, unsigned long idx, int node);

#endif
