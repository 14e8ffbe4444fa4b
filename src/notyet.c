/* SPDX-License-Identifier: MIT */
/*
 * Calls of the API contract whose engines are not built yet. They exist so
 * that programs written against API.md link and get a clear answer: -1 with
 * ENOSYS after the same argument checks the real call will make. Each moves
 * to its own file (swap.c) with its engine.
 */
#include <errno.h>

#include "pool.h"

static int nosys(sp_pool *pool)
{
	errno = pool ? ENOSYS : EINVAL;
	return -1;
}

int sp_swap_out(sp_pool *pool, void *addr, size_t len)
{
	(void)addr, (void)len;
	return nosys(pool);
}
