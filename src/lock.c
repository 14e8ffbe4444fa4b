/* SPDX-License-Identifier: MIT */
/*
 * The lock order checker (lock.h has the order and the rules). Each thread
 * keeps what it holds in thread-local storage: the named locks in a small
 * stack, frame locks as a count. The checks only read and write that, so a
 * checked acquire costs a few compares; with NDEBUG none of it is built but
 * the names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lock.h"

#define RANK_LEAF 8 /* the leaves share it */

static const struct {
	const char *name;
	int rank;
} classes[NR_LOCK_CLASSES] = {
	[LOCK_EXPORT] = { "export.lock", 0 },
	[LOCK_MPOL] = { "mpol_lock", 1 },
	[LOCK_HOTPLUG] = { "hotplug.lock", 2 },
	[LOCK_KSM] = { "KSM mutex", 3 },
	[LOCK_REGIONS] = { "region table lock", 4 },
	[LOCK_FRAME] = { "frame lock", 5 },
	[LOCK_RECLAIM] = { "reclaim.lock", 6 },
	[LOCK_POOL] = { "pool lock", 7 },
	[LOCK_SWAP] = { "swap.lock", RANK_LEAF },
	[LOCK_RECLAIM_WAIT] = { "reclaim.wait_lock", RANK_LEAF },
	[LOCK_KSM_WAIT] = { "ksm.wait_lock", RANK_LEAF },
	[LOCK_FAULT_QUEUE] = { "fault queue lock", RANK_LEAF },
	[LOCK_WINDOW] = { "window lock", RANK_LEAF },
	[LOCK_SIGSEGV] = { "SIGSEGV lock", RANK_LEAF },
	[LOCK_HOTPLUG_CHAIN] = { "hotplug.chain_lock", RANK_LEAF },
	[LOCK_MAPS] = { "rt.maps.lock", RANK_LEAF },
	[LOCK_LOG] = { "log lock", RANK_LEAF + 1 },
};

int lock_rank(enum lock_class cls)
{
	return classes[cls].rank;
}

const char *lock_name(enum lock_class cls)
{
	return classes[cls].name;
}

#if LOCK_CHECK

#define MAX_HELD 16 /* named locks one thread holds at once; about 5 in practice */

struct held {
	const void *lock;
	enum lock_class cls;
	const char *func; /* who took it */
	bool pair; /* it took it for its caller, who may release it */
};

static __thread struct held held[MAX_HELD];
static __thread unsigned nr_held;
static __thread unsigned long frames; /* frame locks held */
static __thread const char *frame_func; /* who took the last frame lock */
static __thread unsigned long frame_max; /* highest pfn locked since frames was 0 */

/* No stdio: a lock of libc's may be what is broken. */
static __attribute__((noreturn)) void die(const char *msg)
{
	ssize_t n = write(STDERR_FILENO, msg, strlen(msg));

	(void)n;
	abort();
}

static __attribute__((noreturn)) void die_order(enum lock_class cls, const char *func,
						enum lock_class h, const char *hfunc)
{
	char msg[512];

	snprintf(msg, sizeof(msg),
		 "samepage: lock order violated: %s takes %s (rank %d) while holding %s "
		 "(rank %d, taken in %s); see src/lock.h\n",
		 func, lock_name(cls), lock_rank(cls), lock_name(h), lock_rank(h), hfunc);
	die(msg);
}

void lock_check_order(const void *lock, enum lock_class cls, const char *func)
{
	int rank = lock_rank(cls);

	if (frames && cls != LOCK_FRAME && rank <= lock_rank(LOCK_FRAME))
		die_order(cls, func, LOCK_FRAME, frame_func);
	for (unsigned i = 0; i < nr_held; i++) {
		if (held[i].lock == lock || lock_rank(held[i].cls) >= rank)
			die_order(cls, func, held[i].cls, held[i].func);
	}
}

void lock_frame_order(unsigned long pfn, const char *func)
{
	char msg[512];

	if (!frames || pfn > frame_max)
		return;
	snprintf(msg, sizeof(msg),
		 "samepage: frame locks out of pfn order: %s waits for frame %lu while holding "
		 "frame %lu (taken in %s); see src/lock.h\n",
		 func, pfn, frame_max, frame_func);
	die(msg);
}

void lock_frame_acquired(unsigned long pfn)
{
	if (!frames || pfn > frame_max)
		frame_max = pfn;
}

void lock_acquired(const void *lock, enum lock_class cls, const char *func, bool pair)
{
	if (cls == LOCK_FRAME) {
		frames++;
		frame_func = func;
		return;
	}
	if (nr_held == MAX_HELD)
		die("samepage: lock checker: too many locks held\n");
	held[nr_held++] = (struct held){ .lock = lock, .cls = cls, .func = func, .pair = pair };
}

static __attribute__((noreturn)) void die_release(enum lock_class cls, const char *func,
						  const char *taker)
{
	char msg[512];

	if (taker)
		snprintf(msg, sizeof(msg),
			 "samepage: lock released by another function: %s releases %s, "
			 "taken in %s; see src/lock.h\n",
			 func, lock_name(cls), taker);
	else
		snprintf(msg, sizeof(msg),
			 "samepage: %s releases %s, which it does not hold; see src/lock.h\n", func,
			 lock_name(cls));
	die(msg);
}

void lock_releasing(const void *lock, enum lock_class cls, const char *func, bool pair)
{
	unsigned i = nr_held;

	if (cls == LOCK_FRAME) {
		if (!frames)
			die_release(cls, func, NULL);
		frames--;
		return;
	}
	while (i && held[i - 1].lock != lock)
		i--;
	if (!i)
		die_release(cls, func, NULL);
	if (!pair && !held[i - 1].pair && strcmp(held[i - 1].func, func))
		die_release(cls, func, held[i - 1].func);
	memmove(&held[i - 1], &held[i], (nr_held - i) * sizeof(held[0]));
	nr_held--;
}

unsigned long lock_frames_held(void)
{
	return frames;
}

unsigned lock_held(void)
{
	return nr_held;
}

#endif
