/* SPDX-License-Identifier: MIT */
/*
 * Declared pins (the FOLL_PIN analogue): pages that something outside the
 * program's code writes by reference. Rules at the top of gup.c.
 */
#ifndef SP_GUP_H
#define SP_GUP_H

#include <stdbool.h>

#include "region.h"

struct sp_pool;

/* Pin counts of r's pages, all 0; -1 with ENOMEM. Freed by region_destroy. */
int pins_init(struct sp_region *r);

/*
 * A mover (anything that copies a page to another frame and lets the old one
 * go) brackets its pin check and the move with these, holding the page's
 * frame lock from before move_begin until its entry names the new frame.
 */
void move_begin(struct sp_pool *pool);
void move_end(struct sp_pool *pool);

/* Is page idx of r pinned? Between move_begin and move_end, the answer holds. */
bool page_pinned(const struct sp_region *r, unsigned long idx);
/* How many of pages idx..idx+n of r, from idx, are not pinned. */
unsigned long pages_unpinned(const struct sp_region *r, unsigned long idx, unsigned long n);

#endif
