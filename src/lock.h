/* SPDX-License-Identifier: MIT */
/*
 * Every lock of samepage, its rank, and the rules. This is the one place the
 * lock order is written; file comments point here.
 *
 * Lock order, outermost first (a thread holding a lock may take only locks
 * ranked below it, further down this list):
 *
 *   export.lock                 (export.c)
 *     mpol_lock                 (mempolicy.c)
 *       hotplug.lock            (hotplug.c)
 *         KSM mutex             (ksm.c)
 *           region table lock   (region.c)
 *             frame locks       (pool.c, PG_locked)
 *               reclaim.lock    (vmscan.c)
 *                 pool lock     (pool.c)
 *                   the leaves: swap.lock, reclaim.wait_lock, ksm.wait_lock,
 *                   the fault queue lock, the window lock, the SIGSEGV lock,
 *                   hotplug.chain_lock, rt.maps.lock
 *                     log lock  (log.c)
 *
 * Not samepage's: the preload library of `samepage run` (src/preload*.c)
 * has locks of its own (the arenas' growth, the pool mappings of mmap, the
 * program's SIGSEGV disposition). They are the host program's, above all of
 * these: taken only on entry from the program's malloc, mmap or sigaction,
 * never by samepage's code (whose allocations go to glibc, sp_internal), so
 * never under a lock of this list. scripts/check-locks.sh leaves them out.
 *
 * Which lock guards what, who takes it, and why it sits where it does:
 *
 * - export.lock: the control socket's server (sp_pool_export/unexport). The
 *   unexport joins the export thread under it; that thread calls sp_stat,
 *   sp_ksm_* and sp_tune*, which take the locks below, so nothing below may
 *   wait for it.
 * - mpol_lock: sp_mbind one at a time, as under the kernel's mmap write
 *   lock, so that a move is by the latest policy. Held across the policy's
 *   update (rt.lock, write) and the move (hotplug.lock read, the KSM mutex,
 *   rt.lock read, frames), so it is above them all.
 * - hotplug.lock (rwlock): section states across a whole online/offline
 *   (write); readers (mempolicy) need the sections to stay put. An offline
 *   takes it before the KSM mutex, which KSM's GOING_OFFLINE callback takes
 *   (and its OFFLINE/CANCEL_OFFLINE drops).
 * - KSM mutex (ksm_thread_mutex in the kernel): all of KSM's metadata (stable
 *   nodes and their rmap, the unstable index, ksm_items, the scan cursor) and
 *   the entries of a swapped KSM frame's sharers. Taken by the scanner (per
 *   chunk), unmerging, sp_free of a region KSM has seen, an offline, swap-out
 *   and the swap-in of a KSM frame, always before the region table lock.
 *   Reclaim only tries it (under reclaim.lock): a try cannot deadlock.
 * - region table lock, rt.lock (rwlock, the mmap_lock analogue): the region
 *   table. Read across a whole page operation by whoever follows an address
 *   or a frame owner to a region (so the region cannot be freed under it);
 *   write by sp_alloc/sp_free to insert or unlink only. Writer-preferring and
 *   not recursive: a thread never takes it twice, even for read.
 * - frame locks (PG_locked in sp_page.flags): one frame's merge, migration,
 *   swap-out and swap-in, and the page table entries naming that frame. Taken
 *   with rt.lock held (read), so the owner a frame names cannot be freed under
 *   it. Several may be held (same rank, in pfn order): a thread holding
 *   frame locks blocks only on a frame above every one it holds (swap-out's
 *   runs, in ascending pfn); anywhere else it tries and backs off (the
 *   scanner, reclaim, an offline's KSM run). Two threads that block in pfn
 *   order cannot wait for each other. Nobody holding a frame lock waits for
 *   rt.lock or the KSM mutex.
 * - reclaim.lock: one reclaimer at a time, the clock hand and the step's
 *   buffers. Every reclaimer holds rt.lock (read) first. It ranks below the
 *   frame locks, as the kernel's direct reclaim runs under a page lock: an
 *   allocation that reclaims may hold frames (the last sharer's copy by its
 *   policy, in ksm_settle under the KSM frame's lock, reclaims for it), and
 *   a reclaimer only tries frame locks, so it never waits for their holder.
 *   The checker makes that so: blocking on a frame under it aborts.
 * - pool lock: the free maps, section states and frame totals. Nothing but a
 *   leaf is taken under it, and no system call that can sleep for long runs
 *   under it.
 * - the leaves: each guards its own small thing and nothing of ours but the
 *   log lock is taken under it, so they never nest with each other: swap.lock
 *   (the slot map), reclaim.wait_lock (the reclaim thread's sleep, kicks),
 *   ksm.wait_lock (ksmd's sleep), the fault queue lock (missing faults for the
 *   worker; the fault thread takes no other lock of ours, and the SIGSEGV
 *   handler none, so a window can be opened under any lock), the window
 *   lock (window slots and protection), the SIGSEGV lock (the process's
 *   handler), hotplug.chain_lock (the notifier array; not held while a
 *   callback runs), rt.maps.lock (the mapping budget's count: merging asks
 *   it for room under the KSM mutex, rt.lock and frame locks; it reads
 *   /proc/self/maps and takes nothing).
 * - log lock: the log queue. sp_log may be called under any lock, so it is
 *   innermost; the hook runs under none (log.c).
 *
 * Checking (jemalloc's witness): unless NDEBUG is defined (meson's release
 * build), each thread keeps the locks it holds, and the wrappers abort with
 * both names when a thread
 * - blocks on a lock ranked above or equal to one it holds (a trylock is
 *   never an inversion, since it cannot wait), or on a frame lock at or
 *   below the highest frame it has locked (tried or not) since it held none,
 * - takes a lock it holds already,
 * - releases a lock it does not hold, or that another function took: a lock
 *   is released by the function that took it, or, where the pair is
 *   documented at both calls, one side says so: mutex_lock_pair (taken for
 *   the caller, who releases it) or mutex_unlock_pair (released for the
 *   caller, who took it).
 * Frame locks are counted, not named (a run may hold hundreds), and only
 * their highest pfn is kept. With NDEBUG
 * the wrappers are the bare pthread calls.
 */
