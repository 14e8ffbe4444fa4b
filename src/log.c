/* SPDX-License-Identifier: MIT */
/*
 * Logging hook. The hook is process-wide, like the kernel's printk: a pool
 * never owns the terminal.
 *
 * sp_log is called from wherever samepage has something to say, often under
 * its locks (a page lost to the program's munmap is noticed by the scanner
 * under the KSM mutex). The hook is the program's code and may call back
 * into samepage, so it must never run there: a hook calling sp_ksm_set would
 * wait for a mutex its own thread holds. So sp_log only formats the line and
 * queues it, and the lines are delivered, in order, by a delivery thread
 * that holds no samepage lock, as printk hands its records to the consoles
 * outside the caller's context.
 *
 * Why a thread and not "deliver when the caller drops its locks": lines come
 * from ksmd, kswapd, the swap-in worker and the export thread as well as the
 * program's calls, each with its own lock nesting; a single drain point per
 * lock would have to be right in every one of them, and a thread needs none.
 * The cost is that delivery is asynchronous, so:
 * - log_flush() waits until every line queued before it was delivered.
 *   sp_pool_create calls it before it returns (its warnings, such as the
 *   vm.max_map_count one, arrive first), sp_pool_destroy before and after
 *   tearing down, sp_set_log before it switches hooks, and exit() (bounded,
 *   one second). It never waits inside a hook (a thread-local flag says so):
 *   the hook would wait for itself.
 * - The queue is bounded (LOG_QUEUE lines, no allocation under a caller's
 *   locks): when a slow hook lets it fill, further lines are dropped and
 *   counted, and one line "N log messages dropped" takes their place.
 * - The thread is started on the first line of a burst and ends when the
 *   queue is empty: most processes never have it, and a fork() rarely finds
 *   it (a child gets an empty queue; its parent delivers what was queued).
 * - sp_set_log returns once no call of the hook it replaced is running.
 *
 * No signal handler of samepage's logs (the SIGSEGV handler must not: it may
 * have interrupted sp_log itself).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lock.h"
#include "log.h"

#define LOG_QUEUE 256
#define LOG_LINE 512

struct log_line {
	enum sp_log_level level;
	char msg[LOG_LINE];
};

static struct sp_mutex log_lock = SP_MUTEX_INITIALIZER(LOCK_LOG);
/* A line delivered, or a hook call ended, or the deliverer stopped. */
static pthread_cond_t log_progress = PTHREAD_COND_INITIALIZER;
static sp_log_fn log_fn;
static void *log_priv;
static struct log_line queue[LOG_QUEUE];
static unsigned q_head, q_nr;
static unsigned long dropped; /* since the last "dropped" line */
static unsigned long queued, delivered; /* lines ever */
static bool running; /* a deliverer (the thread, or a flush) is at work */
static bool unjoined; /* the thread ended and wants joining */
static pthread_t deliverer;
static unsigned hook_calls; /* calls of the hook in progress */
static __thread bool in_hook;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* log_lock held. */
static void push(enum sp_log_level level, const char *msg)
{
	struct log_line *l = &queue[(q_head + q_nr) % LOG_QUEUE];

	l->level = level;
	snprintf(l->msg, sizeof(l->msg), "%s", msg);
	q_nr++;
	queued++;
}

/* The count of dropped lines, as a line of its own. log_lock held, room for it. */
static void push_dropped(void)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "%lu log messages dropped: the log hook is too slow", dropped);
	dropped = 0;
	push(SP_LOG_WARN, msg);
}

/* The first queued line to the hook in force, with log_lock dropped meanwhile. */
static void deliver_one(void)
{
	static const char *const names[] = { "error", "warning", "info" };
	struct log_line l = queue[q_head];
	sp_log_fn fn = log_fn;
	void *priv = log_priv;

	q_head = (q_head + 1) % LOG_QUEUE;
	q_nr--;
	hook_calls++;
	mutex_unlock_pair(&log_lock); /* the caller's: the hook runs under no lock */
	in_hook = true;
	if (fn)
		fn(l.level, l.msg, priv);
	else
		fprintf(stderr, "samepage: %s: %s\n", names[l.level], l.msg);
	in_hook = false;
	mutex_lock_pair(&log_lock); /* back to the caller, who releases it */
	hook_calls--;
	delivered++;
	pthread_cond_broadcast(&log_progress);
}

