/* SPDX-License-Identifier: MIT */
/* The samepage command's subcommands, one file each. */
#ifndef SP_TOOLS_CMDS_H
#define SP_TOOLS_CMDS_H

#include <time.h>

/* Seconds on the monotonic clock (demo, estimate). */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_demo(int argc, char **argv); /* samepage.c */
int cmd_stats(int argc, char **argv); /* ctl.c */
int cmd_set(int argc, char **argv); /* ctl.c */
int cmd_top(int argc, char **argv); /* ctl.c */
int cmd_estimate(int argc, char **argv); /* estimate.c */
int cmd_bench(int argc, char **argv); /* bench.c */

#endif
