/* SPDX-License-Identifier: MIT */
/*
 * The samepage command's subcommands, one file each, and what they share:
 * the clock, --version, and the wording of option errors.
 *
 * Exit status, as samepage(1) says: 0 success, 1 failure (the pool, the
 * socket, the process refused or could not be reached), 2 bad usage (an
 * unknown option, a missing or malformed argument, a value out of range).
 */
#ifndef SP_TOOLS_CMDS_H
#define SP_TOOLS_CMDS_H

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef SP_VERSION
#define SP_VERSION "unknown"
#endif

#define EXIT_USAGE 2

/* Seconds on the monotonic clock (demo, estimate, top). */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every subcommand takes --version: getopt_long's entry, and what it prints. */
#define OPT_VERSION                               \
	{                                         \
		"version", no_argument, NULL, 'V' \
	}

static inline int print_version(void)
{
	printf("samepage " SP_VERSION "\n");
	return 0;
}

/*
 * getopt_long (with opterr = 0 and an optstring starting with ":") returned
 * '?' or ':': say which option was wrong, as "samepage CMD: ...".
 */
static inline void option_error(const char *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		fprintf(stderr, "samepage %s: option %s needs a value\n", cmd, arg);
	else
		fprintf(stderr, "samepage %s: unknown option %s\n", cmd, arg);
}

/*
 * An option's whole-number value in [min, max] (max LONG_MAX: no bound);
 * -1 having said "samepage CMD: OPT: ARG is out of range (MIN..MAX)" or
 * that it is not a number.
 */
static inline int option_long(const char *cmd, const char *opt, const char *arg, long min, long max,
			      long *out)
{
	char *end;

	errno = 0;
	*out = strtol(arg, &end, 10);
	if (end == arg || *end) {
		fprintf(stderr, "samepage %s: %s: '%s' is not a whole number\n", cmd, opt, arg);
		return -1;
	}
	if (errno || *out < min || *out > max) {
		if (max == LONG_MAX)
			fprintf(stderr, "samepage %s: %s: %s is out of range (%ld or more)\n", cmd,
				opt, arg, min);
		else
			fprintf(stderr, "samepage %s: %s: %s is out of range (%ld..%ld)\n", cmd,
				opt, arg, min, max);
		return -1;
	}
	return 0;
}

int cmd_demo(int argc, char **argv); /* samepage.c */
int cmd_stats(int argc, char **argv); /* ctl.c */
int cmd_set(int argc, char **argv); /* ctl.c */
int cmd_top(int argc, char **argv); /* top.c */
int cmd_estimate(int argc, char **argv); /* estimate.c */
int cmd_bench(int argc, char **argv); /* bench.c */
int cmd_run(int argc, char **argv); /* run.c */
int cmd_ps(int argc, char **argv); /* run.c */

#endif