/* Everything queued, the dropped count last. log_lock held. */
static void deliver_all(void)
{
	while (q_nr || dropped) {
		if (!q_nr)
			push_dropped();
		deliver_one();
	}
}

static void *deliverer_main(void *arg)
{
	(void)arg;
	mutex_lock(&log_lock);
	deliver_all();
	running = false;
	unjoined = true;
	pthread_cond_broadcast(&log_progress);
	mutex_unlock(&log_lock);
	return NULL;
}

/*
 * The delivery thread, unless one is at work. It gets no asynchronous
 * signal of the program's (its handlers expect the program's threads), but
 * the synchronous ones it must: a hook may touch pool memory in SIGSEGV
 * mode. If it cannot start, the lines wait for the next line or flush.
 * log_lock held; joining a thread that ended waits for nothing.
 */
static void deliverer_start(void)
{
	static const int sync_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };
	sigset_t mask, old;

	if (running)
		return;
	if (unjoined) {
		pthread_join(deliverer, NULL);
		unjoined = false;
	}
	sigfillset(&mask);
	for (unsigned i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
		sigdelset(&mask, sync_signals[i]);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	running = !pthread_create(&deliverer, NULL, deliverer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (running)
		pthread_setname_np(deliverer, "sp-log");
}

/*
 * Waits until the lines queued before the call are delivered; at most
 * timeout_ms if it is not -1. Where no thread could start, delivers them
 * itself: it is called with no samepage lock held.
 */
static void flush(long timeout_ms)
{
	struct timespec until;
	pthread_t ended;
	bool join;

	if (in_hook)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += timeout_ms % 1000 * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	mutex_lock(&log_lock);
	for (unsigned long target = queued; delivered < target;) {
		if (!running) {
			running = true;
			deliver_all();
			running = false;
			pthread_cond_broadcast(&log_progress);
		} else if (timeout_ms < 0) {
			cond_wait(&log_progress, &log_lock);
		} else if (cond_timedwait(&log_progress, &log_lock, &until) == ETIMEDOUT) {
			break;
		}
	}
	/* A thread that ended is joined here, so that none outlives the call. */
	join = unjoined && !running;
	ended = deliverer;
	unjoined &= !join;
	mutex_unlock(&log_lock);
	if (join)
		pthread_join(ended, NULL);
}

void log_flush(void)
{
	flush(-1);
}

static void flush_at_exit(void)
{
	flush(1000);
}

/* Holds log_lock across fork(): the child starts with no deliverer and an empty queue. */
static void fork_prepare(void)
{
	mutex_lock_pair(&log_lock); /* fork_parent and fork_child release it */
}

static void fork_parent(void)
{
	mutex_unlock_pair(&log_lock);
}

static void fork_child(void)
{
	/* A hook that forked: the child's one thread goes on as the deliverer. */
	running = in_hook;
	hook_calls = in_hook;
	unjoined = false;
	q_nr = 0;
	dropped = 0;
	delivered = queued - in_hook;
	mutex_unlock_pair(&log_lock);
}

static void log_setup(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	atexit(flush_at_exit);
}

void sp_set_log(sp_log_fn fn, void *priv)
{
	pthread_once(&log_once, log_setup);
	flush(-1); /* the lines so far go to the hook that was in force */
	mutex_lock(&log_lock);
	log_fn = fn;
	log_priv = priv;
	/* The old hook's priv may be freed once we return (a hook itself cannot wait). */
	while (hook_calls && !in_hook)
		cond_wait(&log_progress, &log_lock);
	mutex_unlock(&log_lock);
}

void sp_log(enum sp_log_level level, const char *fmt, ...)
{
	char msg[LOG_LINE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_once(&log_once, log_setup);
	mutex_lock(&log_lock);
	if (dropped && q_nr + 2 <= LOG_QUEUE)
		push_dropped();
	if (q_nr < LOG_QUEUE)
		push(level, msg);
	else
		dropped++;
	deliverer_start();
	mutex_unlock(&log_lock);
}
