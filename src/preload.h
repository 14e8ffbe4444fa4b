/* SPDX-License-Identifier: MIT */
/* What the parts of libsamepage-preload.so share (src/preload*.c). */
#ifndef SP_PRELOAD_H
#define SP_PRELOAD_H

#include <stdbool.h>

#include "samepage.h"

/*
 * The pool for preload_mmap.c: is p in an arena; are we a child of fork();
 * len zeroed, page-aligned bytes from the arenas (NULL: not now, not for
 * this caller: the kernel's turn); mark the calling thread as samepage's
 * own while it calls into samepage (returns what it was).
 */
bool preload_in_pool(const void *p);
bool preload_forked(void);
sp_pool *preload_pool(void);
void *preload_pool_zalloc(size_t len);
bool preload_internal(bool set);

/* Is addr in this library's code (samepage's own calls and threads)? */
bool preload_own_code(const void *addr);

/*
 * SIGSEGV (preload_signal.c). Before the pool: a handler of ours goes in
 * that calls the program's. After: in SIGSEGV fault mode the pool's handler
 * stays first and the program's sigaction/signal calls for SIGSEGV only
 * change what ours calls; otherwise the program's own action is back.
 */
void preload_signal_before(void);
void preload_signal_after(sp_pool *pool); /* NULL: no pool */

#endif
