/* SPDX-License-Identifier: MIT */
/* What every benchmark program needs: a clock, and a way to stop on an error. */
#ifndef SP_BENCH_H
#define SP_BENCH_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "PROGRAM: what: strerror(errno)" on stderr, and exit 1. */
static inline void die(const char *what)
{
	extern char *program_invocation_short_name;

	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(1);
}

#endif
