/* SPDX-License-Identifier: MIT */
/*
 * Faults, and the write-protect window.
 *
 * A private frame is mapped MAP_SHARED read-write and a KSM frame MAP_PRIVATE
 * read-write, so an ordinary write never comes here: copy-on-write of a KSM
 * frame is the kernel's own. What comes here is a write into a window: a
 * range samepage has write-protected for the few microseconds it takes to
 * compare, copy or remap the frame behind it. The writer waits and retries
 * after the window closes, and by then its page is either the same frame
 * (unprotected again) or a new mapping.
 *
 * Two modes guard a window, chosen at pool creation:
 * - userfaultfd write-protect (default): writers from user code and from the
 *   kernel on the program's behalf (read(2), recv(2)) wait in the kernel;
 *   a handler thread drains the messages and wakes stale ones.
 * - mprotect + SIGSEGV: the fallback where userfaultfd is refused. A user-mode
 *   writer waits in the signal handler; a system call that writes into a
 *   window fails with EFAULT.
 *
 * Window table: process-wide, lock-free, because the SIGSEGV handler must read
 * it. Each slot is a seqlock: seq odd while the window is open. Open publishes
 * the slot before it protects; close unprotects (or the caller has replaced
 * the mapping) before it retires the slot and wakes. So a writer blocked on a
 * window always finds it, and a writer that finds no window retries into a
 * page that is writable again.
 *
 * Locks (the order is in lock.h): the fault thread takes none of ours (only
 * q_lock, a leaf): it never
 * waits on the KSM mutex, the region table lock or a frame lock, so a window
 * can be opened, and a mapping moved into place, under any of them. Missing
 * faults (swap-in, first touch) go to the swap-in worker, which takes the
 * KSM mutex (a swapped KSM frame), the region table lock (read), frame locks
 * and reclaim.lock, as swap.c says.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

#define NR_WINDOWS 128

struct window_slot {
	_Atomic uint32_t seq; /* odd: open */
	_Atomic int busy; /* taken by an opener */
	_Atomic int waiters; /* a SIGSEGV handler sleeps on seq */
	_Atomic uintptr_t start;
	_Atomic uintptr_t end;
};

static struct window_slot windows[NR_WINDOWS];
/* Serialises opening and closing windows (not the fault path, which only reads). */
static struct sp_mutex window_lock = SP_MUTEX_INITIALIZER(LOCK_WINDOW);

/* ---- window table ----------------------------------------------------- */

static int slot_take(void *addr, size_t len)
{
	static _Atomic unsigned next;

	for (;;) {
		for (int k = 0; k < NR_WINDOWS; k++) {
			unsigned i = atomic_fetch_add(&next, 1) % NR_WINDOWS;
			int zero = 0;

			if (!atomic_compare_exchange_strong(&windows[i].busy, &zero, 1))
				continue;
			atomic_store(&windows[i].start, (uintptr_t)addr);
			atomic_store(&windows[i].end, (uintptr_t)addr + len);
			atomic_fetch_add(&windows[i].seq, 1); /* open */
			return (int)i;
		}
		sched_yield(); /* 128 windows in flight: wait for one to close */
	}
}

static _Atomic unsigned long windows_closed; /* grows at every close */

static void slot_release(int i)
{
	atomic_fetch_add(&windows[i].seq, 1); /* closed */
	atomic_fetch_add(&windows_closed, 1);
	/* seq before waiters, as the sleeper does the reverse: no wake is lost. */
	if (atomic_exchange(&windows[i].waiters, 0))
		os_futex_wake(&windows[i].seq, INT_MAX);
	atomic_store(&windows[i].busy, 0);
}

/* The open window that covers addr: its slot, and its seq in *seq; or -1. */
static int window_find(uintptr_t addr, uint32_t *seq)
{
	for (int i = 0; i < NR_WINDOWS; i++) {
		uint32_t s = atomic_load(&windows[i].seq);

		if (!(s & 1))
			continue;
		if (addr >= atomic_load(&windows[i].start) && addr < atomic_load(&windows[i].end) &&
		    atomic_load(&windows[i].seq) == s) {
			*seq = s;
			return i;
		}
	}
	return -1;
}

