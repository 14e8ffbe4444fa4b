/* SPDX-License-Identifier: MIT */
/* The one way samepage speaks to a person: through the caller's log hook. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include "samepage.h"

/* Queues a line for the hook: callable under any lock of samepage's, never from a signal handler. */
__attribute__((format(printf, 2, 3))) void sp_log(enum sp_log_level level, const char *fmt, ...);
/* Waits until every line logged before is delivered. With no samepage lock held; no-op in a hook. */
void log_flush(void);

#endif
