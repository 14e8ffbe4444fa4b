/* SPDX-License-Identifier: MIT */
/*
 * SIGSEGV in a program under `samepage run` when the pool is in the
 * mprotect+SIGSEGV fault mode (no userfaultfd, as for most users but root):
 * the pool's handler must see every SIGSEGV first, yet JVMs, Go and
 * Python's faulthandler install their own. So sigaction() and signal() are
 * interposed for SIGSEGV: the program's action is kept here, not given to
 * the kernel, and the pool's handler chains to ours for faults that are not
 * the pool's (fault.c: sigsegv_chain), which calls the program's as the
 * kernel would (its mask, SA_RESETHAND; the default action kills). The
 * program reads back what it set. samepage's own calls pass through.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "preload.h"

#define PUBLIC __attribute__((visibility("default")))

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);

static sigaction_fn real_sigaction;
static signal_fn real_signal;
static struct sigaction app_segv; /* the program's action, as it believes it is */
static atomic_bool chaining;
static bool installed; /* ours is in, in place of app_segv */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void resolve(void)
{
	if (!real_sigaction)
		real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
	if (!real_signal)
		real_signal = (signal_fn)dlsym(RTLD_NEXT, "signal");
}

/* What the pool's handler calls for a fault that is not the pool's. */
static void call_program(int sig, siginfo_t *si, void *uc)
{
	struct sigaction a = app_segv;
	sigset_t old;

	if (a.sa_flags & SA_RESETHAND) {
		memset(&app_segv, 0, sizeof(app_segv));
		app_segv.sa_handler = SIG_DFL;
	}
	if (a.sa_handler == SIG_DFL || a.sa_handler == SIG_IGN) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		/* return into the fault with the default action: the program dies of it */
		real_sigaction(SIGSEGV, &dfl, NULL);
		return;
	}
	pthread_sigmask(SIG_BLOCK, &a.sa_mask, &old);
	if (a.sa_flags & SA_SIGINFO)
		a.sa_sigaction(sig, si, uc);
	else
		a.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void preload_signal_before(void)
{
	struct sigaction ours = { .sa_sigaction = call_program,
				  .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER };

	resolve();
	installed = real_sigaction && !real_sigaction(SIGSEGV, &ours, &app_segv);
}

void preload_signal_after(sp_pool *pool)
{
	long mode = 0;

	if (pool && !sp_stat(pool, "fault_mode", &mode) && mode == SP_FAULT_SIGSEGV) {
		atomic_store(&chaining, true);
		return;
	}
	if (installed)
		real_sigaction(SIGSEGV, &app_segv, NULL);
	installed = false;
}

static bool ours_to_keep(int sig, const void *caller)
{
	return sig == SIGSEGV && atomic_load(&chaining) && !preload_own_code(caller);
}

PUBLIC int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	resolve();
	if (!ours_to_keep(sig, __builtin_return_address(0)))
		return real_sigaction(sig, act, old);
	pthread_mutex_lock(&lock);
	if (old)
		*old = app_segv;
	if (act)
		app_segv = *act;
	pthread_mutex_unlock(&lock);
	return 0;
}

PUBLIC sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act = { .sa_handler = handler, .sa_flags = SA_RESTART }, old;

	resolve();
	if (!ours_to_keep(sig, __builtin_return_address(0)))
		return real_signal(sig, handler);
	sigemptyset(&act.sa_mask);
	pthread_mutex_lock(&lock);
	old = app_segv;
	app_segv = act;
	pthread_mutex_unlock(&lock);
	return old.sa_handler;
}
