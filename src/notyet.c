/* SPDX-License-Identifier: MIT */
/*
 * Calls of the API contract whose engines are not built yet. They exist so
 * that programs written against API.md link and get a clear answer: -1 with
 * ENOSYS after the same argument checks the real call will make. Each moves
 * to its own file (hotplug.c, mempolicy.c, swap.c) with its engine.
 */
#include <errno.h>

#include "pool.h"

static int nosys(sp_pool *pool)
{
	errno = pool ? ENOSYS : EINVAL;
	return -1;
}

int sp_mbind(sp_pool *pool, void *addr, size_t len, int mode, unsigned long nodemask,
	     unsigned flags)
{
	(void)addr, (void)len, (void)mode, (void)nodemask, (void)flags;
	return nosys(pool);
}

int sp_section_offline(sp_pool *pool, unsigned section)
{
	(void)section;
	return nosys(pool);
}

int sp_section_online(sp_pool *pool, unsigned section)
{
	(void)section;
	return nosys(pool);
}

int sp_register_memory_notifier(sp_pool *pool, sp_memory_notifier_fn fn, void *priv, int priority)
{
	(void)fn, (void)priv, (void)priority;
	return nosys(pool);
}

int sp_swap_out(sp_pool *pool, void *addr, size_t len)
{
	(void)addr, (void)len;
	return nosys(pool);
}