/* ---- userfaultfd ------------------------------------------------------ */

static int uffd_setup(struct sp_fault *f)
{
	const uint64_t need = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	const uint64_t want = need | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_THREAD_ID |
			      UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_POISON |
			      UFFD_FEATURE_EVENT_REMAP;
	uint64_t features;

	if (os_uffd_probe(&features))
		return -1;
	if ((features & need) != need) {
		errno = ENOTSUP;
		return -1;
	}
	f->uffd = os_uffd_open();
	if (f->uffd < 0)
		return -1;
	features &= want;
	if (os_uffd_api(f->uffd, &features)) {
		close(f->uffd);
		f->uffd = -1;
		return -1;
	}
	f->features = features;
	return 0;
}

static void handle_wp_fault(struct sp_fault *f, uintptr_t addr)
{
	uint32_t seq;

	addr &= ~(uintptr_t)(PAGE_SIZE - 1);
	if (window_find(addr, &seq) >= 0) {
		/* The window's close wakes it. */
		atomic_fetch_add(&f->wp_faults, 1);
		return;
	}
	/* The window closed before we read the message: the writer may retry now. */
	atomic_fetch_add(&f->stale_faults, 1);
	os_uffd_wake(f->uffd, (void *)addr, PAGE_SIZE);
}

/*
 * A missing fault: only ranges that map swapped frames have missing mode.
 * A page whose slot is damaged must end in SIGBUS, never in wrong bytes:
 * poisoned where the kernel can (UFFDIO_POISON), else the thread is sent
 * SIGBUS and woken to die of it.
 */
static void handle_missing(struct sp_pool *pool, uintptr_t addr, pid_t tid)
{
	struct sp_fault *f = &pool->fault;
	int ret = swap_fault(pool, addr);

	if (ret > 0 && !os_uffd_zeropage(f->uffd, (void *)addr, PAGE_SIZE))
		return; /* mapped and woken */
	if (ret < 0)
		log_flush(); /* the why reaches the hook before a SIGBUS ends the program */
	if (ret == -1 && (f->features & UFFD_FEATURE_POISON) &&
	    !os_uffd_poison(f->uffd, (void *)addr, PAGE_SIZE))
		return; /* lost for good: SIGBUS at every touch */
	if (ret < 0 && tid > 0)
		os_tgkill(tid, SIGBUS);
	os_uffd_wake(f->uffd, (void *)addr, PAGE_SIZE);
}

/* ---- the swap-in worker ----------------------------------------------- */

/*
 * Missing faults are handed to a worker, so that the fault thread never
 * blocks: moving a missing-mode mapping into place (fault_remap_missing)
 * waits until the fault thread has read the remap event, and the mover may
 * hold what a swap-in waits for (a frame lock, the region table lock).
 */
static void missing_push(struct sp_fault *f, uintptr_t addr, pid_t tid)
{
	mutex_lock(&f->q_lock);
	if (f->q_stop) {
		/* The worker is going (the pool is): the thread faults again, and is served inline. */
		mutex_unlock(&f->q_lock);
		os_uffd_wake(f->uffd, (void *)addr, PAGE_SIZE);
		return;
	}
	if (f->q_nr == f->q_cap) {
		unsigned cap = f->q_cap ? 2 * f->q_cap : 64;
		struct sp_missing *q = malloc(cap * sizeof(*q));

		if (!q) { /* the thread stays asleep; the log says why */
			mutex_unlock(&f->q_lock);
			sp_log(SP_LOG_ERR, "no memory to queue a swap-in at %p", (void *)addr);
			return;
		}
		for (unsigned i = 0; i < f->q_nr; i++)
			q[i] = f->q[(f->q_head + i) % f->q_cap];
		free(f->q);
		f->q = q;
		f->q_head = 0;
		f->q_cap = cap;
	}
	f->q[(f->q_head + f->q_nr++) % f->q_cap] = (struct sp_missing){ addr, tid };
	pthread_cond_signal(&f->q_cond);
	mutex_unlock(&f->q_lock);
}