#ifndef SAMEPAGE_LOCK_H
#define SAMEPAGE_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#ifndef NDEBUG
#define LOCK_CHECK 1
#else
#define LOCK_CHECK 0
#endif

/* Lock classes, outermost first: lock_rank() gives the rank. */
enum lock_class {
	LOCK_EXPORT,
	LOCK_MPOL,
	LOCK_HOTPLUG,
	LOCK_KSM,
	LOCK_REGIONS,
	LOCK_FRAME,
	LOCK_RECLAIM,
	LOCK_POOL,
	LOCK_SWAP, /* the leaves: one rank */
	LOCK_RECLAIM_WAIT,
	LOCK_KSM_WAIT,
	LOCK_FAULT_QUEUE,
	LOCK_WINDOW,
	LOCK_SIGSEGV,
	LOCK_HOTPLUG_CHAIN,
	LOCK_MAPS,
	LOCK_LOG,
	NR_LOCK_CLASSES
};

struct sp_mutex {
	pthread_mutex_t m;
	enum lock_class cls;
};

struct sp_rwlock {
	pthread_rwlock_t rw;
	enum lock_class cls;
};

#define SP_MUTEX_INITIALIZER(c)                \
	{                                      \
		PTHREAD_MUTEX_INITIALIZER, (c) \
	}

static inline int mutex_init(struct sp_mutex *m, enum lock_class cls)
{
	m->cls = cls;
	return pthread_mutex_init(&m->m, NULL);
}

static inline void mutex_destroy(struct sp_mutex *m)
{
	pthread_mutex_destroy(&m->m);
}

static inline int rwlock_init(struct sp_rwlock *rw, enum lock_class cls,
			      const pthread_rwlockattr_t *attr)
{
	rw->cls = cls;
	return pthread_rwlock_init(&rw->rw, attr);
}

static inline void rwlock_destroy(struct sp_rwlock *rw)
{
	pthread_rwlock_destroy(&rw->rw);
}

/* The class's rank: lower is outer. The leaves share one. */
int lock_rank(enum lock_class cls);
const char *lock_name(enum lock_class cls);

