/* SPDX-License-Identifier: MIT */
/*
 * Logging hook. The hook is process-wide, like the kernel's printk: a pool
 * never owns the terminal. The hook pointer and its argument are published
 * together under a mutex so that a message never pairs one hook with the
 * other's argument; the hook itself is called outside the mutex so that it
 * may call back into samepage.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static sp_log_fn log_fn;
static void *log_priv;

void sp_set_log(sp_log_fn fn, void *priv)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_priv = priv;
	pthread_mutex_unlock(&log_lock);
}

void sp_log(enum sp_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info" };
	char msg[512];
	sp_log_fn fn;
	void *priv;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	fn = log_fn;
	priv = log_priv;
	pthread_mutex_unlock(&log_lock);

	if (fn)
		fn(level, msg, priv);
	else
		fprintf(stderr, "samepage: %s: %s\n", names[level], msg);
}