static void *swapin_thread(void *arg)
{
	struct sp_pool *pool = arg;
	struct sp_fault *f = &pool->fault;

	mutex_lock(&f->q_lock);
	for (;;) {
		struct sp_missing m;

		if (!f->q_nr && !f->q_stop) {
			mutex_unlock(&f->q_lock);
			swap_prefetch(pool); /* idle: read ahead for a sequential reader */
			mutex_lock(&f->q_lock);
		}
		while (!f->q_nr && !f->q_stop)
			cond_wait(&f->q_cond, &f->q_lock);
		if (!f->q_nr)
			break;
		m = f->q[f->q_head];
		f->q_head = (f->q_head + 1) % f->q_cap;
		f->q_nr--;
		mutex_unlock(&f->q_lock);
		handle_missing(pool, m.addr, m.tid);
		mutex_lock(&f->q_lock);
	}
	mutex_unlock(&f->q_lock);
	return NULL;
}

static void *fault_thread(void *arg)
{
	struct sp_pool *pool = arg;
	struct sp_fault *f = &pool->fault;
	struct pollfd pfd[2] = { { .fd = f->uffd, .events = POLLIN },
				 { .fd = f->stopfd, .events = POLLIN } };
	struct os_fault ev[16];

	for (;;) {
		int n;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		/* Reading an event (a remap of ours) is all it needs: its mover goes on. */
		n = os_uffd_read(f->uffd, ev, 16);
		for (int i = 0; i < n; i++) {
			if (ev[i].wp)
				handle_wp_fault(f, ev[i].addr);
			else if (atomic_load(&f->worker_started))
				missing_push(f, ev[i].addr, ev[i].tid);
			else
				handle_missing(pool, ev[i].addr, ev[i].tid);
		}
	}
	return NULL;
}

/* ---- SIGSEGV fallback ------------------------------------------------- */

/*
 * The handler is process-wide: installed by the first SIGSEGV-mode pool (or
 * the first after the program replaced it), and the disposition found then
 * kept in sigsegv_old, the program's, to which every SIGSEGV that is not
 * samepage's goes. samepage interposes nothing: a handler the program
 * installs while a pool lives replaces samepage's (windows are then unguarded,
 * as samepage(3) says), and is left in place when the last pool goes.
 */
static struct sp_mutex sigsegv_lock = SP_MUTEX_INITIALIZER(LOCK_SIGSEGV);
static unsigned sigsegv_users;
static struct sigaction sigsegv_old;
static __thread uintptr_t unknown_addr;
static __thread unsigned long unknown_gen, unknown_count;

static void sigsegv_handler(int sig, siginfo_t *info, void *ctx);

static bool sigsegv_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == sigsegv_handler;
}

/* The program's disposition is a handler (not the default, not ignored). */
static bool program_has_handler(void)
{
	if (sigsegv_old.sa_flags & SA_SIGINFO)
		return sigsegv_old.sa_sigaction != NULL;
	return sigsegv_old.sa_handler != SIG_DFL && sigsegv_old.sa_handler != SIG_IGN;
}