#if LOCK_CHECK
/* Before a blocking acquire: abort if it breaks the order. */
void lock_check_order(const void *lock, enum lock_class cls, const char *func);
/* After any acquire: the thread now holds lock (for a frame, one more frame); pair: see above. */
void lock_acquired(const void *lock, enum lock_class cls, const char *func, bool pair);
/* Before a release; pair: the taker may be another function (documented at the call). */
void lock_releasing(const void *lock, enum lock_class cls, const char *func, bool pair);
/* Frame locks: before a blocking one, abort unless pfn is above all held; after any. */
void lock_frame_order(unsigned long pfn, const char *func);
void lock_frame_acquired(unsigned long pfn);
/* Frame locks this thread holds; locks of other classes it holds. */
unsigned long lock_frames_held(void);
unsigned lock_held(void);
#else
static inline void lock_frame_order(unsigned long pfn, const char *func)
{
	(void)pfn, (void)func;
}

static inline void lock_frame_acquired(unsigned long pfn)
{
	(void)pfn;
}

static inline void lock_check_order(const void *lock, enum lock_class cls, const char *func)
{
	(void)lock, (void)cls, (void)func;
}

static inline void lock_acquired(const void *lock, enum lock_class cls, const char *func, bool pair)
{
	(void)lock, (void)cls, (void)func, (void)pair;
}

static inline void lock_releasing(const void *lock, enum lock_class cls, const char *func,
				  bool pair)
{
	(void)lock, (void)cls, (void)func, (void)pair;
}
#endif

static inline void mutex_lock_at(struct sp_mutex *m, const char *func, bool pair)
{
	lock_check_order(m, m->cls, func);
	pthread_mutex_lock(&m->m);
	lock_acquired(m, m->cls, func, pair);
}

static inline bool mutex_trylock_at(struct sp_mutex *m, const char *func)
{
	if (pthread_mutex_trylock(&m->m))
		return false;
	lock_acquired(m, m->cls, func, false);
	return true;
}

static inline void mutex_unlock_at(struct sp_mutex *m, const char *func, bool pair)
{
	lock_releasing(m, m->cls, func, pair);
	pthread_mutex_unlock(&m->m);
}

static inline void rwlock_rdlock_at(struct sp_rwlock *rw, const char *func)
{
	lock_check_order(rw, rw->cls, func);
	pthread_rwlock_rdlock(&rw->rw);
	lock_acquired(rw, rw->cls, func, false);
}

static inline void rwlock_wrlock_at(struct sp_rwlock *rw, const char *func)
{
	lock_check_order(rw, rw->cls, func);
	pthread_rwlock_wrlock(&rw->rw);
	lock_acquired(rw, rw->cls, func, false);
}

static inline void rwlock_unlock_at(struct sp_rwlock *rw, const char *func, bool pair)
{
	lock_releasing(rw, rw->cls, func, pair);
	pthread_rwlock_unlock(&rw->rw);
}

/* The mutex is dropped and retaken inside: for the checker, held throughout. */
static inline void cond_wait(pthread_cond_t *c, struct sp_mutex *m)
{
	pthread_cond_wait(c, &m->m);
}

static inline int cond_timedwait(pthread_cond_t *c, struct sp_mutex *m, const struct timespec *ts)
{
	return pthread_cond_timedwait(c, &m->m, ts);
}

#define mutex_lock(m) mutex_lock_at(m, __func__, false)
#define mutex_lock_pair(m) mutex_lock_at(m, __func__, true)
#define mutex_trylock(m) mutex_trylock_at(m, __func__)
#define mutex_unlock(m) mutex_unlock_at(m, __func__, false)
#define mutex_unlock_pair(m) mutex_unlock_at(m, __func__, true)
#define rwlock_rdlock(rw) rwlock_rdlock_at(rw, __func__)
#define rwlock_wrlock(rw) rwlock_wrlock_at(rw, __func__)
#define rwlock_unlock(rw) rwlock_unlock_at(rw, __func__, false)
#define rwlock_unlock_pair(rw) rwlock_unlock_at(rw, __func__, true)

#endif
