/* SPDX-License-Identifier: MIT */
/* The one way samepage speaks to a person: through the caller's log hook. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include "samepage.h"

__attribute__((format(printf, 2, 3))) void sp_log(enum sp_log_level level, const char *fmt, ...);

#endif