/* The program's handler, called as the kernel would have: its mask, its flags. */
static void sigsegv_call_program(int sig, siginfo_t *info, void *ctx)
{
	struct sigaction old = sigsegv_old;
	sigset_t mask, prev;

	if (old.sa_flags & SA_RESETHAND) { /* one-shot: the default from now on */
		sigsegv_old.sa_flags &= ~SA_SIGINFO;
		sigsegv_old.sa_handler = SIG_DFL;
	}
	/* The handler's mask is blocked too; sig itself unless SA_NODEFER (and not in the mask). */
	mask = old.sa_mask;
	if (!(old.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	pthread_sigmask(SIG_BLOCK, &mask, &prev);
	if ((old.sa_flags & SA_NODEFER) && !sigismember(&old.sa_mask, sig)) {
		sigemptyset(&mask);
		sigaddset(&mask, sig);
		pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	}
	if (old.sa_flags & SA_SIGINFO)
		old.sa_sigaction(sig, info, ctx);
	else
		old.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
}

/*
 * A SIGSEGV sent to us (raise, kill, sigqueue) under the default action: die
 * of it as the program would have. The default goes in only for the moment
 * of the re-raise, so that if we live on (a debugger ate it), samepage's
 * handler is back.
 */
static void sigsegv_die(int sig)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, mine;
	sigset_t set;

	sigemptyset(&dfl.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigaction(sig, &dfl, &mine))
		return;
	os_tgkill(gettid(), sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* delivered here: the end */
	sigaction(sig, &mine, NULL);
}

/* A SIGSEGV sent by a process (si_code <= 0), not a fault: the program's at once. */
static void sigsegv_sent(int sig, siginfo_t *info, void *ctx)
{
	if (program_has_handler())
		sigsegv_call_program(sig, info, ctx);
	else if (!(sigsegv_old.sa_flags & SA_SIGINFO) && sigsegv_old.sa_handler == SIG_DFL)
		sigsegv_die(sig);
	/* SIG_IGN: ignored, as it would have been. */
}

/*
 * A fault not in an open window: either a window closed between the fault
 * and our look (retry: the page is writable again), or the fault is not ours
 * (hand it to whoever would have had it). A repeat at the same address with
 * no window closed in between is not ours; nor is one that keeps repeating.
 */
static void sigsegv_chain(int sig, siginfo_t *info, void *ctx)
{
	uintptr_t addr = (uintptr_t)info->si_addr;
	unsigned long gen = atomic_load(&windows_closed);

	if (addr != unknown_addr) {
		unknown_addr = addr;
		unknown_gen = gen;
		unknown_count = 0;
		return;
	}
	if (gen != unknown_gen && ++unknown_count < 64) {
		unknown_gen = gen;
		return;
	}
	unknown_addr = 0;
	if (program_has_handler())
		sigsegv_call_program(sig, info, ctx);
	else /* Return into the same fault with the default action: the program dies of it. */
		signal(SIGSEGV, SIG_DFL); /* (a fault is fatal even when ignored) */
}

/* Never logs, locks or allocates: a signal handler. */
static void sigsegv_handler(int sig, siginfo_t *info, void *ctx)
{
	int err = errno;
	uint32_t seq;
	int i;

	if (info->si_code <= 0) {
		sigsegv_sent(sig, info, ctx);
		errno = err;
		return;
	}
	i = info->si_code == SEGV_ACCERR ? window_find((uintptr_t)info->si_addr, &seq) : -1;
	if (i >= 0) {
		unknown_addr = 0;
		for (;;) {
			atomic_store(&windows[i].waiters, 1);
			if (atomic_load(&windows[i].seq) != seq)
				break;
			os_futex_wait(&windows[i].seq, seq);
		}
	} else {
		sigsegv_chain(sig, info, ctx);
	}
	errno = err;
}

/*
 * Installs samepage's handler unless it is installed already, keeping what
 * was there as the program's: a handler the program put in after an earlier
 * pool is chained to from now on.
 */
static int sigsegv_get(void)
{
	struct sigaction sa = { .sa_sigaction = sigsegv_handler,
				.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART },
			 cur;
	int ret = 0;

	sigemptyset(&sa.sa_mask);
	mutex_lock(&sigsegv_lock);
	if (sigaction(SIGSEGV, NULL, &cur) ||
	    (!sigsegv_is_ours(&cur) && sigaction(SIGSEGV, &sa, &sigsegv_old)))
		ret = -1;
	if (!ret)
		sigsegv_users++;
	mutex_unlock(&sigsegv_lock);
	return ret;
}

/* The last pool puts the program's disposition back, unless the program has changed it since. */
static void sigsegv_put(void)
{
	struct sigaction cur;

	mutex_lock(&sigsegv_lock);
	if (!--sigsegv_users && !sigaction(SIGSEGV, NULL, &cur) && sigsegv_is_ours(&cur))
		sigaction(SIGSEGV, &sigsegv_old, NULL);
	mutex_unlock(&sigsegv_lock);
}

/* ---- setup ------------------------------------------------------------ */

static void worker_stop(struct sp_fault *f)
{
	if (!f->worker_started)
		return;
	mutex_lock(&f->q_lock);
	f->q_stop = true;
	pthread_cond_signal(&f->q_cond);
	mutex_unlock(&f->q_lock);
	pthread_join(f->worker, NULL);
	atomic_store(&f->worker_started, false);
}

static int uffd_start(struct sp_pool *pool)
{
	struct sp_fault *f = &pool->fault;

	if (uffd_setup(f))
		return -1;
	f->stopfd = eventfd(0, EFD_CLOEXEC);
	if (f->stopfd < 0)
		goto out_close;
	/* Missing faults come only where pages can be swapped out. Before the
	 * fault thread, which reads worker_started. */
	if (pool->swap.fd >= 0 && (f->features & UFFD_FEATURE_EVENT_REMAP)) {
		errno = pthread_create(&f->worker, NULL, swapin_thread, pool);
		if (errno)
			sp_log(SP_LOG_WARN, "no swap-in thread (%s): the pool cannot swap",
			       strerror(errno));
		else
			pthread_setname_np(f->worker, "sp-swapin");
		atomic_store(&f->worker_started, !errno);
	}
	errno = pthread_create(&f->thread, NULL, fault_thread, pool);
	if (errno)
		goto out_worker;
	pthread_setname_np(f->thread, "sp-fault");
	f->thread_started = true;
	f->mode = SP_FAULT_UFFD;
	return 0;

out_worker:
	worker_stop(f);
out_close:
	if (f->stopfd >= 0)
		close(f->stopfd);
	close(f->uffd);
	f->uffd = f->stopfd = -1;
	return -1;
}

int fault_init(struct sp_pool *pool)
{
	struct sp_fault *f = &pool->fault;

	f->uffd = f->stopfd = -1;
	mutex_init(&f->q_lock, LOCK_FAULT_QUEUE);
	pthread_cond_init(&f->q_cond, NULL);
	if (!(pool->flags & SP_POOL_SIGSEGV)) {
		if (!uffd_start(pool))
			return 0;
		sp_log(SP_LOG_WARN,
		       "userfaultfd write-protect unavailable (%s): using mprotect+SIGSEGV, where "
		       "a system call that writes into a page being merged or moved fails with "
		       "EFAULT",
		       strerror(errno));
	}
	if (sigsegv_get())
		return -1;
	f->mode = SP_FAULT_SIGSEGV;
	return 0;
}

void fault_exit(struct sp_pool *pool)
{
	struct sp_fault *f = &pool->fault;
	uint64_t one = 1;

	if (f->mode == SP_FAULT_SIGSEGV) {
		sigsegv_put();
		goto out_queue;
	}
	/* The worker first: what it still does may need the fault thread. */
	worker_stop(f);
	if (f->thread_started) {
		if (write(f->stopfd, &one, sizeof(one)) != sizeof(one))
			sp_log(SP_LOG_ERR, "stopping the fault thread: %s", strerror(errno));
		pthread_join(f->thread, NULL);
		f->thread_started = false;
	}
	if (f->stopfd >= 0)
		close(f->stopfd);
	if (f->uffd >= 0)
		close(f->uffd);
	f->stopfd = f->uffd = -1;
out_queue:
	free(f->q);
	f->q = NULL;
	pthread_cond_destroy(&f->q_cond);
	mutex_destroy(&f->q_lock);
}

/* ---- the primitive ---------------------------------------------------- */

/*
 * After a remap there is no going back: the new mapping is live, and one
 * the fault machinery does not know cannot be write-protected (ENOENT ever
 * after) or kept from a child. A failure (ENOMEM of a vma split, EAGAIN) may
 * be a moment's: asked again before the caller is told.
 */
int fault_register(struct sp_pool *pool, void *addr, size_t len)
{
	for (int tries = 0;; tries++) {
		if (!os_dontfork(addr, len) &&
		    (pool->fault.mode != SP_FAULT_UFFD ||
		     !os_uffd_register(pool->fault.uffd, addr, len, false)))
			return 0;
		if (tries == 19)
			return -1;
		sched_yield();
	}
}

int fault_pagemap(struct sp_pool *pool, const void *addr, unsigned long n, uint64_t *pm)
{
	for (int tries = 0;; tries++) {
		if (!os_pagemap_read(pool->pagemap, addr, n, pm))
			return 0;
		if (tries == 100 || errno == EBADF) {
			sp_log(SP_LOG_ERR, "reading the page table at %p: %s", addr,
			       strerror(errno));
			return -1;
		}
		sched_yield();
	}
}

/*
 * A mapping failed. Out of mappings (vm.max_map_count), the caller handles
 * it (undoes, or leaves the page for its next touch): counted, said once per
 * pool, never a line per page. -1, errno kept.
 */
static int map_failed(struct sp_pool *pool)
{
	int err = errno;

	if (err == ENOMEM)
		maps_failed(pool, MAPS_FAILED);
	errno = err;
	return -1;
}

int fault_remap(struct sp_pool *pool, void *addr, size_t len, unsigned long pfn, bool shared)
{
	if (!os_map_frames(addr, len, pool->memfd, (off_t)(pfn << PAGE_SHIFT), shared))
		return 0;
	return map_failed(pool);
}

int fault_map(struct sp_pool *pool, void *addr, size_t len, unsigned long pfn, bool shared)
{
	if (fault_remap(pool, addr, len, pfn, shared))
		return -1;
	return fault_register(pool, addr, len);
}

int fault_restore(struct sp_pool *pool, void *addr, size_t len, unsigned long pfn, bool shared,
		  const char *what)
{
	for (int tries = 0; fault_map(pool, addr, len, pfn, shared); sched_yield())
		if (++tries == 100) {
			/* Out of mappings is counted and said once (map_failed), not per page. */
			if (errno != ENOMEM)
				sp_log(SP_LOG_ERR, "restoring %s at %p: %s", what, addr,
				       strerror(errno));
			return -1;
		}
	return 0;
}

int fault_restore_missing(struct sp_pool *pool, void *addr, size_t len, const char *what)
{
	for (int tries = 0; fault_remap_missing(pool, addr, len); sched_yield())
		if (++tries == 100) {
			sp_log(SP_LOG_ERR, "restoring %s at %p: %s", what, addr, strerror(errno));
			return -1;
		}
	return 0;
}

int fault_remap_zero(struct sp_pool *pool, void *addr, size_t len)
{
	(void)pool;
	/* Reads map the kernel's zero page; a write gets the program its own page. */
	return os_map_zero(addr, len);
}

/*
 * A page with no frame (swapped out, or not given one yet): an anonymous
 * mapping that is never populated, in missing mode, so that every access,
 * read or write, from user code or from the kernel, asks the fault thread,
 * which maps a frame there. The frame number itself is free for others.
 *
 * It must be in missing mode from the instant it is there, so os_map_missing
 * makes it elsewhere and moves it into place (mremap); the registration
 * moves with it because the fault thread takes remap events, and the move
 * waits until the fault thread has read the event: the fault thread must
 * never wait on anyone who may be moving a range.
 */
int fault_remap_missing(struct sp_pool *pool, void *addr, size_t len)
{
	if (!(pool->fault.features & UFFD_FEATURE_EVENT_REMAP)) {
		errno = ENOTSUP;
		return -1;
	}
	if (!os_map_missing(pool->fault.uffd, addr, len))
		return 0;
	return map_failed(pool);
}

bool fault_can_swap(struct sp_pool *pool)
{
	return pool->fault.mode == SP_FAULT_UFFD &&
	       (pool->fault.features & UFFD_FEATURE_EVENT_REMAP) && pool->fault.worker_started;
}

/*
 * Write-protect or lift it: holes (the program's unmaps) are skipped, and a
 * page another thread remapped and has not registered yet is waited for
 * (os_uffd_wp says why).
 */
static int protect(struct sp_pool *pool, uintptr_t addr, size_t len, bool wp)
{
	if (pool->fault.mode == SP_FAULT_SIGSEGV)
		return os_protect((void *)addr, len, !wp);
	return os_uffd_wp(pool->fault.uffd, (void *)addr, len, wp);
}

/*
 * Unprotect [start, end) except what another open window covers: each window
 * protects the pages its owner holds the frame locks of, and a page can be
 * inside the span of a window that does not own it. window_lock held.
 */
static int unprotect_uncovered(struct sp_pool *pool, int self, uintptr_t start, uintptr_t end)
{
	while (start < end) {
		uintptr_t cut = end, skip_to = start;

		for (int i = 0; i < NR_WINDOWS; i++) {
			uintptr_t ws = atomic_load(&windows[i].start),
				  we = atomic_load(&windows[i].end);

			if (i == self || !(atomic_load(&windows[i].seq) & 1) || we <= start ||
			    ws >= end)
				continue;
			if (ws <= start) {
				skip_to = we > skip_to ? we : skip_to; /* start is covered */
			} else if (ws < cut) {
				cut = ws;
			}
		}
		if (skip_to > start) {
			start = skip_to;
			continue;
		}
		if (protect(pool, start, cut - start, false))
			return -1;
		start = cut;
	}
	return 0;
}

/*
 * Unprotect a window's range and retire its slot, window_lock held (its
 * writers are woken after it: window_wake). A page left protected is a
 * writer stopped for good (uffd mode: it faults for ever; SIGSEGV mode: a
 * crash), so a failure (ENOMEM of a vma split) is asked again: it may be a
 * moment's. A failed open comes here too: it may have protected part of
 * its range.
 */
static void window_retire(struct sp_pool *pool, struct sp_window *w)
{
	for (int tries = 0;
	     unprotect_uncovered(pool, w->slot, (uintptr_t)w->addr, (uintptr_t)w->addr + w->len);)
		if (++tries == 100) {
			sp_log(SP_LOG_ERR, "unprotecting %p+%zu: %s", w->addr, w->len,
			       strerror(errno));
			break;
		}
	slot_release(w->slot);
}

/* uffd mode: writers that faulted into the window retry now. */
static void window_wake(struct sp_pool *pool, struct sp_window *w)
{
	if (pool->fault.mode == SP_FAULT_UFFD)
		os_uffd_wake(pool->fault.uffd, w->addr, w->len);
}

int wp_window_open(struct sp_pool *pool, struct sp_window *w, void *addr, size_t len)
{
	int err = 0;

	w->addr = addr;
	w->len = len;
	mutex_lock(&window_lock);
	w->slot = slot_take(addr, len);
	/* Protection skips holes silently: a hole is the program's unmap, not ours to fill. */
	/* ENOENT: a mapping the fault machinery lost (fault_register): no room, to the caller. */
	if (protect(pool, (uintptr_t)addr, len, true))
		err = errno == ENOENT ? ENOMEM : errno;
	else if (!os_all_mapped(addr, len))
		err = ENOMEM;
	if (err)
		window_retire(pool, w); /* it may have protected part of the range: given back */
	mutex_unlock(&window_lock);
	if (!err)
		return 0; /* errno untouched: callers open windows on their error paths */
	window_wake(pool, w);
	errno = err;
	return -1;
}

/*
 * Close always unprotects, even a range whose mapping was replaced: while
 * this window was open, another one may have protected the new mapping and
 * closed leaving it to us (it spared what we cover).
 */
void wp_window_close(struct sp_pool *pool, struct sp_window *w)
{
	mutex_lock(&window_lock);
	window_retire(pool, w);
	mutex_unlock(&window_lock);
	window_wake(pool, w);
}
